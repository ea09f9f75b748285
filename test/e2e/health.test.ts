import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { waitFor } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

describe('health follows Redis', () => {
  let redis: TestRedis;
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    redis = await startRedis();
    server = await startServer({ redisPort: redis.port, env: { REDIS_COMMAND_TIMEOUT: '500ms' } });
    client = rawClient(server.address);
  });

  after(async () => {
    client.close();
    await server.close();
    await redis.dispose();
  });

  it('goes NOT_SERVING within about a second of Redis stopping; calls fail fast with UNAVAILABLE', async () => {
    const { session_key } = await client.call('SetSession', {
      fleet_list_request: Buffer.from('kept'),
    });
    await redis.stop();
    const stoppedAt = Date.now();
    await waitFor('NOT_SERVING', async () => (await client.health()) === 'NOT_SERVING', 10_000);
    const notServingAfterMs = Date.now() - stoppedAt;
    // About a second on an idle machine; the bound leaves room for a busy one.
    assert.ok(notServingAfterMs < 5000, `NOT_SERVING after ${notServingAfterMs} ms`);

    const started = Date.now();
    await assert.rejects(
      client.call('GetSession', { session_key }),
      (error: { code: number; details: string }) => {
        assert.equal(error.code, status.UNAVAILABLE);
        assert.match(error.details, /^store: /);
        return true;
      },
    );
    // Redis refuses connections: the call fails at once; 3 s only rules out a hang.
    assert.ok(Date.now() - started < 3000, 'fails without hanging');
  });

  it('returns to SERVING within a few seconds of Redis returning, and serves again', async () => {
    await redis.restart();
    const restartedAt = Date.now();
    await waitFor('SERVING', async () => (await client.health()) === 'SERVING', 15_000);
    assert.ok(Date.now() - restartedAt < 10_000);
    const { session_key } = await client.call('SetSession', {});
    assert.equal((await client.call('GetSession', { session_key })).session_key, session_key);
  });

  it('a paused Redis makes calls end with UNAVAILABLE within the command timeout', async () => {
    redis.signal('SIGSTOP');
    try {
      const started = Date.now();
      await assert.rejects(client.call('SetSession', {}), { code: status.UNAVAILABLE });
      const elapsed = Date.now() - started;
      // The 500 ms command timeout; the upper bound leaves room for a busy machine.
      assert.ok(elapsed >= 400 && elapsed < 5000, `ended after ${elapsed} ms`);
    } finally {
      redis.signal('SIGCONT');
    }
    await waitFor('SERVING after resume', async () => (await client.health()) === 'SERVING', 5000);
    const { session_key } = await client.call('SetSession', {});
    assert.ok(session_key);
  });
});
