import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  createClient,
  rawCodec,
  type SessionClient,
  SessionError,
} from '../../client/src/index.ts';
import { sessionHandle } from '../../src/session-keys.ts';
import { compactKey } from '../../src/store/redis/keys.ts';
import { FaultProxy, LONG, type NetworkFaults } from '../support/faults.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

/**
 * Lost replies: the real client calls the real server (Redis store, a real
 * redis-server) through a TCP proxy that resets the connection in the middle
 * of a reply, so the server has applied the call but the caller never hears
 * of it. Each method runs RUNS times per mode, a few calls in flight at once
 * (a reset ends every call on the connection), and the outcome of each
 * logical call is checked against Redis through a second client that
 * bypasses the proxy. Counted, per method:
 *
 * - doubled: the stored version shows the write applied twice;
 * - orphans: sessions nobody holds the key of (a keyless set whose caller got
 *   no key, or got another one; a rotation whose caller got no new key; a
 *   session listed under its owner whose key its caller never got);
 * - lost: consumes whose caller did not get the data, though it is gone;
 * - failed: calls that ended in an error before their deadline, when a retry
 *   would have had time (NOT_FOUND or CONFLICT from a retry that met its own
 *   first attempt included);
 * - wrong: replies that misreport what happened (a delete that reports
 *   nothing deleted although this call deleted the session, a revoke that
 *   counts fewer sessions than it deleted).
 *
 * Without idempotency keys (the client's rules before them) the counts show
 * the problem; with them (the default) every count must be 0.
 * `npm run faults:long -- lost-replies` runs many more calls.
 */

const PREFIX = 'lost-replies:';
/** The server's REDIS_DATABASE, set so that the counts read the same one. */
const DATABASE = '3';
const RUNS = LONG ? 400 : 25;
const IN_FLIGHT = 4;
const DEADLINE_MS = 8000;
/** Chance that the connection is reset just before a response. */
const RESET_RATE = 0.2;

type Sessions = SessionClient<Buffer, Buffer, Buffer>;

interface Counts {
  calls: number;
  /** Connections the proxy reset before a response. */
  resets: number;
  doubled: number;
  orphans: number;
  lost: number;
  failed: number;
  wrong: number;
}

/**
 * One method under test: `run` prepares a session, makes the call through
 * the proxy and checks the outcome; `finish`, when present, checks what the
 * runs left behind together.
 */
interface Scenario {
  readonly name: string;
  run(faulty: Sessions, tag: string, counts: Counts): Promise<void>;
  finish?(prefix: string, counts: Counts): void;
}

let redis: TestRedis;
let server: TestServer;
let proxy: FaultProxy;
let direct: Sessions;

const codec = { fleetListRequest: rawCodec, fleetListResponse: rawCodec, attributes: rawCodec };

function client(address: string, idempotencyKeys: boolean): Sessions {
  return createClient<Buffer, Buffer, Buffer>({
    address,
    deadlineMs: DEADLINE_MS,
    retries: { maxAttempts: 20, initialBackoffMs: 5, maxBackoffMs: 50 },
    idempotencyKeys,
    codec,
  });
}

/**
 * Runs `call`; an error counts as `failed` when the deadline had not passed
 * (the client gave up while a retry still had time). Resolves to the result,
 * or undefined after an error.
 */
async function attempt<T>(counts: Counts, call: () => Promise<T>): Promise<T | undefined> {
  const deadline = Date.now() + DEADLINE_MS;
  try {
    return await call();
  } catch (error) {
    if (!(error instanceof SessionError)) throw error;
    if (Date.now() < deadline) counts.failed++;
    return undefined;
  }
}

async function version(sessionKey: string): Promise<number | undefined> {
  return (await direct.getSession({ sessionKey }))?.version;
}

/** A fresh session at version 1, set directly; its key. */
async function fresh(tag: string): Promise<string> {
  const sessionKey = `lost-replies.${tag}`;
  await direct.setSession({ sessionKey, fleetListResponse: Buffer.from(tag) });
  return sessionKey;
}

