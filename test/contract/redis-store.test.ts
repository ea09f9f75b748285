import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { compactKey, legacyKey } from '../../src/store/redis/keys.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import { Scripts } from '../../src/store/redis/scripts.ts';
import { createTokenGenerator } from '../../src/token.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig, untilAnswers } from '../support/redis-config.ts';
import { change, draft, LIMITS, storeContract, uniqueKey } from '../support/store-contract.ts';

let redis: TestRedis;
let store: RedisStore;
/** The same Redis and prefix, refusing a new session at an owner's limit. */
let refusing: RedisStore;
const prefix = `test-${process.pid}:`;

before(async () => {
  redis = await startRedis();
  store = new RedisStore(redisConfig(redis.port, prefix), LIMITS, createLogger('silent'));
  refusing = new RedisStore(
    redisConfig(redis.port, prefix),
    { ...LIMITS, atOwnerLimit: 'refuse' },
    createLogger('silent'),
  );
  await Promise.all([untilAnswers(store), untilAnswers(refusing)]);
});

after(async () => {
  await Promise.all([store.close(), refusing.close()]);
  await redis.dispose();
});

storeContract('redis store', () => ({ store, refusing, now: Date.now }));

describe('redis store layout', () => {
  it('stores one hash per session under the prefix, named by a hash of the key', async () => {
    const key = uniqueKey();
    await store.put(key, draft(), Date.now());
    const keys = redis.cli('-n', '5', '--scan', '--pattern', `${prefix}*`).split('\n');
    for (const k of keys) assert.ok(!k.includes(key), 'the session key never appears in Redis');
    // The prefix holds the contract's other sessions and owner indexes too.
    const redisKey = compactKey(prefix, key);
    assert.ok(keys.includes(redisKey), `${redisKey} among ${keys.length} keys`);
    assert.equal(redis.cli('-n', '5', 'TYPE', redisKey), 'hash');
  });

  it('rotation renames the hash: the old Redis key is gone, the new one keeps the TTL', async () => {
    const key = uniqueKey();
    await store.put(key, draft({ ttlSeconds: 40 }), Date.now());
    const oldRedisKey = compactKey(prefix, key);
    const ttlBefore = Number(redis.cli('-n', '5', 'PTTL', oldRedisKey));
    const rotated = await store.rotate(key, createTokenGenerator(), Date.now());
    assert.ok(rotated);
    const newRedisKey = compactKey(prefix, rotated.sessionKey);
    assert.equal(redis.cli('-n', '5', 'EXISTS', oldRedisKey), '0');
    const ttlAfter = Number(redis.cli('-n', '5', 'PTTL', newRedisKey));
    assert.ok(ttlAfter > ttlBefore - 2000 && ttlAfter <= ttlBefore, `${ttlBefore} → ${ttlAfter}`);
    const keys = redis.cli('-n', '5', '--scan', '--pattern', `${prefix}*`);
    assert.ok(!keys.includes(key) && !keys.includes(rotated.sessionKey));
  });

  it('payloads of up to 1 KB go in 64-byte pieces; with REDIS_PAYLOAD_PIECES off, or past 1 KB, whole', async () => {
    const whole = new RedisStore(
      { ...redisConfig(redis.port, prefix), payloadPieces: false },
      LIMITS,
      createLogger('silent'),
    );
    try {
      await untilAnswers(whole);
      const stored = (key: string) =>
        redis.cli('-n', '5', 'HSTRLEN', compactKey(prefix, key), 'p0') +
        (redis.cli('-n', '5', 'HEXISTS', compactKey(prefix, key), 'p15') === '1' ? ' p15' : '');
      // 1018 + 6 bytes of response: 16 pieces.
      const small = draft({ fleetListRequest: Buffer.alloc(1018, 1), attributes: new Map() });
      const [inPieces, off, large] = [uniqueKey(), uniqueKey(), uniqueKey()];
      await store.put(inPieces, small, Date.now());
      await whole.put(off, small, Date.now());
      await store.put(large, draft({ fleetListRequest: Buffer.alloc(1019, 1) }), Date.now());
      assert.equal(stored(inPieces), '64 p15');
      assert.equal(stored(off), '1024');
      assert.equal(stored(large), String(1019 + 6));
      for (const key of [inPieces, off, large]) {
        const session = await whole.get(key, Date.now(), false);
        assert.equal(session?.fleetListRequest.length, key === large ? 1019 : 1018);
        assert.deepEqual(session?.fleetListResponse, Buffer.from([0, 1, 2, 255, 254, 0]));
      }
    } finally {
      await whole.close();
    }
  });

  it('survives a Redis restart: scripts are reloaded on NOSCRIPT', async () => {
    await redis.restart();
    await untilAnswers(store);
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

/**
 * Hashes no write of the store leaves behind, written straight into Redis:
 * what a Redis whose AOF loader applied part of a script's effects can hold
 * after a crash (docs/guarantees.md), in each layout (keys.ts).
 */
interface LayoutFixture {
  readonly key: (sessionKey: string) => string;
  /** The fields of a whole session created `now` holding `request` and no attributes. */
  readonly whole: (now: number, request: string, size?: number) => string[];
  readonly torn: Record<string, (now: number) => string[]>;
}

const LAYOUTS: Record<string, LayoutFixture> = {
  legacy: {
    key: (sessionKey) => legacyKey(prefix, sessionKey),
    whole: legacyFields,
    torn: {
      'fixed fields missing': (now) => ['version', '1', 'created_at', String(now)],
      'attributes missing (content short of its size field)': (now) => legacyFields(now, 'abc', 30),
      'a payload field missing': (now) => legacyFields(now, 'abc', 3).slice(2),
    },
  },
  compact: {
    key: (sessionKey) => compactKey(prefix, sessionKey),
    whole: compactFields,
    torn: {
      'no metadata field': () => ['p0', 'abc', '.x', 'y'],
      'attributes missing (content short of its size)': (now) => compactFields(now, 'abc', 30),
      'a payload piece missing': (now) => [...compactFields(now, 'abc', 6), 'p2', 'def'],
      'a request longer than the payloads': (now) => [
        'm',
        `${now},${now + 60_000},3,60,3,4`,
        'p0',
        'abc',
      ],
    },
  },
};

/** The compact layout's fields: m, then the request (and an empty response) whole in p0. */
function compactFields(now: number, request: string, size = request.length): string[] {
  return ['m', `${now},${now + 60_000},3,60,${size},${request.length}`, 'p0', request];
}

/** The legacy layout's seven fixed fields. */
function legacyFields(now: number, request: string, size = request.length): string[] {
  return [
    'fleet_list_request',
    request,
    'fleet_list_response',
    '',
    'created_at',
    String(now),
    'expires_at',
    String(now + 60_000),
    'version',
    '3',
    'ttl',
    '60',
    'size',
    String(size),
  ];
}

describe('torn sessions: no operation returns one, each deletes it', () => {
  const operations: Record<string, (key: string) => Promise<unknown>> = {
    get: (key) => store.get(key, Date.now(), false),
    'get with touch': (key) => store.get(key, Date.now(), true),
    touch: (key) => store.touch(key, 30, Date.now()),
    update: (key) =>
      store
        .update(key, change({ setAttributes: new Map([['x', Buffer.from('y')]]) }), Date.now())
        .then(
          (session) => session,
          (error: unknown) =>
            error instanceof SessionError && error.code === ErrorCode.NotFound
              ? null
              : Promise.reject(error),
        ),
    consume: (key) => store.consume(key, Date.now()),
    delete: (key) => store.delete(key, Date.now()).then((deleted) => (deleted ? 'deleted' : null)),
    rotate: (key) => store.rotate(key, createTokenGenerator(), Date.now()),
  };
  for (const [layout, fixture] of Object.entries(LAYOUTS)) {
    for (const [torn, fields] of Object.entries(fixture.torn)) {
      for (const [name, operation] of Object.entries(operations)) {
        it(`${layout} layout: ${name} of a hash with ${torn} (and no TTL) finds nothing and deletes it`, async () => {
          const key = uniqueKey();
          const hash = fixture.key(key);
          redis.cli('-n', '5', 'HSET', hash, ...fields(Date.now()));
          assert.equal(redis.cli('-n', '5', 'PTTL', hash), '-1');
          const result = await operation(key);
          assert.equal(result, null);
          assert.equal(redis.cli('-n', '5', 'EXISTS', hash), '0', 'the torn hash is gone');
        });
      }
    }

    it(`${layout} layout: a whole session without a TTL, past its expiry, is absent to a read and deleted`, async () => {
      const key = uniqueKey();
      const hash = fixture.key(key);
      const longAgo = Date.now() - 120_000;
      redis.cli('-n', '5', 'HSET', hash, ...fixture.whole(longAgo, 'abc'));
      assert.equal(await store.get(key, Date.now(), false), null);
      assert.equal(redis.cli('-n', '5', 'EXISTS', hash), '0');
    });

    it(`${layout} layout: a whole session without a TTL, not yet expired, is returned, and rotation gives it its TTL`, async () => {
      const key = uniqueKey();
      const now = Date.now();
      redis.cli('-n', '5', 'HSET', fixture.key(key), ...fixture.whole(now, 'abc'));
      const session = await store.get(key, Date.now(), false);
      assert.equal(session?.fleetListRequest.toString(), 'abc');
      assert.equal(session?.version, 3);
      const rotated = await store.rotate(key, createTokenGenerator(), Date.now());
      assert.ok(rotated);
      const pttl = Number(redis.cli('-n', '5', 'PTTL', fixture.key(rotated.sessionKey)));
      assert.ok(pttl > 0 && pttl <= 60_000, `PTTL ${pttl}`);
    });
  }

  it('a torn hash replaced by a whole session before the repair runs is kept', async () => {
    // The repair checks again in Redis: the read saw a torn hash, a put replaced it since.
    const key = uniqueKey();
    await store.put(key, draft(), Date.now());
    const hash = compactKey(prefix, key);
    const fence = String(Date.now() + 60_000);
    const repair = Scripts.compactRepair.source;
    assert.equal(
      redis.cli('-n', '5', 'EVAL', repair, '1', hash, fence, '', '1', String(Date.now())),
      '0',
    );
    assert.ok(await store.get(key, Date.now(), false));
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
      await untilAnswers(guarded);
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
