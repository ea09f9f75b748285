import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { MemoryStore } from './memory-store.ts';
import { RedisStore } from './redis/redis-store.ts';
import type { SessionStore } from './store.ts';

/** Redis when REDIS_HOST, REDIS_SENTINELS or REDIS_CLUSTER_NODES is set; otherwise the embedded in-memory store. */
export function createStore(config: Config, logger: Logger): SessionStore {
  if (config.redis) return new RedisStore(config.redis, config.session, logger);
  logger.warn(
    { maxBytes: config.memoryMaxBytes },
    'no Redis is configured (REDIS_HOST, REDIS_SENTINELS, REDIS_CLUSTER_NODES): using the embedded in-memory store (sessions live in this process only and are lost when it stops)',
  );
  return new MemoryStore(config.session, config.memoryMaxBytes);
}
