import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { createClient, type SessionClient, SessionError } from '../src/index.ts';
import { backoffMs } from '../src/retry.ts';
import {
  type MethodName,
  type ScriptedServer,
  StatusError,
  startScriptedServer,
} from './scripted-server.ts';

const unavailable = () => {
  throw new StatusError(status.UNAVAILABLE, 'store unreachable');
};

const session = {
  session_key: 'k',
  attributes: {},
  ttl_seconds: 60,
  expires_at_unix_ms: 1,
  version: 2,
  created_at_unix_ms: 1,
};

describe('backoffMs', () => {
  test('stays between 0 and the doubling ceiling, capped by maxBackoffMs', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60 }),
        fc.integer({ min: 1, max: 1000 }),
        fc.integer({ min: 0, max: 5000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        (retry, initialBackoffMs, extra, random) => {
          const policy = {
            maxAttempts: 3,
            initialBackoffMs,
            maxBackoffMs: initialBackoffMs + extra,
          };
          const delay = backoffMs(retry, policy, () => random);
          const ceiling = Math.min(policy.maxBackoffMs, initialBackoffMs * 2 ** (retry - 1));
          assert.ok(delay >= 0 && delay < ceiling + 1e-9, `${delay} within [0, ${ceiling})`);
        },
      ),
    );
  });

  test('doubles the ceiling per retry', () => {
    const policy = { maxAttempts: 5, initialBackoffMs: 50, maxBackoffMs: 1000 };
    const nearlyOne = () => 0.999_999;
    assert.deepStrictEqual(
      [1, 2, 3, 4, 5, 6].map((retry) => Math.round(backoffMs(retry, policy, nearlyOne))),
      [50, 100, 200, 400, 800, 1000],
    );
  });
});

describe('which calls retry on UNAVAILABLE', () => {
  let server: ScriptedServer;
  let keyed: SessionClient;
  let unkeyed: SessionClient;

  before(async () => {
    server = await startScriptedServer({
      SetSession: unavailable,
      GetSession: unavailable,
      UpdateSession: unavailable,
      TouchSession: unavailable,
      ConsumeSession: unavailable,
      DeleteSession: unavailable,
      RotateSessionKey: unavailable,
      ListSessions: unavailable,
      RevokeSessions: unavailable,
    });
    const retries = { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 2 };
    keyed = createClient({ address: server.address, retries });
    unkeyed = createClient({ address: server.address, retries, idempotencyKeys: false });
  });
  after(() => {
    keyed.close();
    unkeyed.close();
    server.close();
  });

  /** Name, method, attempts without idempotency keys, the call. */
  const cases: [string, MethodName, number, (c: SessionClient) => Promise<unknown>][] = [
    ['getSession', 'GetSession', 3, (c) => c.getSession({ sessionKey: 'a' })],
    [
      'getSession with touch',
      'GetSession',
      3,
      (c) => c.getSession({ sessionKey: 'b', touch: true }),
    ],
    ['touchSession', 'TouchSession', 3, (c) => c.touchSession({ sessionKey: 'a' })],
    ['deleteSession', 'DeleteSession', 3, (c) => c.deleteSession({ sessionKey: 'a' })],
    ['setSession with a key', 'SetSession', 3, (c) => c.setSession({ sessionKey: 'a' })],
    ['setSession without a key', 'SetSession', 1, (c) => c.setSession({})],
    ['setSession with an empty key', 'SetSession', 1, (c) => c.setSession({ sessionKey: '' })],
    [
      'updateSession with expectedVersion',
      'UpdateSession',
      3,
      (c) => c.updateSession({ sessionKey: 'a', expectedVersion: 1 }),
    ],
    [
      'updateSession without expectedVersion',
      'UpdateSession',
      1,
      (c) => c.updateSession({ sessionKey: 'a', setAttributes: { x: 1 } }),
    ],
    ['consumeSession', 'ConsumeSession', 1, (c) => c.consumeSession({ sessionKey: 'a' })],
    ['rotateSessionKey', 'RotateSessionKey', 1, (c) => c.rotateSessionKey({ sessionKey: 'a' })],
    ['listSessions', 'ListSessions', 3, (c) => c.listSessions('rider-1')],
    ['revokeSessions', 'RevokeSessions', 3, (c) => c.revokeSessions('rider-1')],
  ];

  const attempted = async (client: SessionClient, method: MethodName, call: Call) => {
    const before = server.callsTo(method).length;
    await assert.rejects(
      call(client),
      (error: unknown) => error instanceof SessionError && error.code === 'UNAVAILABLE',
    );
    return server.callsTo(method).slice(before);
  };

  for (const [name, method, attempts, call] of cases) {
    test(`${name}: ${attempts} attempt(s) without idempotency keys, none sent`, async () => {
      const calls = await attempted(unkeyed, method, call);
      assert.equal(calls.length, attempts);
      for (const recorded of calls) assert.deepEqual(recorded.metadata.get('idempotency-key'), []);
    });

    test(`${name}: 3 attempts with idempotency keys, all with the same key`, async () => {
      const calls = await attempted(keyed, method, call);
      assert.equal(calls.length, 3);
      const keys = new Set(calls.map((recorded) => recorded.metadata.get('idempotency-key')[0]));
      assert.equal(keys.size, 1);
      const [key] = keys;
      if (method === 'GetSession' || method === 'ListSessions')
        assert.equal(key, undefined, 'reads carry no key');
      else assert.match(String(key), /^[0-9a-f-]{36}$/);
    });
  }

  test("a caller's own key is sent with every attempt and makes any write retry", async () => {
    const calls = await attempted(unkeyed, 'ConsumeSession', (c) =>
      c.consumeSession({ sessionKey: 'a' }, { idempotencyKey: 'booking-42/consume' }),
    );
    assert.deepEqual(
      calls.map((recorded) => recorded.metadata.get('idempotency-key')),
      [['booking-42/consume'], ['booking-42/consume'], ['booking-42/consume']],
    );
    await assert.rejects(
      keyed.setSession({}, { idempotencyKey: 'has space' }),
      /idempotencyKey must be 1-255 visible ASCII/,
    );
  });
});

