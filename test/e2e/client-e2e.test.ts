// The TypeScript client against the real server, on both stores: every method,
// typed payloads, deadlines, error codes, and which calls retry across a
// server restart.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  createClient,
  rawCodec,
  type SessionClient,
  SessionError,
  type SessionErrorCode,
} from '../../client/src/index.ts';
import { waitFor } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

interface FleetListRequest {
  from: string;
  to: string;
  seats: number;
}
interface FleetListResponse {
  cars: { id: string; priceCents: number }[];
}
type Attribute = string | number | string[];
type Sessions = SessionClient<FleetListRequest, FleetListResponse, Attribute>;

const quoteRequest: FleetListRequest = { from: 'Airport T1', to: 'Hauptbahnhof', seats: 2 };
const quoteResponse: FleetListResponse = {
  cars: [
    { id: 'sedan-7', priceCents: 4350 },
    { id: 'van-2', priceCents: 6100 },
  ],
};

const SESSION_MAX_BYTES = 65_536;

function rejectsWith(code: SessionErrorCode, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof SessionError, `a SessionError, got ${String(error)}`);
    assert.equal(error.code, code, error.message);
    if (message) {
      assert.match(error.message, message);
    }
    return true;
  };
}

/** Counts attempts: the metadata function runs once before each of them. */
function countingClient(
  address: string,
  idempotencyKeys = true,
): { client: Sessions; attempts: () => number } {
  let attempts = 0;
  const client: Sessions = createClient({
    address,
    idempotencyKeys,
    deadlineMs: 10_000,
    retries: { maxAttempts: 100, initialBackoffMs: 20, maxBackoffMs: 100 },
    metadata: () => {
      attempts++;
      return {};
    },
  });
  return { client, attempts: () => attempts };
}

