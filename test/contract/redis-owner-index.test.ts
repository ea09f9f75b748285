import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from '@redis/client';
import { createLogger } from '../../src/logger.ts';
import type { OwnerRef } from '../../src/session.ts';
import { sessionHandle, withTag } from '../../src/session-keys.ts';
import { compactKey, indexKey } from '../../src/store/redis/keys.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import { createTokenGenerator } from '../../src/token.ts';
import { ownersSharingATag } from '../support/owners.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig, untilAnswers } from '../support/redis-config.ts';
import { change, draft, LIMITS, uniqueKey } from '../support/store-contract.ts';

/**
 * The owner index's leak-free rule on Redis, in real time (issue 18): a
 * session that expired or was consumed, deleted or rotated leaves no entry
 * in its owner's index once a call touches that owner, and the index key
 * expires with the owner's last session, with no call at all. The index is
 * read straight from Redis (keys.ts: a sorted set `<prefix>o:{<tag>}<digest>`
 * of session handles). Last, a session with an owner written over a session
 * of the same key in the legacy layout.
 */

const prefix = `owner-index-${process.pid}:`;
/** How far apart two expiry times set from one another in one script may lie: its run time. */
const SAME_SCRIPT_MS = 50;
/** Sessions of 1 s are gone this long after they were last written. */
const PAST_SHORT_TTL_MS = 1200;

let redis: TestRedis;
let store: RedisStore;
let direct: ReturnType<typeof createClient>;
const generate = createTokenGenerator();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

before(async () => {
  redis = await startRedis();
  store = new RedisStore(redisConfig(redis.port, prefix), LIMITS, createLogger('silent'));
  direct = createClient({ socket: { host: '127.0.0.1', port: redis.port }, database: 5 });
  await direct.connect();
  await untilAnswers(store);
});

after(async () => {
  direct?.destroy();
  await store?.close();
  await redis?.dispose();
});

const owners = async () => ownersSharingATag(await store.idempotencySecret(), uniqueKey());
const keyOf = (owner: OwnerRef) => withTag(generate(), owner.tag);
const indexed = (owner: OwnerRef) => direct.zRange(indexKey(prefix, owner), 0, -1);
/** When a key expires, Unix ms; -2 when it is gone, -1 when it never expires. */
const expiresAt = (key: string) => direct.sendCommand(['PEXPIRETIME', key]) as Promise<number>;

describe('redis owner index: no entry for a gone session once a call touches the owner', () => {
  it('after consume, delete, rotate and expiry, one listing leaves exactly the live sessions', async () => {
    const [owner] = await owners();
    const t = Date.now();
    const [expiring, consumed, deleted, rotated] = [1, 2, 3, 4].map(() => keyOf(owner)) as [
      string,
      string,
      string,
      string,
    ];
    await store.put(expiring, draft({ owner, ttlSeconds: 1 }), t);
    for (const [i, key] of [consumed, deleted, rotated].entries()) {
      await store.put(key, draft({ owner }), t + 1 + i);
    }
    assert.ok(await store.consume(consumed, Date.now()));
    assert.equal(await store.delete(deleted, Date.now()), true);
    const moved = await store.rotate(rotated, () => keyOf(owner), Date.now());
    assert.ok(moved);
    await sleep(PAST_SHORT_TTL_MS);
    const listed = await store.listOwned(owner, Date.now(), false);
    assert.deepEqual(
      listed.map((session) => session.handle),
      [sessionHandle(moved.sessionKey)],
    );
    assert.deepEqual(await indexed(owner), [sessionHandle(moved.sessionKey)]);
    assert.equal(await store.revokeOwned(owner, Date.now()), 1);
    assert.equal(await direct.exists(indexKey(prefix, owner)), 0);
    assert.equal(await direct.exists(compactKey(prefix, moved.sessionKey)), 0);
  });
});

