import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import type { CallScope } from '../../src/call-scope.ts';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { compactKey } from '../../src/store/redis/keys.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import { FaultProxy, sleep } from '../support/faults.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { waitFor } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig, untilAnswers } from '../support/redis-config.ts';
import { startServer, type TestServer } from '../support/server.ts';
import { draft, LIMITS, uniqueKey } from '../support/store-contract.ts';
import { WriteLog } from '../support/write-log.ts';

// The fence of every write (src/store/redis/connection.ts), reproduced with a
// proxy that holds bytes on their way to Redis and Redis's own record of
// what it ran (MONITOR). Each case failed before the fence waited for its
// link and for its caller's deadline.

const TIMEOUT_MS = 1000;
const prefix = `fence-${process.pid}:`;

let redis: TestRedis;
let proxy: FaultProxy;
let log: WriteLog;

before(async () => {
  redis = await startRedis();
  proxy = await FaultProxy.start(redis.port);
  log = await WriteLog.start(redis.port);
});

after(async () => {
  await log.close();
  await proxy.close();
  await redis.dispose();
});

async function openStore(): Promise<RedisStore> {
  const store = new RedisStore(
    { ...redisConfig(proxy.port, prefix), commandTimeoutMs: TIMEOUT_MS },
    LIMITS,
    createLogger('silent'),
  );
  await untilAnswers(store, 'the store');
  return store;
}

const payload = (session: { fleetListRequest: Buffer } | null) =>
  session?.fleetListRequest.toString() ?? null;

/** The runs of the put script on this session key, from Redis's record. */
const putsOf = (sessionKey: string) =>
  log.runs.filter((run) => run.script === 'put' && run.key === compactKey(prefix, sessionKey));

/**
 * The put with this request: the compact put's ARGV is fence, now, ttl, lifetime, size,
 * request length, owner, limit, policy, retire, p0, the payloads (request then response) ...
 */
const putWith = (sessionKey: string, fleetListRequest: string) =>
  putsOf(sessionKey).find((run) => run.argv[11]?.startsWith(fleetListRequest));

const settled = <T>(promise: Promise<T>) =>
  promise.then(
    (value) => ({ ok: true as const, value, at: Date.now() }),
    (error: unknown) => ({ ok: false as const, error, at: Date.now() }),
  );

