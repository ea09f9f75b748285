import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, SessionError } from '../src/errors.ts';
import { createLogger } from '../src/logger.ts';
import { redisKey } from '../src/store/redis/keys.ts';
import { RedisStore } from '../src/store/redis/redis-store.ts';
import { createTokenGenerator } from '../src/token.ts';
import { startRedis, type TestRedis } from './support/redis.ts';
import { redisConfig } from './support/redis-config.ts';
import { draft, LIMITS, storeContract, uniqueKey } from './support/store-contract.ts';

let redis: TestRedis;
let store: RedisStore;
const prefix = `test-${process.pid}:`;

before(async () => {
  redis = await startRedis();
  store = new RedisStore(redisConfig(redis.port, prefix), LIMITS, createLogger('silent'));
  await waitUntilReady(store);
});

after(async () => {
  await store.close();
  await redis.dispose();
});

async function waitUntilReady(s: RedisStore): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (
      await s.ping().then(
        () => true,
        () => false,
      )
    )
      return;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error('redis store never became ready');
}

storeContract('redis store', () => ({ store, now: Date.now }));

describe('redis store layout', () => {
  it('stores one hash per session under the prefix, named by a hash of the key', async () => {
    const key = uniqueKey();
    await store.put(key, draft(), Date.now());
    const keys = redis.cli('-n', '5', '--scan', '--pattern', `${prefix}*`).split('\n');
    assert.ok(keys.length > 0);
    for (const k of keys) assert.ok(!k.includes(key), 'the session key never appears in Redis');
    const type = redis.cli('-n', '5', 'TYPE', keys[0] ?? '');
    assert.equal(type, 'hash');
  });

  it('rotation renames the hash: the old Redis key is gone, the new one keeps the TTL', async () => {
    const key = uniqueKey();
    await store.put(key, draft({ ttlSeconds: 40 }), Date.now());
    const oldRedisKey = redisKey(prefix, key);
    const ttlBefore = Number(redis.cli('-n', '5', 'PTTL', oldRedisKey));
    const rotated = await store.rotate(key, createTokenGenerator(), Date.now());
    assert.ok(rotated);
    const newRedisKey = redisKey(prefix, rotated.sessionKey);
    assert.equal(redis.cli('-n', '5', 'EXISTS', oldRedisKey), '0');
    const ttlAfter = Number(redis.cli('-n', '5', 'PTTL', newRedisKey));
    assert.ok(ttlAfter > ttlBefore - 2000 && ttlAfter <= ttlBefore, `${ttlBefore} → ${ttlAfter}`);
    const keys = redis.cli('-n', '5', '--scan', '--pattern', `${prefix}*`);
    assert.ok(!keys.includes(key) && !keys.includes(rotated.sessionKey));
  });

  it('survives a Redis restart: scripts are reloaded on NOSCRIPT', async () => {
    await redis.restart();
    await waitUntilReady(store);
    const key = uniqueKey();
    const stored = await store.put(key, draft(), Date.now());
    assert.equal(stored.version, 1);
    assert.ok(await store.get(key, Date.now(), true));
  });

  it('leaves no key under the prefix without a TTL', async () => {
    const keys = redis
      .cli('-n', '5', '--scan', '--pattern', `${prefix}*`)
      .split('\n')
      .filter(Boolean);
    assert.ok(keys.length > 0, 'the suite wrote keys');
    for (const k of keys) {
      const ttl = Number(redis.cli('-n', '5', 'PTTL', k));
      assert.ok(ttl > 0 || ttl === -2, `${k} has PTTL ${ttl}`);
    }
  });
});

describe('redis store with min-replicas-to-write', () => {
  it('a write the master refuses for want of replicas (NOREPLICAS) is UNAVAILABLE; reads still work', async () => {
    const lonely = await startRedis(['--min-replicas-to-write', '1']);
    const guarded = new RedisStore(
      redisConfig(lonely.port, prefix),
      LIMITS,
      createLogger('silent'),
    );
    try {
      await waitUntilReady(guarded);
      await assert.rejects(guarded.put(uniqueKey(), draft(), Date.now()), (error: unknown) => {
        assert.ok(error instanceof SessionError);
        assert.equal(error.code, ErrorCode.StoreUnavailable);
        assert.match(String((error.cause as Error).message), /^NOREPLICAS/);
        return true;
      });
      assert.equal(await guarded.get(uniqueKey(), Date.now(), false), null);
    } finally {
      await guarded.close();
      await lonely.dispose();
    }
  });
});
