import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CallScope, claimedScope, UNSCOPED } from '../../src/call-scope.ts';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { claimOf, derivedKeys, type IdempotencyClaim } from '../../src/idempotency.ts';
import type { SessionChange, SessionDraft } from '../../src/session.ts';
import type { SessionStore, StoreLimits } from '../../src/store/store.ts';
import { createTokenGenerator } from '../../src/token.ts';

export const LIMITS: StoreLimits = {
  maxLifetimeMs: 60_000,
  maxBytes: 4096,
  maxAttributes: 8,
  idempotencyTtlMs: 60_000,
  maxPerOwner: 4,
  atOwnerLimit: 'evict-oldest',
};

export interface StoreHarness {
  store: SessionStore;
  /** Wall-clock now: Redis expires keys in real time, so the suite uses it too. */
  now(): number;
}

let counter = 0;
export const uniqueKey = () => `contract-${process.pid}-${Date.now()}-${counter++}`;

export const draft = (overrides: Partial<SessionDraft> = {}): SessionDraft => ({
  fleetListRequest: Buffer.from('{"pickup":"A"}'),
  fleetListResponse: Buffer.from([0, 1, 2, 255, 254, 0]),
  attributes: new Map([['order', Buffer.from('o-1')]]),
  ttlSeconds: 60,
  ...overrides,
});

