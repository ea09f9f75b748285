import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { assertNoKeysInLogs, assertNoUnhandled, LONG, sleep } from '../support/faults.ts';
import { rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const IN_FLIGHT = LONG ? 200 : 50;
const GRACE_MS = 5000;

/**
 * SIGTERM while ~50 calls are in flight (held up by a paused Redis): they all
 * finish, calls made after the signal are refused with UNAVAILABLE, and the
 * process exits 0 within SHUTDOWN_GRACE. On both transports.
 */
describe('graceful shutdown under load', () => {
  let redis: TestRedis;

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    redis.signal('SIGCONT');
    await redis.dispose();
  });

  for (const transport of ['lean', 'grpc-js'] as const) {
    it(`GRPC_TRANSPORT=${transport}: in-flight calls finish, new ones are refused, exit 0 in the grace period`, async () => {
      const port = await freePort();
      const service = await spawnService({
        PORT: String(port),
        GRPC_TRANSPORT: transport,
        REDIS_HOST: '127.0.0.1',
        REDIS_PORT: String(redis.port),
        REDIS_COMMAND_TIMEOUT: '10s',
        SHUTDOWN_GRACE: `${GRACE_MS}ms`,
      });
      const client = rawClient(`127.0.0.1:${port}`);
      const keys: string[] = [];
      try {
        await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
        for (let i = 0; i < 10; i++) keys.push((await client.call('SetSession', {})).session_key);

        redis.signal('SIGSTOP');
        const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) => {
          const call =
            i % 3 === 0
              ? client.call('SetSession', { ttl_seconds: 60 }, { deadlineMs: 8000 })
              : i % 3 === 1
                ? client.call(
                    'GetSession',
                    { session_key: keys[i % keys.length] },
                    { deadlineMs: 8000 },
                  )
                : client.call(
                    'UpdateSession',
                    { session_key: keys[i % keys.length], set_attributes: { n: Buffer.from([i]) } },
                    { deadlineMs: 8000 },
                  );
          return call.then(
            (reply) => {
              if (typeof reply.session_key === 'string') keys.push(reply.session_key);
              return status.OK;
            },
            (error: { code: number }) => error.code,
          );
        });
        await sleep(300);
        const signalledAt = Date.now();
        service.child.kill('SIGTERM');
        await waitFor('the shutdown log line', async () =>
          service.logs.some((line) => line.msg === 'shutting down'),
        );
        // A new call on the client that has calls in flight, and one on a new client.
        const refused = await Promise.all([
          client.call('GetSession', { session_key: 'late' }, { deadlineMs: 2000 }).then(
            () => status.OK,
            (error: { code: number }) => error.code,
          ),
          (async () => {
            const late = rawClient(`127.0.0.1:${port}`);
            try {
              return await late
                .call('GetSession', { session_key: 'late' }, { deadlineMs: 2000 })
                .then(
                  () => status.OK,
                  (error: { code: number }) => error.code,
                );
            } finally {
              late.close();
            }
          })(),
        ]);
        await sleep(500);
        redis.signal('SIGCONT');
        const codes = await Promise.all(inFlight);
        const { code } = await service.exited();
        const exitedAfterMs = Date.now() - signalledAt;
        const finished = codes.filter((c) => c === status.OK).length;
        const logs = assertNoKeysInLogs([service], keys);
        console.log(
          `shutdown figures (${transport}): ${JSON.stringify({
            inFlight: IN_FLIGHT,
            finishedOk: finished,
            newCalls: refused.map((c) => status[c]),
            exitCode: code,
            exitedAfterMs,
            graceMs: GRACE_MS,
            logLines: logs.lines,
          })}`,
        );
        assert.equal(finished, IN_FLIGHT, `in-flight calls: ${codes.map((c) => status[c])}`);
        assert.deepEqual(refused, [status.UNAVAILABLE, status.UNAVAILABLE]);
        assert.equal(code, 0);
        assert.ok(exitedAfterMs < GRACE_MS, `exited ${exitedAfterMs} ms after SIGTERM`);
        assertNoUnhandled(service);
      } finally {
        redis.signal('SIGCONT');
        client.close();
        service.child.kill('SIGKILL');
      }
    });
  }
});
