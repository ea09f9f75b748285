import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/logger.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig } from '../support/redis-config.ts';
import { LIMITS } from '../support/store-contract.ts';
import { assertAgreesWithModel } from '../support/store-model.ts';

describe('Redis store agrees with the in-memory reference', () => {
  let redis: TestRedis;
  let redisStore: RedisStore;

  before(async () => {
    redis = await startRedis();
    redisStore = new RedisStore(redisConfig(redis.port, 'model:'), LIMITS, createLogger('silent'));
    await redisStore.ping().catch(() => new Promise((resolve) => setTimeout(resolve, 200)));
  });

  after(async () => {
    await redisStore.close();
    await redis.dispose();
  });

  it('on random operation sequences', async () => {
    await assertAgreesWithModel(redisStore, 150);
  });
});