for (const storeName of ['memory', 'redis'] as const) {
  describe(`the client end to end on the ${storeName} store`, () => {
    let redis: TestRedis | undefined;
    let server: TestServer;
    let sessions: Sessions;
    let prefix: string;

    const startOnPort = (port: number) =>
      startServer({
        ...(redis && { redisPort: redis.port }),
        env: { SESSION_MAX_BYTES: String(SESSION_MAX_BYTES), PORT: String(port) },
      });

    before(async () => {
      redis = storeName === 'redis' ? await startRedis() : undefined;
      server = await startOnPort(0);
      sessions = createClient({ address: server.address });
      prefix = `e2e-${storeName}-${Date.now()}`;
    });

    after(async () => {
      sessions.close();
      await server.close();
      await redis?.dispose();
    });

    it('setSession stores typed payloads that getSession returns as they were', async () => {
      const before = Date.now();
      const stored = await sessions.setSession({
        fleetListRequest: quoteRequest,
        fleetListResponse: quoteResponse,
        attributes: { rider: 'r-42', passengers: 2, stops: ['A', 'B'] },
        ttlSeconds: 120,
      });
      assert.match(stored.sessionKey, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(stored.version, 1);
      assert.ok(stored.expiresAtUnixMs >= before + 120_000);

      const session = await sessions.getSession({ sessionKey: stored.sessionKey });
      assert.ok(session);
      assert.equal(session.sessionKey, stored.sessionKey);
      assert.deepStrictEqual(session.fleetListRequest, quoteRequest);
      assert.deepStrictEqual(session.fleetListResponse, quoteResponse);
      assert.deepStrictEqual(session.attributes, {
        rider: 'r-42',
        passengers: 2,
        stops: ['A', 'B'],
      });
      assert.equal(session.ttlSeconds, 120);
      assert.equal(session.version, 1);
      assert.equal(session.expiresAtUnixMs, stored.expiresAtUnixMs);
      assert.ok(session.createdAtUnixMs >= before && session.createdAtUnixMs <= Date.now());
    });

    it('setSession with a key replaces the session and bumps its version', async () => {
      const sessionKey = `${prefix}.replace`;
      await sessions.setSession({ sessionKey, attributes: { old: 'x' } });
      const replaced = await sessions.setSession({ sessionKey, fleetListRequest: quoteRequest });
      assert.equal(replaced.sessionKey, sessionKey);
      assert.equal(replaced.version, 2);
      const session = await sessions.getSession({ sessionKey });
      assert.deepStrictEqual(session?.attributes, {});
      assert.deepStrictEqual(session?.fleetListRequest, quoteRequest);
      assert.equal('fleetListResponse' in (session ?? {}), false, 'an empty payload is left out');
    });

    it('JSON payloads of any shape round-trip through the server', async () => {
      const json: SessionClient = createClient({ address: server.address });
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.jsonValue({ maxDepth: 3 }).filter((value) => !hasNegativeZero(value)),
            fc.dictionary(
              fc.string({ minLength: 1, maxLength: 8 }),
              fc.jsonValue({ maxDepth: 1 }),
              {
                maxKeys: 4,
              },
            ),
            async (payload, attributes) => {
              const sessionKey = `${prefix}.json`;
              const clean = Object.fromEntries(
                Object.entries(attributes).filter(([, value]) => !hasNegativeZero(value)),
              );
              await json.setSession({
                sessionKey,
                fleetListRequest: payload,
                attributes: clean,
              });
              const session = await json.getSession({ sessionKey });
              assert.deepStrictEqual(session?.fleetListRequest, payload);
              assert.deepStrictEqual(session?.attributes, clean);
            },
          ),
          { numRuns: 40 },
        );
      } finally {
        json.close();
      }
    });

    it('raw bytes round-trip with rawCodec, including non-UTF-8 bytes', async () => {
      const raw = createClient<Buffer, Buffer, Buffer>({
        address: server.address,
        codec: { fleetListRequest: rawCodec, fleetListResponse: rawCodec, attributes: rawCodec },
      });
      try {
        const bytes = Buffer.from([0, 159, 146, 150, 255]);
        const { sessionKey } = await raw.setSession({
          fleetListRequest: bytes,
          fleetListResponse: Buffer.from('plain'),
          attributes: { blob: Buffer.from([0, 0, 1]), empty: Buffer.alloc(0) },
        });
        const session = await raw.getSession({ sessionKey });
        assert.deepStrictEqual(session?.fleetListRequest, bytes);
        assert.deepStrictEqual(session?.fleetListResponse, Buffer.from('plain'));
        assert.deepStrictEqual(session?.attributes, {
          blob: Buffer.from([0, 0, 1]),
          empty: Buffer.alloc(0),
        });
      } finally {
        raw.close();
      }
    });

    it('getSession returns null for a missing key, and touch extends the expiry', async () => {
      assert.equal(await sessions.getSession({ sessionKey: `${prefix}.never-set` }), null);
      const sessionKey = `${prefix}.get-touch`;
      const stored = await sessions.setSession({ sessionKey, ttlSeconds: 60 });
      await waitFor('the clock to move', async () => Date.now() > stored.expiresAtUnixMs - 59_990);
      const touched = await sessions.getSession({ sessionKey, touch: true });
      assert.ok(touched && touched.expiresAtUnixMs > stored.expiresAtUnixMs);
    });

    it('updateSession merges changes and sends only the payloads given', async () => {
      const sessionKey = `${prefix}.update`;
      await sessions.setSession({
        sessionKey,
        fleetListRequest: quoteRequest,
        fleetListResponse: quoteResponse,
        attributes: { rider: 'r-1', coupon: 'SPRING' },
      });
      const cheaper: FleetListResponse = { cars: [{ id: 'sedan-7', priceCents: 3999 }] };
      const updated = await sessions.updateSession({
        sessionKey,
        fleetListResponse: cheaper,
        setAttributes: { orderIds: ['o-1'] },
        removeAttributes: ['coupon'],
        ttlSeconds: 300,
      });
      assert.equal(updated.version, 2);
      assert.deepStrictEqual(updated.fleetListRequest, quoteRequest, 'kept: it was not sent');
      assert.deepStrictEqual(updated.fleetListResponse, cheaper);
      assert.deepStrictEqual(updated.attributes, { rider: 'r-1', orderIds: ['o-1'] });
      assert.equal(updated.ttlSeconds, 300);
      assert.deepStrictEqual(await sessions.getSession({ sessionKey }), updated);
    });

    it('updateSession with a stale expectedVersion fails with CONFLICT and changes nothing', async () => {
      const sessionKey = `${prefix}.conflict`;
      await sessions.setSession({ sessionKey, attributes: { orderIds: [] } });
      const current = await sessions.updateSession({
        sessionKey,
        setAttributes: { orderIds: ['o-1'] },
        expectedVersion: 1,
      });
      assert.equal(current.version, 2);
      await assert.rejects(
        sessions.updateSession({
          sessionKey,
          setAttributes: { orderIds: ['o-2'] },
          expectedVersion: 1,
        }),
        rejectsWith('CONFLICT', /expected_version/),
      );
      const after = await sessions.getSession({ sessionKey });
      assert.deepStrictEqual(after?.attributes, { orderIds: ['o-1'] });
      assert.equal(after?.version, 2);
    });

    it('updateSession and touchSession on a missing session fail with NOT_FOUND', async () => {
      const sessionKey = `${prefix}.missing`;
      await assert.rejects(
        sessions.updateSession({ sessionKey, setAttributes: { a: 1 } }),
        rejectsWith('NOT_FOUND', /^session_key:/),
      );
      await assert.rejects(sessions.touchSession({ sessionKey }), rejectsWith('NOT_FOUND'));
      assert.equal(await sessions.getSession({ sessionKey }), null, 'no update created it');
    });

    it('touchSession extends the idle ttl', async () => {
      const sessionKey = `${prefix}.touch`;
      const stored = await sessions.setSession({ sessionKey, ttlSeconds: 60 });
      const touched = await sessions.touchSession({ sessionKey, ttlSeconds: 600 });
      assert.ok(touched.expiresAtUnixMs >= stored.expiresAtUnixMs + 539_000);
      assert.equal((await sessions.getSession({ sessionKey }))?.ttlSeconds, 600);
    });

    it('consumeSession returns the session once, then null', async () => {
      const sessionKey = `${prefix}.consume`;
      await sessions.setSession({ sessionKey, fleetListResponse: quoteResponse });
      const consumed = await sessions.consumeSession({ sessionKey });
      assert.deepStrictEqual(consumed?.fleetListResponse, quoteResponse);
      assert.equal(await sessions.consumeSession({ sessionKey }), null);
      assert.equal(await sessions.getSession({ sessionKey }), null);
    });

    it('deleteSession reports whether a session was deleted', async () => {
      const sessionKey = `${prefix}.delete`;
      await sessions.setSession({ sessionKey });
      assert.deepStrictEqual(await sessions.deleteSession({ sessionKey }), { deleted: true });
      assert.deepStrictEqual(await sessions.deleteSession({ sessionKey }), { deleted: false });
      assert.equal(await sessions.getSession({ sessionKey }), null);
    });

    it('consume and delete with a stale expectedVersion fail with CONFLICT and leave the session', async () => {
      const sessionKey = `${prefix}.conditional`;
      await sessions.setSession({ sessionKey, fleetListResponse: quoteResponse });
      await sessions.updateSession({ sessionKey, setAttributes: { step: 'validated' } });
      const stale = rejectsWith('CONFLICT', /expected_version: is 1 but the stored version is 2/);
      await assert.rejects(sessions.consumeSession({ sessionKey, expectedVersion: 1 }), stale);
      await assert.rejects(
        sessions.deleteSession({ sessionKey, expectedVersion: 0 }),
        rejectsWith('CONFLICT', /is 0 but/),
      );
      const consumed = await sessions.consumeSession({ sessionKey, expectedVersion: 2 });
      assert.deepStrictEqual(consumed?.attributes, { step: 'validated' });
      assert.deepStrictEqual(await sessions.deleteSession({ sessionKey, expectedVersion: 2 }), {
        deleted: false,
      });
    });

    it('invalid input fails with INVALID_ARGUMENT naming the field', async () => {
      await assert.rejects(
        sessions.getSession({ sessionKey: 'no spaces allowed' }),
        rejectsWith('INVALID_ARGUMENT', /^session_key:/),
      );
      await assert.rejects(
        sessions.setSession({ sessionKey: `${prefix}.ttl`, ttlSeconds: 10 ** 9 }),
        rejectsWith('INVALID_ARGUMENT', /^ttl_seconds:/),
      );
    });

    it('a session over SESSION_MAX_BYTES fails with RESOURCE_EXHAUSTED', async () => {
      await assert.rejects(
        sessions.setSession({
          sessionKey: `${prefix}.big`,
          attributes: { note: 'x'.repeat(SESSION_MAX_BYTES) },
        }),
        rejectsWith('RESOURCE_EXHAUSTED'),
      );
    });

    if (storeName === 'redis') {
      it('a deadline fires while the store hangs, and an AbortSignal cancels', async () => {
        const sessionKey = `${prefix}.hang`;
        await sessions.setSession({ sessionKey });
        redis?.signal('SIGSTOP');
        try {
          const started = Date.now();
          await assert.rejects(
            sessions.getSession({ sessionKey }, { deadlineMs: 200 }),
            rejectsWith('DEADLINE_EXCEEDED'),
          );
          const elapsed = Date.now() - started;
          // Room for a busy machine above the 200 ms deadline, far below a hang.
          assert.ok(elapsed >= 190 && elapsed < 3000, `${elapsed} ms`);

          const controller = new AbortController();
          const pending = sessions.getSession({ sessionKey }, { signal: controller.signal });
          setTimeout(() => controller.abort(new Error('rider left')), 50);
          await assert.rejects(pending, rejectsWith('CANCELLED'));
        } finally {
          redis?.signal('SIGCONT');
        }
      });

      it('reads retry while Redis does not answer and succeed once it is back', async () => {
        const sessionKey = `${prefix}.redis-pause`;
        await sessions.setSession({ sessionKey, attributes: { rider: 'r-9' } });
        const { client, attempts } = countingClient(server.address);
        // Paused rather than stopped: the test Redis keeps no data across a restart.
        redis?.signal('SIGSTOP');
        try {
          const pending = client.getSession({ sessionKey });
          await waitFor('a retry after the store timed out', async () => attempts() >= 2);
          redis?.signal('SIGCONT');
          const session = await pending;
          assert.deepStrictEqual(session?.attributes, { rider: 'r-9' });
        } finally {
          redis?.signal('SIGCONT');
          client.close();
        }
      });
    }

    it('without idempotency keys, calls that are unsafe to repeat are not retried while the server is down', async () => {
      const { client, attempts } = countingClient(server.address, false);
      const sessionKey = `${prefix}.unsafe`;
      await client.setSession({ sessionKey });
      const port = server.port;
      await server.close();
      try {
        const unsafe: [string, () => Promise<unknown>][] = [
          ['consumeSession', () => client.consumeSession({ sessionKey })],
          ['updateSession', () => client.updateSession({ sessionKey, setAttributes: { a: 1 } })],
          ['setSession without a key', () => client.setSession({})],
        ];
        for (const [name, call] of unsafe) {
          const before = attempts();
          await assert.rejects(call(), rejectsWith('UNAVAILABLE'), name);
          assert.equal(attempts() - before, 1, `${name} made one attempt`);
        }
        const before = attempts();
        await assert.rejects(
          client.updateSession({ sessionKey, expectedVersion: 1 }, { deadlineMs: 300 }),
          (error: unknown) => error instanceof SessionError,
        );
        assert.ok(attempts() - before > 1, 'updateSession with expectedVersion is retried');
      } finally {
        client.close();
        server = await startOnPort(port);
      }
    });

    it('with idempotency keys every write retries across a server restart, and a repeat gets the first outcome', async () => {
      const { client, attempts } = countingClient(server.address);
      const sessionKey = `${prefix}.keyed`;
      await client.setSession({ sessionKey, fleetListResponse: quoteResponse });
      const idempotencyKey = `${prefix}.booking-1`;
      const port = server.port;
      await server.close();
      try {
        const before = attempts();
        const pendingConsume = client.consumeSession({ sessionKey }, { idempotencyKey });
        const pendingSet = client.setSession({ attributes: { rider: 'r-8' } });
        await waitFor('retries against the stopped server', async () => attempts() - before >= 4);
        server = await startOnPort(port);
        const created = await pendingSet;
        assert.equal((await client.getSession(created))?.attributes.rider, 'r-8');
        const consumed = await pendingConsume;
        if (storeName === 'redis') {
          assert.deepStrictEqual(consumed?.fleetListResponse, quoteResponse);
          const again = await client.consumeSession({ sessionKey }, { idempotencyKey });
          assert.deepStrictEqual(again, consumed, 'a repeat of the key gets the consumed data');
          await assert.rejects(
            client.deleteSession({ sessionKey }, { idempotencyKey }),
            rejectsWith('IDEMPOTENCY_KEY_REUSED', /^idempotency-key:/),
          );
        } else {
          assert.equal(consumed, null, 'the memory store starts empty');
        }
      } finally {
        client.close();
      }
    });

    it('idempotent calls retry across a server restart on the same port', async () => {
      const { client, attempts } = countingClient(server.address);
      const sessionKey = `${prefix}.restart`;
      await client.setSession({ sessionKey, attributes: { rider: 'r-7' } });
      const port = server.port;
      await server.close();
      try {
        const before = attempts();
        const pendingGet = client.getSession({ sessionKey });
        const pendingDelete = client.deleteSession({ sessionKey: `${prefix}.restart-other` });
        await waitFor('retries against the stopped server', async () => attempts() - before >= 4);
        server = await startOnPort(port);
        const session = await pendingGet;
        assert.deepStrictEqual(await pendingDelete, { deleted: false });
        if (storeName === 'redis') {
          assert.deepStrictEqual(session?.attributes, { rider: 'r-7' }, 'Redis kept the session');
        } else {
          assert.equal(session, null, 'the memory store starts empty');
        }
      } finally {
        client.close();
      }
    });
  });
}

function hasNegativeZero(value: unknown): boolean {
  if (Object.is(value, -0)) {
    return true;
  }
  return value !== null && typeof value === 'object' && Object.values(value).some(hasNegativeZero);
}