/**
 * An owner holds a long-lived session L (60 s) and a short one (1 s); then
 * something takes L out of the index or shortens it. The index must expire
 * when the short sessions do, with no further call on the owner.
 */
const ENDINGS: Record<string, (l: string, owner: OwnerRef, twin: OwnerRef) => Promise<unknown>> = {
  'L deleted': (l) => store.delete(l, Date.now()),
  'L consumed': (l) => store.consume(l, Date.now()),
  'L rotated, then deleted': async (l, owner) => {
    const moved = await store.rotate(l, () => keyOf(owner), Date.now());
    assert.ok(moved);
    return store.delete(moved.sessionKey, Date.now());
  },
  'L set again without an owner': (l) => store.put(l, draft(), Date.now()),
  'L set again for another owner': (l, _, twin) => store.put(l, draft({ owner: twin }), Date.now()),
  'L replaced by a session of 1 s of the same owner': (l, owner) =>
    store.put(l, draft({ owner, ttlSeconds: 1 }), Date.now()),
  'L touched to a ttl of 1 s': (l) => store.touch(l, 1, Date.now()),
  'L updated to a ttl of 1 s': (l) => store.update(l, change({ ttlSeconds: 1 }), Date.now()),
  'L evicted at the limit by a session of 1 s': async (_, owner) => {
    for (let i = 2; i < LIMITS.maxPerOwner; i++) {
      await store.put(keyOf(owner), draft({ owner, ttlSeconds: 1 }), Date.now());
    }
    const stored = await store.put(keyOf(owner), draft({ owner, ttlSeconds: 1 }), Date.now());
    assert.equal(stored.evicted, 1);
  },
};

describe('redis owner index: the index key expires with the owner’s last session', {
  concurrency: true,
}, () => {
  for (const [ending, end] of Object.entries(ENDINGS)) {
    it(ending, async () => {
      const [owner, twin] = await owners();
      const index = indexKey(prefix, owner);
      const long = keyOf(owner);
      const short = keyOf(owner);
      await store.put(long, draft({ owner }), Date.now());
      await store.put(short, draft({ owner, ttlSeconds: 1 }), Date.now());
      await end(long, owner, twin);
      const handles = await indexed(owner);
      const stem = compactKey(prefix, short).slice(0, -22);
      const last = Math.max(...(await Promise.all(handles.map((h) => expiresAt(stem + h)))));
      const indexEnd = await expiresAt(index);
      assert.ok(
        indexEnd <= last + SAME_SCRIPT_MS,
        `the index expires ${indexEnd - last} ms after the last session it lists`,
      );
      await sleep(PAST_SHORT_TTL_MS);
      assert.equal(await direct.exists(index), 0, 'the index is gone with its sessions');
    });
  }
});

describe('redis owner index: a session with an owner and the legacy layout', () => {
  it('replaces a session of its key in the legacy layout: the version goes on, and no old copy is left to read', async () => {
    const legacy = new RedisStore(
      { ...redisConfig(redis.port, prefix), layout: 'legacy' },
      LIMITS,
      createLogger('silent'),
    );
    try {
      await untilAnswers(legacy, 'the legacy-layout store to answer');
      const [owner] = await owners();
      const key = keyOf(owner);
      const t = Date.now();
      await legacy.put(key, draft({ fleetListRequest: Buffer.from('old') }), t);
      const owned = await store.put(
        key,
        draft({ owner, fleetListRequest: Buffer.from('new') }),
        t + 1,
      );
      assert.equal(owned.version, 2, 'a replace continues the version');
      const read = await legacy.get(key, t + 2, false);
      assert.equal(
        read?.fleetListRequest.toString(),
        'new',
        'the legacy-first store reads the new session',
      );
      assert.equal(await store.delete(key, t + 3), true);
      assert.equal(await store.get(key, t + 4, false), null, 'deleted, nothing comes back');
    } finally {
      await legacy.close();
    }
  });
});