describe('the fence: no write applies after its caller was told it failed', () => {
  it('a write rejected when its link is replaced waits for its fence: the held write never lands over its retry', async () => {
    const store = await openStore();
    try {
      // The preconditions depend on timers (the second write must go out on
      // the stalled link before the first command times out): on a machine
      // too slow for them the round is tried again, not counted.
      let rounds = 0;
      for (;;) {
        rounds++;
        assert.ok(rounds <= 5, 'the scenario could not be set up in 5 rounds');
        const key = uniqueKey();
        await store.put(key, draft({ fleetListRequest: Buffer.from('v1') }), Date.now());
        const release = proxy.hold('commands', 'open');
        // Times out after TIMEOUT_MS and gets the link replaced.
        const stalled = settled(store.get(uniqueKey(), Date.now(), false));
        await sleep(TIMEOUT_MS / 2);
        const heldAt = Date.now();
        const held = await settled(
          store.put(key, draft({ fleetListRequest: Buffer.from('held') }), heldAt),
        );
        if (held.ok) {
          release();
          continue;
        }
        const retry = await store.put(
          key,
          draft({ fleetListRequest: Buffer.from('retry') }),
          Date.now(),
        );
        // The stall ends: the held bytes reach Redis, as a network delivers them late.
        release();
        assert.equal((await stalled).ok, false);
        await waitFor('Redis to run the held write', async () => {
          await log.settle();
          return putWith(key, 'held') !== undefined;
        });
        const run = putWith(key, 'held');
        assert.ok(run);
        assert.ok(held.error instanceof SessionError);
        assert.equal(held.error.code, ErrorCode.StoreUnavailable);
        assert.ok(
          !run.wrote || run.atMs < held.at,
          `the held write ran at ${run.atMs}, after its caller was told it failed at ${held.at}`,
        );
        // The caller was told only once Redis would refuse the write.
        assert.ok(held.at >= Number(run.argv[0]), 'the failure came before the fence closed');
        const session = await store.get(key, Date.now(), false);
        assert.equal(payload(session), 'retry');
        assert.equal(session?.version, retry.version);
        return;
      }
    } finally {
      await store.close();
    }
  });

  it('a write in flight when the connection is reset fails once its fence has closed, not before', async () => {
    const store = await openStore();
    try {
      const key = uniqueKey();
      const release = proxy.hold('commands', 'open');
      const sentAt = Date.now();
      const write = settled(store.put(key, draft(), sentAt));
      await sleep(50);
      proxy.resetAll();
      const outcome = await write;
      release();
      assert.equal(outcome.ok, false);
      const fenceAt = sentAt + (TIMEOUT_MS * 3) / 4;
      assert.ok(outcome.at >= fenceAt, `failed ${fenceAt - outcome.at} ms before its fence closed`);
      assert.ok(outcome.at < sentAt + TIMEOUT_MS, 'failed as lost, not as timed out');
      await untilAnswers(store, 'the store to reconnect');
      assert.equal(await store.get(key, Date.now(), false), null);
    } finally {
      await store.close();
    }
  });

  it('a write that never left fails at once when Redis is unreachable', async () => {
    const store = await openStore();
    const down = await FaultProxy.start(1);
    // A long command timeout puts the fence 6 s away, far beyond what a busy machine adds.
    const unreachable = new RedisStore(
      { ...redisConfig(down.port, prefix), commandTimeoutMs: 8000 },
      LIMITS,
      createLogger('silent'),
    );
    try {
      const started = Date.now();
      const outcome = await settled(unreachable.put(uniqueKey(), draft(), started));
      assert.equal(outcome.ok, false);
      // It did not wait for its fence.
      assert.ok(outcome.at - started < 3000, `took ${outcome.at - started} ms`);
    } finally {
      await unreachable.close();
      await down.close();
      await store.close();
    }
  });

  it("a write's fence is 3/4 of the command timeout, or half the time left before the caller's deadline when earlier", async () => {
    const store = await openStore();
    try {
      const cases = [
        { name: 'no deadline', deadlineInMs: Number.POSITIVE_INFINITY, fenceInMs: 750 },
        { name: 'a 400 ms deadline', deadlineInMs: 400, fenceInMs: 200 },
        { name: 'a 1.2 s deadline', deadlineInMs: 1200, fenceInMs: 600 },
        { name: 'a 5 s deadline', deadlineInMs: 5000, fenceInMs: 750 },
      ];
      for (const { name, deadlineInMs, fenceInMs } of cases) {
        const key = uniqueKey();
        const before = Date.now();
        const scope: CallScope = { deadlineMs: before + deadlineInMs, cancelled: false };
        await store.put(key, draft(), before, scope);
        const after = Date.now();
        await log.settle();
        const fence = Number(putsOf(key)[0]?.argv[0]);
        // One clock reading between `before` and `after` gives the fence.
        assert.ok(
          fence >= before + fenceInMs - (after - before) && fence <= after + fenceInMs,
          `${name}: fence ${fence - before} ms after the call began`,
        );
      }
    } finally {
      await store.close();
    }
  });

  it('a call already cancelled, or past its deadline, sends nothing to Redis', async () => {
    const store = await openStore();
    try {
      const key = uniqueKey();
      const cases: Array<[CallScope, ErrorCode]> = [
        [{ deadlineMs: Number.POSITIVE_INFINITY, cancelled: true }, ErrorCode.Cancelled],
        [{ deadlineMs: Date.now() - 1, cancelled: false }, ErrorCode.DeadlineExceeded],
        // Too close to leave a write any time: its fence would already be closed.
        [{ deadlineMs: Date.now() + 1, cancelled: false }, ErrorCode.DeadlineExceeded],
      ];
      for (const [scope, code] of cases) {
        const expect = (error: unknown) => error instanceof SessionError && error.code === code;
        await assert.rejects(store.put(key, draft(), Date.now(), scope), expect);
        await assert.rejects(
          store.update(
            key,
            { setAttributes: new Map(), removeAttributes: [], ttlSeconds: 0 },
            Date.now(),
            scope,
          ),
          expect,
        );
        await assert.rejects(store.delete(key, Date.now(), undefined, scope), expect);
        if (code === ErrorCode.Cancelled || scope.deadlineMs < Date.now())
          await assert.rejects(store.get(key, Date.now(), false, scope), expect);
      }
      await log.settle();
      assert.deepEqual(
        log.runs.filter((run) => run.key === compactKey(prefix, key)),
        [],
        'Redis ran a command for a call that was over',
      );
    } finally {
      await store.close();
    }
  });
});

describe("the fence and the caller's deadline, through the server", () => {
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    server = await startServer({
      redisPort: proxy.port,
      env: { REDIS_COMMAND_TIMEOUT: `${TIMEOUT_MS}ms`, REDIS_KEY_PREFIX: prefix },
    });
    client = rawClient(server.address);
  });

  after(async () => {
    client.close();
    await server.close();
  });

  it('a write held past its caller’s 0.5 s deadline does not land once the caller has given up', async () => {
    await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
    const key = uniqueKey();
    const release = proxy.hold('commands', 'open');
    const call = settled(
      client.call(
        'SetSession',
        { session_key: key, fleet_list_request: Buffer.from('late') },
        { deadlineMs: 500 },
      ),
    );
    const outcome = await call;
    assert.equal(outcome.ok, false);
    assert.equal((outcome.error as { code: number }).code, status.DEADLINE_EXCEEDED);
    // The stall outlasts the caller's deadline, not the command timeout.
    await sleep(100);
    release();
    await waitFor('Redis to run the held write', async () => {
      await log.settle();
      return putWith(key, 'late') !== undefined;
    });
    const run = putWith(key, 'late');
    assert.ok(run);
    assert.ok(
      !run.wrote || run.atMs < outcome.at,
      `the write ran ${Math.round((run.atMs - outcome.at) * 10) / 10} ms after its caller gave up`,
    );
    await assert.rejects(
      client.call('GetSession', { session_key: key }),
      (error: { code: number }) => {
        assert.equal(error.code, status.NOT_FOUND);
        return true;
      },
    );
  });
});
