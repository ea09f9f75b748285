import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/logger.ts';
import { compactKey, legacyKey } from '../../src/store/redis/keys.ts';
import type { RedisConfig } from '../../src/store/redis/redis-config.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import { createTokenGenerator } from '../../src/token.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig, untilAnswers } from '../support/redis-config.ts';
import { change, draft, LIMITS, uniqueKey } from '../support/store-contract.ts';

/**
 * A rolling upgrade from a version before the compact layout: its replicas
 * and the new ones share one Redis. Sessions written in the legacy layout
 * (by a store with REDIS_SESSION_LAYOUT=legacy, which runs the previous
 * version's scripts, lua/*-1.lua and rotate-2.lua, unchanged) are read and
 * changed by the new default; afterwards the legacy hash holds exactly what
 * the previous version reads (its field names, straight from Redis), and
 * nothing was written under a name the previous version would misread.
 */
describe('layout upgrade: legacy sessions under the compact default', () => {
  let redis: TestRedis;
  let previous: RedisStore;
  let current: RedisStore;
  const prefix = `upgrade-${process.pid}:`;
  const config = (layout: RedisConfig['layout']) => ({
    ...redisConfig(redis.port, prefix),
    layout,
  });

  before(async () => {
    redis = await startRedis();
    previous = new RedisStore(config('legacy'), LIMITS, createLogger('silent'));
    current = new RedisStore(config('compact'), LIMITS, createLogger('silent'));
    await untilAnswers(current);
  });

  after(async () => {
    await Promise.all([previous.close(), current.close()]);
    await redis.dispose();
  });

  /** The legacy hash as the previous version reads it: field → value. */
  const legacyHash = (key: string) => {
    const lines = redis.cli('-n', '5', 'HGETALL', legacyKey(prefix, key)).split('\n');
    const fields = new Map<string, string>();
    for (let i = 0; i + 1 < lines.length; i += 2) fields.set(lines[i] ?? '', lines[i + 1] ?? '');
    return fields;
  };
  const exists = (redisKey: string) => redis.cli('-n', '5', 'EXISTS', redisKey) === '1';

  async function legacySession() {
    const key = uniqueKey();
    await previous.put(key, draft({ attributes: new Map([['a', Buffer.from('1')]]) }), Date.now());
    assert.equal(legacyHash(key).get('version'), '1', 'written in the legacy layout');
    return key;
  }

  it('a read returns it whole, and writes nothing', async () => {
    const key = await legacySession();
    const session = await current.get(key, Date.now(), false);
    assert.equal(session?.fleetListRequest.toString(), '{"pickup":"A"}');
    assert.equal(session?.attributes.get('a')?.toString(), '1');
    assert.equal(exists(compactKey(prefix, key)), false);
  });

  it('an update changes it in place, in the legacy layout', async () => {
    const key = await legacySession();
    const set = new Map([['b', Buffer.from('2')]]);
    const updated = await current.update(
      key,
      change({ setAttributes: set, removeAttributes: ['a'] }),
      Date.now(),
    );
    assert.equal(updated.version, 2);
    const hash = legacyHash(key);
    assert.equal(hash.get('version'), '2');
    assert.equal(hash.get('attr:b'), '2');
    assert.equal(hash.has('attr:a'), false);
    assert.equal(exists(compactKey(prefix, key)), false);
    assert.equal((await previous.get(key, Date.now(), false))?.version, 2);
  });

  it('a touch and a read with touch change its expiry in place', async () => {
    const key = await legacySession();
    assert.ok(await current.touch(key, 20, Date.now()));
    assert.equal(legacyHash(key).get('ttl'), '20');
    assert.ok(Number(redis.cli('-n', '5', 'PTTL', legacyKey(prefix, key))) <= 20_000);
    assert.ok(await current.get(key, Date.now(), true));
    assert.equal(exists(compactKey(prefix, key)), false);
  });

  it('a consume takes it once; a delete removes it', async () => {
    const consumed = await legacySession();
    assert.equal((await current.consume(consumed, Date.now()))?.version, 1);
    assert.equal(await current.consume(consumed, Date.now()), null);
    assert.equal(exists(legacyKey(prefix, consumed)), false);
    const deleted = await legacySession();
    assert.equal(await current.delete(deleted, Date.now()), true);
    assert.equal(exists(legacyKey(prefix, deleted)), false);
    assert.equal(await previous.get(deleted, Date.now(), false), null);
  });

  it('a rotation moves it to the new key in the legacy layout, which the previous version reads', async () => {
    const key = await legacySession();
    const rotated = await current.rotate(key, createTokenGenerator(), Date.now());
    assert.ok(rotated);
    assert.equal(exists(legacyKey(prefix, key)), false);
    assert.equal(legacyHash(rotated.sessionKey).get('version'), '1');
    assert.equal(exists(compactKey(prefix, rotated.sessionKey)), false);
  });

  it('SetSession on its key replaces it: the version goes on, the legacy copy is gone', async () => {
    const key = await legacySession();
    await current.update(key, change({ ttlSeconds: 30 }), Date.now());
    const replaced = await current.put(key, draft(), Date.now());
    assert.equal(replaced.version, 3);
    assert.equal(exists(legacyKey(prefix, key)), false);
    assert.equal((await current.get(key, Date.now(), false))?.version, 3);
    // After a consume nothing comes back from the legacy layout.
    assert.ok(await current.consume(key, Date.now()));
    assert.equal(await current.get(key, Date.now(), false), null);
  });

  it('a new session goes under a name the previous version never reads', async () => {
    const key = createTokenGenerator()();
    await current.put(key, { ...draft(), newKey: true }, Date.now());
    assert.ok(exists(compactKey(prefix, key)));
    assert.ok(!compactKey(prefix, key).startsWith(`${prefix}s:`));
    assert.equal(legacyHash(key).size, 0);
    assert.equal(
      (await previous.get(key, Date.now(), false)) !== null,
      true,
      'the legacy setting reads both',
    );
  });
});
