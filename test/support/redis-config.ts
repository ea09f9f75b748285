import type { RedisConfig } from '../../src/store/redis/redis-config.ts';
import type { RedisStore } from '../../src/store/redis/redis-store.ts';
import { waitFor } from './ports.ts';

/** Store settings for a test redis-server on loopback. */
export const redisConfig = (port: number, keyPrefix: string): RedisConfig => ({
  topology: { kind: 'standalone' },
  host: '127.0.0.1',
  port,
  database: 5,
  username: undefined,
  password: undefined,
  tls: false,
  keyPrefix,
  layout: 'compact',
  payloadPieces: true,
  commandTimeoutMs: 1000,
  connectTimeoutMs: 1000,
});

/** Resolves once `store` answers PING: a store connects in the background. */
export const untilAnswers = (store: RedisStore, what = 'the store to answer'): Promise<void> =>
  waitFor(what, () => store.ping().then(() => true));
