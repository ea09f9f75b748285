import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { createLogger } from '../../src/logger.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import type { OwnerLimitPolicy, StoreLimits } from '../../src/store/store.ts';
import { redisProbe } from '../support/owner-index.ts';
import { raceOwner } from '../support/owner-race.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig, untilAnswers } from '../support/redis-config.ts';
import { LIMITS } from '../support/store-contract.ts';

/**
 * Many concurrent writers on one owner at its limit (issue 18): 50 SetSessions
 * of new sessions at once, on the memory store and on one Redis through 50
 * stores, each with its own connection. Each race starts with the owner
 * holding none of its 5 places, or all of them.
 */

const LIMIT = 5;
const WRITERS = 50;
const POLICIES: readonly OwnerLimitPolicy[] = ['evict-oldest', 'refuse'];
const limits = (atOwnerLimit: OwnerLimitPolicy): StoreLimits => ({
  ...LIMITS,
  maxPerOwner: LIMIT,
  atOwnerLimit,
});

describe('owner races: memory store', () => {
  for (const policy of POLICIES) {
    for (const held of [0, LIMIT]) {
      it(`${policy}, ${WRITERS} writers, the owner holding ${held} of ${LIMIT}`, async () => {
        const store = new MemoryStore(limits(policy), 64 * 1024 * 1024);
        try {
          const figures = await raceOwner({
            stores: [store],
            limit: LIMIT,
            policy,
            held,
            writers: WRITERS,
          });
          console.log(`owner race figures: ${JSON.stringify({ store: 'memory', ...figures })}`);
        } finally {
          await store.close();
        }
      });
    }
  }
});

describe('owner races: redis, one connection per writer', () => {
  const prefix = `owner-races-${process.pid}:`;
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
    for (const held of [0, LIMIT]) {
      it(`${policy}, ${WRITERS} writers, the owner holding ${held} of ${LIMIT}`, async () => {
        const stores = Array.from(
          { length: WRITERS },
          () =>
            new RedisStore(redisConfig(redis.port, prefix), limits(policy), createLogger('silent')),
        );
        try {
          for (const store of stores) await untilAnswers(store);
          const probe = redisProbe((_, args) => direct.sendCommand(args), prefix);
          const figures = await raceOwner({
            stores,
            limit: LIMIT,
            policy,
            held,
            writers: WRITERS,
            probe,
          });
          console.log(`owner race figures: ${JSON.stringify({ store: 'redis', ...figures })}`);
        } finally {
          await Promise.all(stores.map((store) => store.close()));
        }
      });
    }
  }
});