const SCENARIOS: readonly Scenario[] = [
  {
    name: 'SetSession without a key',
    async run(faulty, tag, counts) {
      const created = await attempt(counts, () =>
        faulty.setSession({ fleetListRequest: Buffer.from(tag) }),
      );
      if (created) given.add(compactKey(PREFIX, created.sessionKey));
    },
    finish(prefix, counts) {
      for (const hash of storedWithRequest(prefix)) if (!given.has(hash)) counts.orphans++;
    },
  },
  {
    name: 'SetSession with a key',
    async run(faulty, tag, counts) {
      const sessionKey = await fresh(tag);
      await attempt(counts, () => faulty.setSession({ sessionKey }));
      if (((await version(sessionKey)) ?? 0) > 2) counts.doubled++;
    },
  },
  {
    name: 'UpdateSession',
    async run(faulty, tag, counts) {
      const sessionKey = await fresh(tag);
      await attempt(counts, () =>
        faulty.updateSession({ sessionKey, setAttributes: { step: Buffer.from('2') } }),
      );
      if (((await version(sessionKey)) ?? 0) > 2) counts.doubled++;
    },
  },
  {
    name: 'UpdateSession with expectedVersion',
    async run(faulty, tag, counts) {
      const sessionKey = await fresh(tag);
      await attempt(counts, () => faulty.updateSession({ sessionKey, expectedVersion: 1 }));
      if (((await version(sessionKey)) ?? 0) > 2) counts.doubled++;
    },
  },
  {
    name: 'TouchSession',
    async run(faulty, tag, counts) {
      const sessionKey = await fresh(tag);
      await attempt(counts, () => faulty.touchSession({ sessionKey, ttlSeconds: 120 }));
    },
  },
  {
    name: 'ConsumeSession',
    async run(faulty, tag, counts) {
      const sessionKey = await fresh(tag);
      const consumed = await attempt(counts, () => faulty.consumeSession({ sessionKey }));
      const gotIt = consumed?.fleetListResponse?.toString() === tag;
      if (!gotIt && (await version(sessionKey)) === undefined) counts.lost++;
    },
  },
  {
    name: 'DeleteSession',
    async run(faulty, tag, counts) {
      const sessionKey = await fresh(tag);
      const reply = await attempt(counts, () => faulty.deleteSession({ sessionKey }));
      if (reply?.deleted === false) counts.wrong++;
    },
  },
  {
    name: 'RotateSessionKey',
    async run(faulty, tag, counts) {
      const sessionKey = await fresh(tag);
      const rotated = await attempt(counts, () => faulty.rotateSessionKey({ sessionKey }));
      const moved = (await version(sessionKey)) === undefined;
      if (moved && (rotated === undefined || (await version(rotated.sessionKey)) === undefined))
        counts.orphans++;
    },
  },
  {
    name: 'SetSession with an owner',
    async run(faulty, tag, counts) {
      const owner = `owner.${tag}`;
      const created = await attempt(counts, () => faulty.setSession({ owner }));
      const handed = created && sessionHandle(created.sessionKey);
      for (const listed of await direct.listSessions(owner)) {
        if (listed.handle !== handed) counts.orphans++;
      }
    },
  },
  {
    name: 'RevokeSessions',
    async run(faulty, tag, counts) {
      const owner = `owner.${tag}`;
      await direct.setSession({ owner });
      await direct.setSession({ owner });
      const reply = await attempt(counts, () => faulty.revokeSessions(owner));
      if (reply !== undefined && reply.revoked !== 2) counts.wrong++;
    },
  },
];

/**
 * A FaultProxy `resetAt` between a gRPC client and server: with chance
 * `rate`, resets the connection just before the HEADERS frame that starts a
 * response (the first on its stream), so the server has run the call and its
 * caller never hears of it. Follows the HTTP/2 frames of the server's bytes
 * (RFC 9113 section 4.1: a 9-byte header, the length in its first 3 bytes).
 */
function beforeResponses(rate: number, onReset: () => void): NonNullable<NetworkFaults['resetAt']> {
  const FRAME_HEADER = 9;
  const HEADERS = 1;
  const connections = new WeakMap<
    object,
    { header: Buffer; payloadLeft: number; answered: Set<number> }
  >();
  return (connection, direction, bytes) => {
    if (direction !== 'replies') return undefined;
    let state = connections.get(connection);
    if (!state) {
      state = { header: Buffer.alloc(0), payloadLeft: 0, answered: new Set() };
      connections.set(connection, state);
    }
    let offset = 0;
    while (offset < bytes.length) {
      if (state.payloadLeft > 0) {
        const skipped = Math.min(state.payloadLeft, bytes.length - offset);
        state.payloadLeft -= skipped;
        offset += skipped;
        continue;
      }
      const frameStart = offset - state.header.length;
      const taken = bytes.subarray(offset, offset + FRAME_HEADER - state.header.length);
      state.header = Buffer.concat([state.header, taken]);
      offset += taken.length;
      if (state.header.length < FRAME_HEADER) break;
      const stream = state.header.readUInt32BE(5) & 0x7fffffff;
      const type = state.header[3];
      state.payloadLeft = state.header.readUIntBE(0, 3);
      state.header = Buffer.alloc(0);
      if (type === HEADERS && stream !== 0 && !state.answered.has(stream)) {
        state.answered.add(stream);
        if (Math.random() < rate) {
          onReset();
          return Math.max(0, frameStart);
        }
      }
    }
    return undefined;
  };
}