type Call = (c: SessionClient) => Promise<unknown>;

describe('retry policy', () => {
  let server: ScriptedServer;

  before(async () => {
    server = await startScriptedServer({
      // Fails twice, then answers: the key says which behaviour to script.
      GetSession: (request, attempt) => {
        if (request.session_key === 'flaky' && attempt % 3 !== 0) {
          unavailable();
        }
        if (request.session_key === 'internal') {
          throw new StatusError(status.INTERNAL, 'bug');
        }
        if (request.session_key === 'down') {
          unavailable();
        }
        return session;
      },
    });
  });
  after(() => server.close());

  test('a retried call succeeds once the server answers', async () => {
    const client = createClient({ address: server.address, retries: { initialBackoffMs: 1 } });
    try {
      const before = server.callsTo('GetSession').length;
      const found = await client.getSession({ sessionKey: 'flaky' });
      assert.equal(found?.version, 2);
      assert.equal(server.callsTo('GetSession').length - before, 3);
    } finally {
      client.close();
    }
  });

  test('statuses other than UNAVAILABLE are not retried', async () => {
    const client = createClient({ address: server.address, retries: { initialBackoffMs: 1 } });
    try {
      const before = server.callsTo('GetSession').length;
      await assert.rejects(client.getSession({ sessionKey: 'internal' }), { code: 'INTERNAL' });
      assert.equal(server.callsTo('GetSession').length - before, 1);
    } finally {
      client.close();
    }
  });

  test('retries: false makes a single attempt', async () => {
    const client = createClient({ address: server.address, retries: false });
    try {
      const before = server.callsTo('GetSession').length;
      await assert.rejects(client.getSession({ sessionKey: 'down' }), { code: 'UNAVAILABLE' });
      assert.equal(server.callsTo('GetSession').length - before, 1);
    } finally {
      client.close();
    }
  });

  test('retries stop before a backoff would pass the deadline', async () => {
    // Backoffs of up to 2 s against a 3 s deadline: a client that slept a
    // backoff past the deadline would give up seconds late, far beyond what
    // a busy machine adds to a call.
    const client = createClient({
      address: server.address,
      retries: { maxAttempts: 1000, initialBackoffMs: 2000, maxBackoffMs: 2000 },
    });
    try {
      const before = server.callsTo('GetSession').length;
      const started = Date.now();
      // The last attempt may start with a few ms left and hit the deadline itself.
      await assert.rejects(
        client.getSession({ sessionKey: 'down' }, { deadlineMs: 3000 }),
        (error: unknown) =>
          error instanceof SessionError &&
          (error.code === 'UNAVAILABLE' || error.code === 'DEADLINE_EXCEEDED'),
      );
      const elapsed = Date.now() - started;
      const attempts = server.callsTo('GetSession').length - before;
      assert.ok(elapsed < 3800, `gave up after ${elapsed} ms, by the 3000 ms deadline`);
      // Backoffs average 1 s, so a 3 s budget allows a few attempts, not 1000.
      assert.ok(attempts >= 1 && attempts < 10, `${attempts} attempts`);
    } finally {
      client.close();
    }
  });

  test('aborting during a backoff stops the retries with CANCELLED', async () => {
    const client = createClient({
      address: server.address,
      retries: { maxAttempts: 5, initialBackoffMs: 5000, maxBackoffMs: 5000 },
    });
    try {
      const controller = new AbortController();
      const before = server.callsTo('GetSession').length;
      setTimeout(() => controller.abort(new Error('user left')), 100);
      const started = Date.now();
      await assert.rejects(
        client.getSession(
          { sessionKey: 'down' },
          { signal: controller.signal, deadlineMs: 60_000 },
        ),
        (error: unknown) =>
          error instanceof SessionError &&
          error.code === 'CANCELLED' &&
          (error.cause as Error).message === 'user left',
      );
      // Backoffs of 5 s each would take 20 s to exhaust 5 attempts.
      assert.ok(Date.now() - started < 4000);
      assert.ok(server.callsTo('GetSession').length - before < 5);
    } finally {
      client.close();
    }
  });
});

describe('a server restarted on the same port', () => {
  test('is reached again by a retried call', async () => {
    let server = await startScriptedServer({ GetSession: () => session });
    const { port } = server;
    const client = createClient({
      address: server.address,
      retries: { maxAttempts: 30, initialBackoffMs: 20, maxBackoffMs: 100 },
    });
    try {
      assert.equal((await client.getSession({ sessionKey: 'k' }))?.version, 2);
      server.close();
      // Restart while the call below is retrying against the dead port.
      const restarted = new Promise<void>((resolve) => {
        setTimeout(async () => {
          server = await startScriptedServer({ GetSession: () => session }, port);
          resolve();
        }, 300);
      });
      const started = Date.now();
      // grpc-js alone would not reconnect for about a second: the deadline is shorter.
      const found = await client.getSession({ sessionKey: 'k' }, { deadlineMs: 800 });
      await restarted;
      assert.equal(found?.version, 2);
      assert.ok(Date.now() - started >= 250, 'answered by the restarted server');
      assert.equal(server.callsTo('GetSession').length, 1);
    } finally {
      client.close();
      server.close();
    }
  });
});