export const change = (overrides: Partial<SessionChange> = {}): SessionChange => ({
  setAttributes: new Map(),
  removeAttributes: [],
  ttlSeconds: 0,
  ...overrides,
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function rejectsWith(promise: Promise<unknown>, code: ErrorCode): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof SessionError, `expected SessionError, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  });
}

/**
 * The semantics every SessionStore must have. Each store's test file runs
 * this suite against its own harness.
 */
export function storeContract(name: string, harness: () => StoreHarness): void {
  describe(`${name}: SessionStore contract`, () => {
    it('put then get returns exactly what was stored, binary-safe', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      const attributes = new Map([
        ['order', Buffer.from('o-1')],
        ['bin', Buffer.from([0, 0xff, 0x80, 0x0d, 0x0a])],
        ['empty', Buffer.alloc(0)],
        ['naïve ключ 🚕', Buffer.from('unicode name')],
      ]);
      const t = now();
      const stored = await store.put(key, draft({ attributes }), t);
      assert.equal(stored.version, 1);
      assert.equal(stored.createdAtMs, t);
      assert.equal(stored.expiresAtMs, t + 60_000);
      const session = await store.get(key, now(), false);
      assert.ok(session);
      assert.deepEqual(session.fleetListRequest, Buffer.from('{"pickup":"A"}'));
      assert.deepEqual(session.fleetListResponse, Buffer.from([0, 1, 2, 255, 254, 0]));
      assert.deepEqual(session.attributes, attributes);
      assert.equal(session.ttlSeconds, 60);
      assert.equal(session.createdAtMs, t);
      assert.equal(session.expiresAtMs, t + 60_000);
      assert.equal(session.version, 1);
    });

    it('get of an absent key is null', async () => {
      const { store, now } = harness();
      assert.equal(await store.get(uniqueKey(), now(), false), null);
      assert.equal(await store.get(uniqueKey(), now(), true), null);
    });

    it('put replaces the whole session and continues the version', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft({ attributes: new Map([['a', Buffer.from('1')]]) }), now());
      const replaced = await store.put(
        key,
        draft({
          fleetListRequest: Buffer.from('new'),
          attributes: new Map([['b', Buffer.from('2')]]),
        }),
        now(),
      );
      assert.equal(replaced.version, 2);
      const session = await store.get(key, now(), false);
      assert.deepEqual(session?.fleetListRequest, Buffer.from('new'));
      assert.deepEqual([...(session?.attributes.keys() ?? [])], ['b']);
    });

    it('the absolute lifetime caps the expiry of a put', async () => {
      const { store, now } = harness();
      const t = now();
      const stored = await store.put(uniqueKey(), draft({ ttlSeconds: 3600 }), t);
      assert.equal(stored.expiresAtMs, t + LIMITS.maxLifetimeMs);
    });

    it('sessions expire on their own', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft({ ttlSeconds: 1 }), now());
      assert.ok(await store.get(key, now(), false));
      await sleep(1100);
      assert.equal(await store.get(key, now(), false), null);
      assert.equal(await store.touch(key, 0, now()), null);
      await rejectsWith(store.update(key, change(), now()), ErrorCode.NotFound);
      assert.equal(await store.consume(key, now()), null);
      assert.equal(await store.delete(key, now()), false);
    });

    it('touch extends the idle ttl, capped by the lifetime, and can change the ttl', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft({ ttlSeconds: 10 }), now());
      const t = now();
      assert.equal(await store.touch(key, 0, t), t + 10_000);
      const t2 = now();
      assert.equal(await store.touch(key, 30, t2), t2 + 30_000);
      const session = await store.get(key, now(), false);
      assert.equal(session?.ttlSeconds, 30);
      assert.equal(session?.expiresAtMs, t2 + 30_000);
      assert.equal(session?.version, 1, 'touch does not change the data version');
      const t3 = now();
      const capped = await store.touch(key, 3600, t3);
      assert.equal(capped, (session?.createdAtMs ?? 0) + LIMITS.maxLifetimeMs);
    });

    it('touch of an absent key is null and creates nothing', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      assert.equal(await store.touch(key, 10, now()), null);
      assert.equal(await store.get(key, now(), false), null);
    });

    it('get with touch extends the expiry in the same step', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft({ ttlSeconds: 5 }), now());
      const t = now() + 2000;
      const session = await store.get(key, t, true);
      assert.equal(session?.expiresAtMs, t + 5000);
      assert.equal((await store.get(key, now(), false))?.expiresAtMs, t + 5000);
    });

    it('update merges payloads and attributes and bumps the version', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(
        key,
        draft({
          attributes: new Map([
            ['keep', Buffer.from('k')],
            ['drop', Buffer.from('d')],
            ['over', Buffer.from('o')],
          ]),
        }),
        now(),
      );
      const updated = await store.update(
        key,
        change({
          fleetListResponse: Buffer.from('quoted'),
          setAttributes: new Map([
            ['over', Buffer.from('written')],
            ['new', Buffer.from([0, 1])],
          ]),
          removeAttributes: ['drop', 'never-existed'],
        }),
        now(),
      );
      assert.equal(updated.version, 2);
      assert.deepEqual(updated.fleetListRequest, Buffer.from('{"pickup":"A"}'));
      assert.deepEqual(updated.fleetListResponse, Buffer.from('quoted'));
      assert.deepEqual(
        updated.attributes,
        new Map([
          ['keep', Buffer.from('k')],
          ['over', Buffer.from('written')],
          ['new', Buffer.from([0, 1])],
        ]),
      );
      assert.deepEqual(await store.get(key, now(), false), updated);
    });

    it('update can set a payload to empty bytes', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      const updated = await store.update(key, change({ fleetListRequest: Buffer.alloc(0) }), now());
      assert.equal(updated.fleetListRequest.length, 0);
    });

    it('update never brings back a deleted or absent session', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      assert.equal(await store.delete(key, now()), true);
      await rejectsWith(
        store.update(key, change({ setAttributes: new Map([['x', Buffer.from('y')]]) }), now()),
        ErrorCode.NotFound,
      );
      assert.equal(await store.get(key, now(), false), null);
    });

    it('update with a stale expected_version conflicts and changes nothing', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      await store.update(
        key,
        change({ expectedVersion: 1, fleetListRequest: Buffer.from('v2') }),
        now(),
      );
      await rejectsWith(
        store.update(
          key,
          change({ expectedVersion: 1, fleetListRequest: Buffer.from('lost') }),
          now(),
        ),
        ErrorCode.VersionConflict,
      );
      const session = await store.get(key, now(), false);
      assert.equal(session?.version, 2);
      assert.deepEqual(session?.fleetListRequest, Buffer.from('v2'));
    });

    it('CAS lets exactly one of many concurrent writers with the same version win', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      const results = await Promise.allSettled(
        Array.from({ length: 20 }, (_, i) =>
          store.update(
            key,
            change({ expectedVersion: 1, setAttributes: new Map([['w', Buffer.from(String(i))]]) }),
            now(),
          ),
        ),
      );
      const winners = results.filter((r) => r.status === 'fulfilled');
      assert.equal(winners.length, 1);
      for (const r of results) {
        if (r.status === 'rejected')
          assert.equal((r.reason as SessionError).code, ErrorCode.VersionConflict);
      }
      assert.equal((await store.get(key, now(), false))?.version, 2);
    });

    it('a replace after updates keeps stale versions conflicting', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      await store.update(key, change(), now());
      const replaced = await store.put(key, draft(), now());
      assert.equal(replaced.version, 3);
      await rejectsWith(
        store.update(key, change({ expectedVersion: 1 }), now()),
        ErrorCode.VersionConflict,
      );
    });

    it('update counts as activity and may set a new ttl, capped by the lifetime', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      const created = now();
      await store.put(key, draft({ ttlSeconds: 5 }), created);
      const t = now() + 1000;
      assert.equal((await store.update(key, change(), t)).expiresAtMs, t + 5000);
      const t2 = now() + 1500;
      const longer = await store.update(key, change({ ttlSeconds: 20 }), t2);
      assert.equal(longer.ttlSeconds, 20);
      assert.equal(longer.expiresAtMs, t2 + 20_000);
      const capped = await store.update(key, change({ ttlSeconds: 3600 }), now());
      assert.equal(capped.expiresAtMs, created + LIMITS.maxLifetimeMs);
    });

    it('update refuses to grow a session past the size limit and keeps it intact', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      await rejectsWith(
        store.update(key, change({ fleetListRequest: Buffer.alloc(LIMITS.maxBytes) }), now()),
        ErrorCode.TooLarge,
      );
      const session = await store.get(key, now(), false);
      assert.equal(session?.version, 1);
      assert.deepEqual(session?.fleetListRequest, Buffer.from('{"pickup":"A"}'));
      const shrunk = await store.update(
        key,
        change({
          fleetListRequest: Buffer.alloc(LIMITS.maxBytes - 200),
          removeAttributes: ['order'],
        }),
        now(),
      );
      assert.equal(shrunk.fleetListRequest.length, LIMITS.maxBytes - 200);
    });

    it('update refuses more attributes than the limit', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      const many = new Map(
        Array.from(
          { length: LIMITS.maxAttributes },
          (_, i) => [`a${i}`, Buffer.from('x')] as const,
        ),
      );
      await rejectsWith(
        store.update(key, change({ setAttributes: many }), now()),
        ErrorCode.TooLarge,
      );
      const ok = await store.update(
        key,
        change({ setAttributes: many, removeAttributes: ['order'] }),
        now(),
      );
      assert.equal(ok.attributes.size, LIMITS.maxAttributes);
    });

    it('consume returns the session once; a racing consumer gets null', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      const results = await Promise.all(
        Array.from({ length: 10 }, () => store.consume(key, now())),
      );
      const got = results.filter((r) => r !== null);
      assert.equal(got.length, 1);
      assert.deepEqual(got[0]?.fleetListRequest, Buffer.from('{"pickup":"A"}'));
      assert.equal(await store.get(key, now(), false), null);
    });

    it('delete is idempotent and reports whether it deleted', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      assert.equal(await store.delete(key, now()), true);
      assert.equal(await store.delete(key, now()), false);
      assert.equal(await store.get(key, now(), false), null);
    });

    it('consume with a stale expected_version conflicts and leaves the session; the current one consumes', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      await store.update(key, change({ fleetListRequest: Buffer.from('v2') }), now());
      await rejectsWith(store.consume(key, now(), 1), ErrorCode.VersionConflict);
      assert.equal((await store.get(key, now(), false))?.version, 2);
      const consumed = await store.consume(key, now(), 2);
      assert.deepEqual(consumed?.fleetListRequest, Buffer.from('v2'));
      assert.equal(await store.get(key, now(), false), null);
      assert.equal(await store.consume(key, now(), 2), null);
    });

    it('delete with a stale expected_version conflicts and leaves the session; absent is false', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      await rejectsWith(store.delete(key, now(), 2), ErrorCode.VersionConflict);
      assert.equal((await store.get(key, now(), false))?.version, 1);
      assert.equal(await store.delete(key, now(), 1), true);
      assert.equal(await store.delete(key, now(), 1), false);
    });

    it('keys are case-sensitive and independent', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(`${key}-a`, draft({ fleetListRequest: Buffer.from('lower') }), now());
      await store.put(`${key}-A`, draft({ fleetListRequest: Buffer.from('upper') }), now());
      assert.deepEqual(
        (await store.get(`${key}-a`, now(), false))?.fleetListRequest,
        Buffer.from('lower'),
      );
      assert.deepEqual(
        (await store.get(`${key}-A`, now(), false))?.fleetListRequest,
        Buffer.from('upper'),
      );
    });

    it('rotate moves the session to a new generated key, the same in every respect; the old key is gone', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      const attributes = new Map([
        ['order', Buffer.from('o-1')],
        ['bin', Buffer.from([0, 255])],
      ]);
      await store.put(key, draft({ attributes, ttlSeconds: 30 }), now());
      await store.update(key, change({ setAttributes: new Map([['x', Buffer.from('y')]]) }), now());
      const before = await store.get(key, now(), false);
      assert.ok(before);
      const generate = createTokenGenerator();
      const drawn: string[] = [];
      const rotated = await store.rotate(
        key,
        () => {
          const candidate = generate();
          drawn.push(candidate);
          return candidate;
        },
        now(),
      );
      assert.ok(rotated);
      assert.notEqual(rotated.sessionKey, key);
      assert.ok(drawn.includes(rotated.sessionKey), 'the new key comes from nextKey');
      assert.equal(rotated.version, 2);
      assert.equal(rotated.createdAtMs, before.createdAtMs);
      assert.equal(rotated.expiresAtMs, before.expiresAtMs, 'rotation is not activity');
      assert.deepEqual(await store.get(rotated.sessionKey, now(), false), before);
      assert.equal(await store.get(key, now(), false), null);
      assert.equal(await store.touch(key, 0, now()), null);
      assert.equal(await store.consume(key, now()), null);
      await rejectsWith(store.update(key, change(), now()), ErrorCode.NotFound);
      assert.equal(await store.delete(key, now()), false);
      assert.equal(
        await store.rotate(key, generate, now()),
        null,
        'the old key cannot be rotated again',
      );
      // The new key is a session like any other.
      const updated = await store.update(rotated.sessionKey, change({ expectedVersion: 2 }), now());
      assert.equal(updated.version, 3);
      assert.deepEqual(updated.attributes.get('bin'), Buffer.from([0, 255]));
    });

    it('rotate of an absent or expired key is null and creates nothing', async () => {
      const { store, now } = harness();
      const generate = createTokenGenerator();
      let last = '';
      const nextKey = () => {
        last = generate();
        return last;
      };
      assert.equal(await store.rotate(uniqueKey(), nextKey, now()), null);
      const first = last;
      const key = uniqueKey();
      await store.put(key, draft({ ttlSeconds: 1 }), now());
      await sleep(1100);
      assert.equal(await store.rotate(key, nextKey, now()), null);
      // The key each call settled on (its last draw) holds nothing.
      for (const candidate of [first, last]) {
        if (candidate !== '') assert.equal(await store.get(candidate, now(), false), null);
      }
    });

    it('of racing rotations of one key exactly one wins; the session exists under exactly one key', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      const generate = createTokenGenerator();
      const results = await Promise.all(
        Array.from({ length: 8 }, () => store.rotate(key, generate, now())),
      );
      const winners = results.filter((r) => r !== null);
      assert.equal(winners.length, 1);
      assert.ok(await store.get(winners[0]?.sessionKey ?? '', now(), false));
      assert.equal(await store.get(key, now(), false), null);
    });

    it('rotate then rotate again chains; each step leaves only the newest key', async () => {
      const { store, now } = harness();
      const generate = createTokenGenerator();
      let key = uniqueKey();
      await store.put(key, draft(), now());
      const seen = [key];
      for (let i = 0; i < 3; i++) {
        const rotated = await store.rotate(key, generate, now());
        assert.ok(rotated);
        key = rotated.sessionKey;
        seen.push(key);
      }
      for (const old of seen.slice(0, -1)) assert.equal(await store.get(old, now(), false), null);
      assert.deepEqual(
        (await store.get(key, now(), false))?.fleetListRequest,
        Buffer.from('{"pickup":"A"}'),
      );
    });

    it('ping answers', async () => {
      await harness().store.ping();
    });
  });

  describe(`${name}: idempotency records`, () => {
    it('a repeated put, update and touch apply once and return the first outcome', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      const put = claimed('put', key);
      const first = await store.put(key, draft(), now(), put);
      await sleep(5);
      assert.deepEqual(await store.put(key, draft(), now(), put), first);
      const update = claimed('update', key);
      const merge = change({ setAttributes: new Map([['n', Buffer.from('1')]]) });
      const updated = await store.update(key, merge, now(), update);
      assert.equal(updated.version, 2);
      assert.deepEqual(await store.update(key, merge, now(), update), updated);
      const touch = claimed('touch', key);
      const expiresAtMs = await store.touch(key, 30, now(), touch);
      await sleep(5);
      assert.equal(await store.touch(key, 30, now(), touch), expiresAtMs);
      const stored = await store.get(key, now(), false);
      assert.equal(stored?.version, 2, 'each write applied once');
      assert.equal(stored?.expiresAtMs, expiresAtMs);
    });

    it('a repeated consume returns the same data; the session is gone once', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      const consume = claimed('consume', key);
      const first = await store.consume(key, now(), undefined, consume);
      assert.deepEqual(first?.fleetListResponse, draft().fleetListResponse);
      assert.deepEqual(await store.consume(key, now(), undefined, consume), first);
      assert.equal(await store.consume(key, now()), null, 'an unclaimed consume finds nothing');
      const remove = claimed('delete', key);
      await store.put(key, draft(), now());
      assert.equal(await store.delete(key, now(), undefined, remove), true);
      assert.equal(await store.delete(key, now(), undefined, remove), true);
    });

    it('a repeat gets the first error, even when the state has changed since', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      const consume = claimed('consume', key);
      assert.equal(await store.consume(key, now(), undefined, consume), null);
      await store.put(key, draft(), now());
      assert.equal(await store.consume(key, now(), undefined, consume), null);
      assert.equal((await store.get(key, now(), false))?.version, 1, 'the repeat changed nothing');
      const update = claimed('update', key);
      await rejectsWith(
        store.update(key, change({ expectedVersion: 7 }), now(), update),
        ErrorCode.VersionConflict,
      );
      await rejectsWith(
        store.update(key, change({ expectedVersion: 7 }), now(), update),
        ErrorCode.VersionConflict,
      );
    });

    it('a repeated rotate returns the same new key; the session exists once', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      const rotate = claimed('rotate', key);
      const secret = await store.idempotencySecret();
      assert.deepEqual(await store.idempotencySecret(), secret, 'the secret is made once');
      const keys = () => derivedKeys(secret, rotate.idempotency as IdempotencyClaim);
      const first = await store.rotate(key, keys(), now(), rotate);
      assert.ok(first);
      assert.deepEqual(await store.rotate(key, keys(), now(), rotate), first);
      assert.equal(await store.get(key, now(), false), null);
      assert.equal((await store.get(first.sessionKey, now(), false))?.version, 1);
    });

    it('another request under the same claim is IDEMPOTENCY_KEY_REUSED and changes nothing', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now(), claimed('key-1', key, 'first'));
      await rejectsWith(
        store.put(key, draft({ ttlSeconds: 5 }), now(), claimed('key-1', key, 'second')),
        ErrorCode.IdempotencyKeyReused,
      );
      await rejectsWith(
        store.consume(key, now(), undefined, claimed('key-1', key, 'third')),
        ErrorCode.IdempotencyKeyReused,
      );
      const session = await store.get(key, now(), false);
      assert.equal(session?.version, 1);
      assert.equal(session?.ttlSeconds, 60);
    });

    it('claims are independent: per caller, and per session', async () => {
      const { store, now } = harness();
      const key = uniqueKey();
      await store.put(key, draft(), now());
      const merge = change({ setAttributes: new Map([['n', Buffer.from('1')]]) });
      await store.update(key, merge, now(), claimed('same', key, 'request', 'caller-a'));
      const other = await store.update(
        key,
        merge,
        now(),
        claimed('same', key, 'request', 'caller-b'),
      );
      assert.equal(other.version, 3, "caller b's call is its own");
      await store.put(`${key}-2`, draft(), now(), claimed('same', key, 'request', 'caller-a'));
      assert.equal((await store.get(`${key}-2`, now(), false))?.version, 1);
    });
  });
}

/**
 * The scope of a call with idempotency key `key`, unique to this run and
 * `session`; `request` stands for the request's content.
 */
function claimed(key: string, session: string, request = key, caller = ''): CallScope {
  return claimedScope(UNSCOPED, claimOf(caller, `${session}/${key}`, 'Method', request));
}
