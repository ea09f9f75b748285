// The TypeScript client given two real service instances on one Redis
// (`addresses`): calls are spread round robin over both, either instance
// serves any session, and when one stops the calls go on on the other.
// Both ways the client builds its channels are covered: IP literals (one
// grpc-js channel, round_robin inside) and hostnames (a channel each, rotated
// by the client).
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createClient, type SessionClient, SessionError } from '../../client/src/index.ts';
import { waitFor } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

type Sessions = SessionClient<{ from: string }, { cars: string[] }, string>;

/** gRPC calls a server has handled, optionally of one method (counted from its metrics). */
async function callsServed(server: TestServer, method?: string): Promise<number> {
  const { values } = await server.server.metrics.calls.get();
  return values
    .filter(
      (v) => v.labels.transport === 'grpc' && (method === undefined || v.labels.method === method),
    )
    .reduce((sum, v) => sum + v.value, 0);
}

describe('the client over two instances on one Redis', () => {
  let redis: TestRedis;

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.dispose();
  });

  for (const [mode, host] of [
    ['IP literals', '127.0.0.1'],
    ['hostnames', 'localhost'],
  ] as const) {
    describe(`addresses as ${mode} (${host})`, () => {
      let servers: TestServer[] = [];
      const running = new Set<TestServer>();
      let sessions: Sessions;

      const served = (method?: string) =>
        Promise.all(servers.map((server) => callsServed(server, method)));

      before(async () => {
        servers = [
          await startServer({ redisPort: redis.port }),
          await startServer({ redisPort: redis.port }),
        ];
        for (const server of servers) running.add(server);
        sessions = createClient({
          addresses: servers.map((server) => `${host}:${server.port}`),
          retries: { maxAttempts: 5, initialBackoffMs: 20, maxBackoffMs: 200 },
        });
        // Both connections up before counting: the first calls may all go to
        // whichever instance answered first.
        await waitFor('both instances to serve calls', async () => {
          await sessions.getSession({ sessionKey: 'warm-up' });
          return (await served()).every((count) => count > 0);
        });
      });

      after(async () => {
        sessions?.close();
        await Promise.all([...running].map((server) => server.close()));
      });

      it('spreads calls round robin over both instances', async () => {
        const before = await served();
        const calls = 100;
        for (let i = 0; i < calls; i++) {
          assert.equal(await sessions.getSession({ sessionKey: `absent-${i}` }), null);
        }
        const after = await served();
        const shares = after.map((count, index) => count - (before[index] ?? 0));
        assert.equal(
          shares.reduce((a, b) => a + b, 0),
          calls,
        );
        for (const share of shares) {
          assert.ok(share >= calls * 0.4, `each instance took its share: ${shares.join(' / ')}`);
        }
      });

      it('a session set through the client is the same whichever instance serves it', async () => {
        const { sessionKey } = await sessions.setSession({
          fleetListRequest: { from: 'Airport' },
          attributes: { rider: 'r-1' },
        });
        const readsBefore = await served('GetSession');
        for (let i = 0; i < 6; i++) {
          const session = await sessions.getSession({ sessionKey });
          assert.deepStrictEqual(session?.fleetListRequest, { from: 'Airport' });
          assert.equal(session?.version, 1);
        }
        const readsAfter = await served('GetSession');
        assert.ok(
          readsAfter.every((count, index) => count > (readsBefore[index] ?? 0)),
          'both instances served reads of the session',
        );

        await sessions.updateSession({
          sessionKey,
          fleetListResponse: { cars: ['sedan'] },
          expectedVersion: 1,
        });
        for (let i = 0; i < 4; i++) {
          const session = await sessions.getSession({ sessionKey });
          assert.equal(session?.version, 2, 'every instance sees the update');
          assert.deepStrictEqual(session?.fleetListResponse, { cars: ['sedan'] });
        }
        await assert.rejects(
          sessions.updateSession({ sessionKey, setAttributes: { x: 'y' }, expectedVersion: 1 }),
          (error) => error instanceof SessionError && error.code === 'CONFLICT',
        );
        assert.equal((await sessions.consumeSession({ sessionKey }))?.attributes.rider, 'r-1');
        for (let i = 0; i < 4; i++) {
          assert.equal(
            await sessions.getSession({ sessionKey }),
            null,
            'consumed for every instance',
          );
        }
      });

      it('after one instance stops under load, reads keep succeeding on the other', async (t) => {
        const [stopping, survivor] = servers;
        assert.ok(stopping && survivor);
        const { sessionKey } = await sessions.setSession({
          sessionKey: `replicas-${host}-${Date.now()}`,
          attributes: { rider: 'r-2' },
        });

        let stop = false;
        const reads = { ok: 0, failed: [] as string[] };
        // Unsafe calls (setSession without a key) are not retried: count what a caller sees.
        const writes = { ok: 0, failed: [] as string[] };
        const reader = async () => {
          while (!stop) {
            try {
              const session = await sessions.getSession({ sessionKey });
              assert.equal(session?.attributes.rider, 'r-2');
              reads.ok++;
            } catch (error) {
              reads.failed.push(String(error));
            }
          }
        };
        const writer = async () => {
          while (!stop) {
            try {
              await sessions.setSession({ attributes: { rider: 'w' }, ttlSeconds: 60 });
              writes.ok++;
            } catch (error) {
              writes.failed.push(error instanceof SessionError ? error.code : String(error));
            }
          }
        };
        const load = Promise.all([reader(), reader(), reader(), reader(), writer()]);

        await sleep(200);
        const readsBeforeStop = reads.ok;
        await stopping.close();
        running.delete(stopping);
        const survivorBefore = await callsServed(survivor);
        await sleep(500);
        stop = true;
        await load;

        t.diagnostic(
          `reads: ${reads.ok} ok, ${reads.failed.length} failed; unkeyed setSession: ${writes.ok} ok, ${writes.failed.length} failed (${writes.failed.join(', ') || 'none'})`,
        );
        assert.deepEqual(reads.failed, [], 'no read failed');
        assert.ok(readsBeforeStop > 0 && reads.ok > readsBeforeStop, 'reads ran before and after');
        assert.ok(
          writes.failed.every((code) => code === 'UNAVAILABLE'),
          `an unsafe call fails, if at all, with UNAVAILABLE: ${writes.failed.join(', ')}`,
        );
        assert.ok(
          (await callsServed(survivor)) - survivorBefore > 0,
          'the survivor served the calls made after the stop',
        );

        // Everything now goes to the survivor, with no failure.
        const survivorNow = await callsServed(survivor);
        for (let i = 0; i < 20; i++) {
          assert.ok(await sessions.getSession({ sessionKey }));
          await sessions.setSession({ attributes: { rider: 'w' }, ttlSeconds: 60 });
        }
        assert.equal((await callsServed(survivor)) - survivorNow, 40);
      });

      it('the stopped instance takes its share again once it is back on its port', async () => {
        const [stopped] = servers;
        assert.ok(stopped && !running.has(stopped));
        await stopped.restart();
        running.add(stopped);
        // The client reconnects on its retry backoff (at most maxBackoffMs apart).
        await waitFor('the restarted instance to serve calls', async () => {
          await sessions.getSession({ sessionKey: 'absent' });
          return (await callsServed(stopped)) > 0;
        });
      });
    });
  }
});
