import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { createLogger } from '../../src/logger.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import type { OwnerLimitPolicy, StoreLimits } from '../../src/store/store.ts';
import { redisProbe } from '../support/owner-index.ts';
import { assertOwnerIndexHolds } from '../support/owner-property.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig, untilAnswers } from '../support/redis-config.ts';
import { LIMITS } from '../support/store-contract.ts';

/** Two sessions per owner: the five keys two owners share keep them at their limit. */
export const ownerLimits = (atOwnerLimit: OwnerLimitPolicy): StoreLimits => ({
  ...LIMITS,
  maxPerOwner: 2,
  atOwnerLimit,
});

const POLICIES = ['evict-oldest', 'refuse'] as const;

describe('owner index against the model, on random operation sequences: memory store', () => {
  for (const policy of POLICIES) {
    it(policy, async () => {
      const store = new MemoryStore(ownerLimits(policy), 64 * 1024 * 1024);
      try {
        await assertOwnerIndexHolds(store, ownerLimits(policy), { numRuns: 300 });
      } finally {
        await store.close();
      }
    });
  }
});

describe('owner index against the model, on random operation sequences: redis store', () => {
  const prefix = `owner-model-${process.pid}:`;
  let redis: TestRedis;
  let direct: ReturnType<typeof createClient>;

  before(async () => {
    redis = await startRedis();
    direct = createClient({ socket: { host: '127.0.0.1', port: redis.port }, database: 5 });
    await direct.connect();
  });

  after(async () => {
    direct?.destroy();
    await redis?.dispose();
  });

  for (const policy of POLICIES) {
    it(policy, async () => {
      const store = new RedisStore(
        redisConfig(redis.port, prefix),
        ownerLimits(policy),
        createLogger('silent'),
      );
      try {
        await untilAnswers(store);
        const probe = redisProbe((_, args) => direct.sendCommand(args), prefix);
        await assertOwnerIndexHolds(store, ownerLimits(policy), { numRuns: 150, probe });
      } finally {
        await store.close();
      }
    });
  }
});
