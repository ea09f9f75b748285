import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { createLogger } from '../src/logger.ts';
import { RedisStore } from '../src/store/redis/redis-store.ts';
import { type RawClient, rawClient } from './support/grpc.ts';
import { waitFor } from './support/ports.ts';
import { startRedis, type TestRedis } from './support/redis.ts';
import { redisConfig } from './support/redis-config.ts';
import { startServer, type TestServer } from './support/server.ts';
import { LIMITS } from './support/store-contract.ts';

const TIMEOUT_MS = 400;
const PAUSES_MS = [50, 200, 290, 330, 380, 450, 900];
const CALLS_PER_ROUND = 30;

interface Outcome {
  key: string;
  ok: boolean;
  code?: number;
}

const outcome = (key: string, call: Promise<unknown>): Promise<Outcome> =>
  call.then(
    () => ({ key, ok: true }),
    (error: { code: number }) => ({ key, ok: false, code: error.code }),
  );

/**
 * Redis paused (SIGSTOP) while writes are in flight, then resumed: no write
 * may apply whose call returned an error, and every acknowledged one must.
 * Pauses straddle the fence (3/4 of the command timeout) and the timeout.
 */
describe('no ghost writes when Redis pauses mid-write', () => {
  let redis: TestRedis;
  let server: TestServer;
  let client: RawClient;
  let checker: RedisStore;

  before(async () => {
    redis = await startRedis();
    server = await startServer({
      redisPort: redis.port,
      env: { REDIS_COMMAND_TIMEOUT: `${TIMEOUT_MS}ms` },
    });
    client = rawClient(server.address);
    checker = new RedisStore(
      redisConfig(redis.port, 'sessionmanager:'),
      LIMITS,
      createLogger('silent'),
    );
  });

  after(async () => {
    redis.signal('SIGCONT');
    client.close();
    await checker.close();
    await server.close();
    await redis.dispose();
  });

  it('sets and consumes that failed left nothing behind; those that succeeded are applied', async () => {
    const totals = { setOk: 0, setFailed: 0, consumeOk: 0, consumeFailed: 0, ghosts: 0, lost: 0 };
    for (const [round, pauseMs] of PAUSES_MS.entries()) {
      await waitFor('SERVING', async () => (await client.health()) === 'SERVING', 5000);
      const consumable = Array.from({ length: CALLS_PER_ROUND }, (_, i) => `ghost-c-${round}-${i}`);
      for (const key of consumable) await client.call('SetSession', { session_key: key });

      redis.signal('SIGSTOP');
      const sets = Array.from({ length: CALLS_PER_ROUND }, (_, i) => {
        const key = `ghost-s-${round}-${i}`;
        return outcome(key, client.call('SetSession', { session_key: key }, { deadlineMs: 5000 }));
      });
      const consumes = consumable.map((key) =>
        outcome(key, client.call('ConsumeSession', { session_key: key }, { deadlineMs: 5000 })),
      );
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
      redis.signal('SIGCONT');
      const setResults = await Promise.all(sets);
      const consumeResults = await Promise.all(consumes);
      await waitFor('Redis answers', () => checker.ping().then(() => true));

      for (const { key, ok, code } of setResults) {
        if (!ok) assert.equal(code, status.UNAVAILABLE);
        const present = (await checker.get(key, Date.now(), false)) !== null;
        if (ok) totals.setOk++;
        else totals.setFailed++;
        if (!ok && present) totals.ghosts++;
        if (ok && !present) totals.lost++;
      }
      for (const { key, ok, code } of consumeResults) {
        if (!ok) assert.equal(code, status.UNAVAILABLE);
        const present = (await checker.get(key, Date.now(), false)) !== null;
        if (ok) totals.consumeOk++;
        else totals.consumeFailed++;
        if (!ok && !present) totals.ghosts++;
        if (ok && present) totals.lost++;
      }
    }
    console.log(`ghost-write figures: ${JSON.stringify(totals)}`);
    assert.equal(totals.ghosts, 0, 'a failed call applied its write');
    assert.equal(totals.lost, 0, 'an acknowledged call did not apply');
    assert.ok(totals.setFailed > 0 && totals.setOk > 0, 'the pauses produced both outcomes');
  });
});