/** The Redis keys of the sessions whose keys a keyless SetSession gave its caller. */
const given = new Set<string>();

/**
 * The Redis keys of the stored sessions whose fleet_list_request starts with
 * `prefix`, in one pass (compact layout: the payloads start the p0 field).
 */
function storedWithRequest(prefix: string): string[] {
  const script =
    "local found = {} for _, key in ipairs(redis.call('KEYS', ARGV[1])) do " +
    "local request = redis.call('HGET', key, 'p0') " +
    'if request and string.sub(request, 1, #ARGV[2]) == ARGV[2] then found[#found + 1] = key end end ' +
    'return found';
  return redis
    .cli('-n', DATABASE, 'EVAL', script, '0', `${PREFIX}S:*`, prefix)
    .split('\n')
    .filter(Boolean);
}

async function measure(idempotencyKeys: boolean, scenario: Scenario, mode: string) {
  const counts: Counts = {
    calls: 0,
    resets: 0,
    doubled: 0,
    orphans: 0,
    lost: 0,
    failed: 0,
    wrong: 0,
  };
  const faulty = client(`127.0.0.1:${proxy.port}`, idempotencyKeys);
  const prefix = `${mode}.${scenario.name.replaceAll(' ', '-')}.`;
  proxy.faults = { resetAt: beforeResponses(RESET_RATE, () => counts.resets++) };
  try {
    let next = 0;
    const worker = async () => {
      while (next < RUNS) {
        const run = next++;
        counts.calls++;
        await scenario.run(faulty, `${prefix}${run}`, counts);
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    scenario.finish?.(prefix, counts);
  } finally {
    proxy.faults = {};
    faulty.close();
  }
  return counts;
}

describe('lost replies: connections reset after the server applied the call', () => {
  before(async () => {
    redis = await startRedis();
    server = await startServer({
      redisPort: redis.port,
      env: { REDIS_KEY_PREFIX: PREFIX, REDIS_DATABASE: DATABASE },
    });
    proxy = await FaultProxy.start(server.port);
    direct = client(server.address, true);
  });

  after(async () => {
    direct.close();
    await proxy.close();
    await server.close();
    await redis.dispose();
  });

  const rows: Array<{ mode: string; method: string } & Counts> = [];

  for (const [mode, idempotencyKeys] of [
    ['without idempotency keys', false],
    ['with idempotency keys', true],
  ] as const) {
    it(`${mode}: ${RUNS} calls of each method`, async () => {
      for (const scenario of SCENARIOS) {
        const counts = await measure(idempotencyKeys, scenario, mode.split(' ')[0] as string);
        rows.push({ mode, method: scenario.name, ...counts });
      }
      const mine = rows.filter((row) => row.mode === mode);
      const harm = mine.reduce(
        (sum, row) => sum + row.doubled + row.orphans + row.lost + row.failed + row.wrong,
        0,
      );
      assert.ok(
        mine.every((row) => row.resets > 0),
        `every method met the fault: ${JSON.stringify(mine)}`,
      );
      if (idempotencyKeys) assert.equal(harm, 0, JSON.stringify(mine));
      else assert.ok(harm > 0, 'the fault must do harm without keys, or it tests nothing');
    });
  }

  after(() => {
    const header = 'mode | method | calls | resets | doubled | orphans | lost | failed | wrong';
    const lines = rows.map((row) =>
      [
        row.mode,
        row.method,
        row.calls,
        row.resets,
        row.doubled,
        row.orphans,
        row.lost,
        row.failed,
        row.wrong,
      ].join(' | '),
    );
    console.log(`lost-replies figures: reset rate ${RESET_RATE}\n${header}\n${lines.join('\n')}`);
  });
});
