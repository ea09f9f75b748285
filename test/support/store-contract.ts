import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type CallScope, claimedScope, UNSCOPED } from '../../src/call-scope.ts';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { claimOf, derivedKeys, type IdempotencyClaim } from '../../src/idempotency.ts';
import type { OwnerRef, SessionChange, SessionDraft } from '../../src/session.ts';
import { ownerRef, sessionHandle, tagOf, withTag } from '../../src/session-keys.ts';
import {
  LISTED_CONTENT_MAX_BYTES,
  type SessionStore,
  type StoreLimits,
} from '../../src/store/store.ts';
import { createTokenGenerator } from '../../src/token.ts';
import { ownersSharingATag } from './owners.ts';

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
  /**
   * A store on the same backend with LIMITS but `atOwnerLimit: 'refuse'`;
   * the refusal cases are skipped, and say so, without one.
   */
  refusing?: SessionStore;
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

  describe(`${name}: owner index`, () => {
    const generate = createTokenGenerator();
    /** A new owner under the store's secret, and keys for its sessions. */
    const newOwner = async (store: SessionStore): Promise<OwnerRef> =>
      ownerRef(await store.idempotencySecret(), `rider-${uniqueKey()}`);
    const keyOf = (owner: OwnerRef) => withTag(generate(), owner.tag);
    const handles = async (store: SessionStore, owner: OwnerRef, nowMs: number) =>
      (await store.listOwned(owner, nowMs, false)).map((listed) => listed.handle);
    /** Puts `count` sessions of the owner, 10 ms of creation time apart; their keys. */
    const putMany = async (store: SessionStore, owner: OwnerRef, count: number, t: number) => {
      const keys: string[] = [];
      for (let i = 0; i < count; i++) {
        const key = keyOf(owner);
        await store.put(key, draft({ owner }), t + i * 10);
        keys.push(key);
      }
      return keys;
    };

    it("lists an owner's live sessions oldest first, by handle, with metadata and content only on request", async () => {
      const { store, now } = harness();
      const [owner, twin] = ownersSharingATag(await store.idempotencySecret(), uniqueKey());
      const t = now();
      const attributes = new Map([['fare', Buffer.from([0, 255, 1])]]);
      const first = keyOf(owner);
      await store.put(first, draft({ owner, attributes, ttlSeconds: 30 }), t);
      await store.put(keyOf(twin), draft({ owner: twin }), t + 5);
      await store.put(keyOf(owner), draft(), t + 8); // tagged, but no owner
      const second = keyOf(owner);
      await store.put(
        second,
        draft({ owner, fleetListRequest: Buffer.from('2nd'), ttlSeconds: 20 }),
        t + 10,
      );
      await store.update(second, change({ setAttributes: attributes }), t + 20);
      const listed = await store.listOwned(owner, t + 30, false);
      assert.deepEqual(listed, [
        {
          handle: sessionHandle(first),
          ttlSeconds: 30,
          createdAtMs: t,
          expiresAtMs: t + 30_000,
          version: 1,
          sizeBytes: 14 + 6 + 4 + 3,
        },
        {
          handle: sessionHandle(second),
          ttlSeconds: 20,
          createdAtMs: t + 10,
          expiresAtMs: t + 20 + 20_000,
          version: 2,
          sizeBytes: 3 + 6 + 5 + 3 + 4 + 3,
        },
      ]);
      for (const session of listed) {
        assert.ok(!JSON.stringify(session).includes(first), 'a listing never shows a key');
      }
      const withContent = await store.listOwned(owner, t + 30, true);
      assert.deepEqual(
        withContent.map((session) => session.handle),
        listed.map((session) => session.handle),
      );
      const [one, two] = withContent.map((session) => session.content);
      assert.deepEqual(one?.fleetListRequest, Buffer.from('{"pickup":"A"}'));
      assert.deepEqual(one?.attributes, attributes);
      assert.deepEqual(two?.fleetListRequest, Buffer.from('2nd'));
      assert.deepEqual(two?.fleetListResponse, Buffer.from([0, 1, 2, 255, 254, 0]));
      assert.deepEqual(two?.attributes, new Map([...draft().attributes, ...attributes]));
      assert.deepEqual(await store.listOwned(await newOwner(store), t, true), [], 'no sessions');
    });

    it('a listing with content past LISTED_CONTENT_MAX_BYTES is refused naming include_content; without content it lists', async () => {
      const { store, now } = harness();
      const owner = await newOwner(store);
      const t = now();
      const big = Buffer.alloc(Math.ceil(LISTED_CONTENT_MAX_BYTES / 3), 7);
      for (let i = 0; i < 3; i++)
        await store.put(keyOf(owner), draft({ owner, fleetListRequest: big }), t + i);
      await rejectsWith(store.listOwned(owner, t + 10, true), ErrorCode.TooLarge);
      await assert.rejects(
        store.listOwned(owner, t + 10, true),
        /^SessionError: include_content: /,
      );
      assert.equal((await store.listOwned(owner, t + 10, false)).length, 3);
      assert.equal(await store.revokeOwned(owner, t + 10), 3);
    });

    it('revokes every live session of the owner and counts them; others are untouched', async () => {
      const { store, now } = harness();
      const [owner, twin] = ownersSharingATag(await store.idempotencySecret(), uniqueKey());
      const t = now();
      const keys = await putMany(store, owner, 3, t);
      const twins = await putMany(store, twin, 1, t);
      const unowned = keyOf(owner);
      await store.put(unowned, draft(), t);
      assert.equal(await store.revokeOwned(owner, t + 50), 3);
      for (const key of keys) assert.equal(await store.get(key, t + 50, false), null);
      assert.deepEqual(await store.listOwned(owner, t + 50, true), []);
      assert.deepEqual(await handles(store, twin, t + 50), twins.map(sessionHandle));
      assert.ok(await store.get(unowned, t + 50, false), 'a session without an owner stays');
      assert.equal(await store.revokeOwned(owner, t + 60), 0);
      await putMany(store, owner, 1, t + 70);
      assert.equal(await store.revokeOwned(owner, t + 80), 1, 'an owner can start again');
    });

    it('evict-oldest: a new session at the limit evicts the oldest; replacing one of them evicts none', async () => {
      const { store, now } = harness();
      assert.equal(LIMITS.atOwnerLimit, 'evict-oldest');
      const owner = await newOwner(store);
      const t = now();
      const keys = await putMany(store, owner, LIMITS.maxPerOwner, t);
      const replaced = await store.put(keys[1] as string, draft({ owner }), t + 100);
      assert.equal(replaced.evicted, 0);
      const newest = keyOf(owner);
      const stored = await store.put(newest, draft({ owner }), t + 200);
      assert.equal(stored.evicted, 1);
      assert.equal(stored.version, 1);
      assert.equal(await store.get(keys[0] as string, t + 200, false), null, 'the oldest is gone');
      const listed = await handles(store, owner, t + 200);
      assert.equal(listed.length, LIMITS.maxPerOwner);
      assert.ok(listed.includes(sessionHandle(newest)));
      assert.ok(!listed.includes(sessionHandle(keys[0] as string)));
    });

    it('refuse: a new session at the limit is TOO_LARGE on owner and changes nothing; replacing one is fine', async (t) => {
      const { refusing: store, now } = harness();
      if (!store) return t.skip('this harness has no store with atOwnerLimit=refuse');
      const owner = await newOwner(store);
      const at = now();
      const keys = await putMany(store, owner, LIMITS.maxPerOwner, at);
      const refused = keyOf(owner);
      await assert.rejects(store.put(refused, draft({ owner }), at + 100), (error: unknown) => {
        assert.ok(error instanceof SessionError);
        assert.equal(error.code, ErrorCode.TooLarge);
        assert.match(error.message, /^owner: /);
        assert.ok(!error.message.includes(owner.digest), 'the message names no owner');
        return true;
      });
      assert.equal(await store.get(refused, at + 100, false), null);
      assert.deepEqual(await handles(store, owner, at + 100), keys.map(sessionHandle));
      const replaced = await store.put(keys[0] as string, draft({ owner }), at + 200);
      assert.equal(replaced.evicted, 0);
      assert.equal(replaced.version, 2);
      await store.delete(keys[1] as string, at + 300);
      assert.equal((await store.put(refused, draft({ owner }), at + 300)).evicted, 0);
    });

    it("rotate keeps the session in its owner's listing, in its place, under the new handle", async () => {
      const { store, now } = harness();
      const owner = await newOwner(store);
      const t = now();
      const keys = await putMany(store, owner, 3, t);
      const middle = keys[1] as string;
      const rotated = await store.rotate(middle, () => keyOf(owner), t + 50);
      assert.ok(rotated);
      assert.equal(tagOf(rotated.sessionKey), owner.tag);
      assert.deepEqual(await handles(store, owner, t + 50), [
        sessionHandle(keys[0] as string),
        sessionHandle(rotated.sessionKey),
        sessionHandle(keys[2] as string),
      ]);
      assert.equal((await store.put(keyOf(owner), draft({ owner }), t + 60)).evicted, 0);
      assert.equal(await store.revokeOwned(owner, t + 70), 4, 'the rotated session is revoked too');
      assert.equal(await store.get(rotated.sessionKey, t + 70, false), null);
    });

    it('put replacing an owned session starts it anew: listed as of its new creation', async () => {
      const { store, now } = harness();
      const owner = await newOwner(store);
      const t = now();
      const keys = await putMany(store, owner, 3, t);
      const [first, second, third] = keys as [string, string, string];
      const replaced = await store.put(first, draft({ owner }), t + 100);
      assert.equal(replaced.createdAtMs, t + 100);
      const listed = await store.listOwned(owner, t + 100, false);
      assert.deepEqual(
        listed.map((session) => [session.handle, session.createdAtMs]),
        [
          [sessionHandle(second), t + 10],
          [sessionHandle(third), t + 20],
          [sessionHandle(first), t + 100],
        ],
      );
    });

    it("put without an owner takes an owned session out of its owner's index; with another owner, into that one's", async () => {
      const { store, now } = harness();
      const [owner, twin] = ownersSharingATag(await store.idempotencySecret(), uniqueKey());
      const t = now();
      const [key, kept] = (await putMany(store, owner, 2, t)) as [string, string];
      await store.put(key, draft(), t + 50);
      assert.deepEqual(await handles(store, owner, t + 50), [sessionHandle(kept)]);
      assert.equal(await store.revokeOwned(owner, t + 60), 1);
      assert.ok(await store.get(key, t + 60, false), 'no longer an owned session: not revoked');
      await store.put(key, draft({ owner }), t + 70);
      await store.put(key, draft({ owner: twin }), t + 80);
      assert.deepEqual(await handles(store, owner, t + 80), []);
      assert.deepEqual(await handles(store, twin, t + 80), [sessionHandle(key)]);
    });

    it("consume and delete take a session out of its owner's listing", async () => {
      const { store, now } = harness();
      const owner = await newOwner(store);
      const t = now();
      const [consumed, deleted, kept] = (await putMany(store, owner, 3, t)) as [
        string,
        string,
        string,
      ];
      assert.ok(await store.consume(consumed, t + 50));
      assert.deepEqual(await handles(store, owner, t + 50), [deleted, kept].map(sessionHandle));
      assert.equal(await store.delete(deleted, t + 60), true);
      assert.deepEqual(await handles(store, owner, t + 60), [sessionHandle(kept)]);
      assert.equal(await store.revokeOwned(owner, t + 70), 1);
    });

    it("a key whose owned session expired, set again for another owner or none, is no longer the first owner's", async () => {
      const { store, now } = harness();
      const [owner, twin] = ownersSharingATag(await store.idempotencySecret(), uniqueKey());
      const t = now();
      const [toTwin, toNone, kept] = [keyOf(owner), keyOf(owner), keyOf(owner)] as const;
      await store.put(toTwin, draft({ owner, ttlSeconds: 1 }), t);
      await store.put(toNone, draft({ owner, ttlSeconds: 1 }), t + 1);
      await store.put(kept, draft({ owner }), t + 2); // the owner keeps a session throughout
      await sleep(1100);
      const later = now();
      await store.put(toTwin, draft({ owner: twin }), later);
      await store.put(toNone, draft(), later + 1);
      assert.deepEqual(await handles(store, owner, later + 2), [sessionHandle(kept)]);
      assert.deepEqual(await handles(store, twin, later + 2), [sessionHandle(toTwin)]);
      for (let i = 1; i < LIMITS.maxPerOwner; i++) {
        const stored = await store.put(keyOf(owner), draft({ owner }), later + 10 + i);
        assert.equal(stored.evicted, 0, `put ${i}: only the owner's live sessions count`);
      }
      assert.equal(await store.revokeOwned(owner, later + 20), LIMITS.maxPerOwner);
      assert.ok(
        await store.get(toTwin, later + 20, false),
        "the twin's session is not the owner's",
      );
      assert.ok(
        await store.get(toNone, later + 20, false),
        'a session without an owner belongs to no one',
      );
    });

    it('expired sessions are neither listed nor counted against the limit', async () => {
      const { store, now } = harness();
      const owner = await newOwner(store);
      const t = now();
      const kept = keyOf(owner);
      await store.put(kept, draft({ owner }), t);
      for (let i = 1; i < LIMITS.maxPerOwner; i++) {
        await store.put(keyOf(owner), draft({ owner, ttlSeconds: 1 }), t + i);
      }
      await sleep(1100);
      const later = now();
      assert.deepEqual(await handles(store, owner, later), [sessionHandle(kept)]);
      for (let i = 1; i < LIMITS.maxPerOwner; i++) {
        assert.equal((await store.put(keyOf(owner), draft({ owner }), later + i)).evicted, 0);
      }
      assert.ok(await store.get(kept, later, false), 'the one that had not expired stays');
      assert.equal(await store.revokeOwned(owner, later + 10), LIMITS.maxPerOwner);
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
