import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SessionError } from '../../src/errors.ts';
import type { OwnedSession, OwnerRef, Session, SessionChange } from '../../src/session.ts';
import { tagOf, withTag } from '../../src/session-keys.ts';
import type { SessionStore, StoreLimits } from '../../src/store/store.ts';
import { createTokenGenerator } from '../../src/token.ts';
import { copyContent, type ModelError, OwnerModel } from './owner-model.ts';
import { ownersSharingATag } from './owners.ts';

/**
 * The owner index's property test: random interleavings of set (with one of
 * three owners, or none, replacing sessions of another owner or of none),
 * get, update, touch, consume, delete, rotate, expiry and revocation on nine
 * keys, against OwnerModel. Every call must give the model's result, and
 * listOwned must return exactly the owner's live sessions, oldest first:
 * after every step in some runs, and only now and then in others, so that
 * index entries of gone sessions pile up between listings.
 *
 * Owners A and B share a key tag (two riders whose 18-bit tags collide), so
 * one key can pass from A to B; owner C has a tag of its own. Keys:
 */
const SLOT_OWNERS: readonly (readonly number[])[] = [
  ...Array.from({ length: 5 }, () => [0, 1]), // tagged with A's and B's tag
  ...Array.from({ length: 3 }, () => [2]), // tagged with C's tag
  [], // an untagged key, which no owner can have
];
const OWNER_NAMES = ['A', 'B', 'C'];

/**
 * Time is synthetic and moves in whole seconds from the run's start: each
 * step 1 s after the last, an expiry step to a session's expires_at (the
 * first instant it is gone), a wait step further. It starts at the wall clock
 * and runs ahead of it (a step takes far less than 1 s), so a session that
 * Redis expires on its own is one the model has expired too; everything else
 * is decided by the `nowMs` each call passes. Whole seconds keep every live
 * session's remaining lifetime at 1 s or more. A step that takes 1 s or more
 * of real time (a stalled machine) voids its sequence instead of failing it.
 */
const STEP_MS = 1000;

const slot = fc.integer({ min: 0, max: SLOT_OWNERS.length - 1 });
const text = fc.string({ maxLength: 6 });
const attributes = fc.uniqueArray(fc.tuple(fc.constantFrom('a', 'b', 'c'), text), {
  maxLength: 2,
  selector: ([name]) => name,
});
/** Short ones to see sessions expire, long ones to see owners reach their limit. */
const ttl = fc.oneof(fc.integer({ min: 2, max: 5 }), fc.integer({ min: 20, max: 60 }));
const version = fc.option(fc.integer({ min: 1, max: 4 }), { nil: undefined });

type Op =
  /** `owner` indexes the slot's possible owners; past their end, no owner. */
  | {
      kind: 'set';
      slot: number;
      owner: number;
      request: string;
      attributes: [string, string][];
      ttl: number;
    }
  | { kind: 'get'; slot: number; touch: boolean }
  | {
      kind: 'update';
      slot: number;
      request: string | undefined;
      set: [string, string][];
      remove: string[];
      version: number | undefined;
      ttl: number;
    }
  | { kind: 'touch'; slot: number; ttl: number }
  | { kind: 'consume'; slot: number; version: number | undefined }
  | { kind: 'delete'; slot: number; version: number | undefined }
  | { kind: 'rotate'; slot: number }
  | { kind: 'expire'; slot: number }
  | { kind: 'wait'; seconds: number }
  | { kind: 'revoke'; owner: number }
  | { kind: 'list'; owner: number; content: boolean };

const owner = fc.integer({ min: 0, max: 2 });
const op: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('set' as const),
      slot,
      owner,
      request: text,
      attributes,
      ttl,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('get' as const), slot, touch: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('update' as const),
      slot,
      request: fc.option(text, { nil: undefined }),
      set: attributes,
      remove: fc.uniqueArray(fc.constantFrom('a', 'b', 'c'), { maxLength: 2 }),
      version,
      ttl: fc.oneof(fc.constant(0), ttl),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('touch' as const),
      slot,
      ttl: fc.oneof(fc.constant(0), ttl),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('consume' as const), slot, version }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), slot, version }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('rotate' as const), slot }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('expire' as const), slot }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('wait' as const),
      seconds: fc.integer({ min: 2, max: 40 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('revoke' as const), owner }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('list' as const), owner, content: fc.boolean() }),
  },
);

export interface OwnerPropertyOptions {
  readonly numRuns: number;
  /** Replays a failure fast-check reported. */
  readonly seed?: number;
  readonly path?: string;
  /** For a store that keeps expiry and the index itself (Redis). */
  readonly probe?: StoreProbe;
}

/** What the test of a store that expires sessions on its own and keeps an index (Redis) plugs in. */
export interface StoreProbe {
  /**
   * Ends a session whose expiry has come in synthetic time, as the store's
   * own expiry would later in real time (Redis: its hash goes).
   */
  expire(sessionKey: string): Promise<void>;
  /** Right after listOwned of the owner: the store's index holds exactly these handles, oldest first. */
  checkIndex(owner: OwnerRef, handles: readonly string[]): Promise<void>;
  /** At the end of a sequence: of every key it used, the live ones hold a session and no other does. */
  checkKeys(used: readonly string[], live: ReadonlySet<string>): Promise<void>;
}

let run = 0;

/**
 * Runs random operation sequences against `store` (made with `limits`) and
 * OwnerModel; throws fast-check's report (seed, path and the shrunk
 * sequence) on the first difference.
 */
export async function assertOwnerIndexHolds(
  store: SessionStore,
  limits: StoreLimits,
  options: OwnerPropertyOptions,
): Promise<void> {
  const secret = await store.idempotencySecret();
  const generate = createTokenGenerator();
  await fc.assert(
    fc.asyncProperty(
      fc.boolean(),
      fc.array(op, { minLength: 1, maxLength: 80, size: 'large' }),
      async (listEveryStep, ops) => {
        run += 1;
        const owners = ownersSharingATag(secret, `owner-model-${process.pid}-${run}`);
        const keys = SLOT_OWNERS.map((possible) => {
          const tag = owners[possible[0] ?? -1]?.tag;
          return tag === undefined ? generate() : withTag(generate(), tag);
        });
        const model = new OwnerModel(limits);
        const sequence = new Sequence(store, limits, model, owners, keys, generate, options);
        for (const [step, operation] of ops.entries()) {
          await sequence.step(step, operation);
          if (listEveryStep) for (const o of [0, 1, 2]) await sequence.list(o, step % 2 === 0);
          else if (operation.kind === 'list')
            await sequence.list(operation.owner, operation.content);
        }
        sequence.keepAhead();
        for (const o of [0, 1, 2]) await sequence.list(o, true);
        await sequence.checkKeys();
      },
    ),
    {
      numRuns: options.numRuns,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      ...(options.path === undefined ? {} : { path: options.path }),
    },
  );
}

/** One sequence: the store, the model, the clock and the slots' current keys. */
class Sequence {
  readonly #start = Math.ceil(Date.now() / STEP_MS) * STEP_MS;
  #now = this.#start;
  /** The wall clock when the last step began. */
  #realAt = Date.now();
  #label = '';
  /** Every key the sequence used: the slots' first keys and every key a rotation chose. */
  readonly #used: Set<string>;

  constructor(
    readonly store: SessionStore,
    readonly limits: StoreLimits,
    readonly model: OwnerModel,
    readonly owners: readonly OwnerRef[],
    readonly keys: string[],
    readonly generate: () => string,
    readonly options: OwnerPropertyOptions,
  ) {
    this.#used = new Set(keys);
  }

  async step(step: number, op: Op): Promise<void> {
    this.keepAhead();
    this.#now += STEP_MS;
    if (op.kind === 'expire') {
      this.#now = Math.max(this.#now, this.model.expiryOf(this.keys[op.slot] as string) ?? 0);
    }
    if (op.kind === 'wait') this.#now += op.seconds * STEP_MS;
    this.#label = `step ${step} at +${(this.#now - this.#start) / 1000} s: ${describe(op)}`;
    // Before the model is asked anything at this time: asking drops what expired unseen.
    for (const key of this.model.expire(this.#now)) await this.options.probe?.expire(key);
    const now = this.#now;
    const store = this.store;
    const model = this.model;
    switch (op.kind) {
      case 'set': {
        const key = this.keys[op.slot] as string;
        const owner = SLOT_OWNERS[op.slot]?.[op.owner];
        const content = {
          fleetListRequest: Buffer.from(op.request),
          fleetListResponse: Buffer.alloc(0),
          attributes: new Map(op.attributes.map(([n, v]) => [n, Buffer.from(v)])),
        };
        const ownerRefOrNone = owner === undefined ? {} : { owner: this.owners[owner] as OwnerRef };
        const actual = await outcome(
          store.put(key, { ...content, ttlSeconds: op.ttl, ...ownerRefOrNone }, now),
        );
        this.#equal(actual, model.put(key, content, op.ttl, owner, now));
        return;
      }
      case 'get': {
        const key = this.keys[op.slot] as string;
        const actual = await store.get(key, now, op.touch);
        this.#equal(sessionOrNull(actual), model.get(key, op.touch, now));
        return;
      }
      case 'update': {
        const key = this.keys[op.slot] as string;
        const change: SessionChange = {
          ...(op.request === undefined ? {} : { fleetListRequest: Buffer.from(op.request) }),
          setAttributes: new Map(op.set.map(([n, v]) => [n, Buffer.from(v)])),
          removeAttributes: op.remove.filter((n) => !op.set.some(([s]) => s === n)),
          ...(op.version === undefined ? {} : { expectedVersion: op.version }),
          ttlSeconds: op.ttl,
        };
        const actual = await outcome(store.update(key, change, now).then(sessionOf));
        this.#equal(actual, model.update(key, change, now));
        return;
      }
      case 'touch': {
        const key = this.keys[op.slot] as string;
        this.#equal(await store.touch(key, op.ttl, now), model.touch(key, op.ttl, now));
        return;
      }
      case 'consume': {
        const key = this.keys[op.slot] as string;
        const actual = await outcome(store.consume(key, now, op.version).then(sessionOrNull));
        this.#equal(actual, model.consume(key, op.version, now));
        return;
      }
      case 'delete': {
        const key = this.keys[op.slot] as string;
        const actual = await outcome(store.delete(key, now, op.version));
        this.#equal(actual, model.delete(key, op.version, now));
        return;
      }
      case 'rotate':
        return this.#rotate(op.slot, now);
      case 'expire':
      case 'wait':
        return;
      case 'revoke': {
        const ref = this.owners[op.owner] as OwnerRef;
        this.#equal(await store.revokeOwned(ref, now), model.revoke(op.owner, now));
        return;
      }
      case 'list':
        return;
    }
  }

  /** Voids the sequence (fc.pre) when the wall clock has caught up with synthetic time. */
  keepAhead(): void {
    const real = Date.now();
    fc.pre(real - this.#realAt < STEP_MS);
    this.#realAt = real;
  }

  /** listOwned of the owner must be the model's listing; then the probe looks at the store. */
  async list(owner: number, includeContent: boolean): Promise<void> {
    const ref = this.owners[owner] as OwnerRef;
    const actual = await this.store.listOwned(ref, this.#now, includeContent);
    const expected = this.model.list(owner, includeContent, this.#now);
    assert.ok(
      actual.length <= this.limits.maxPerOwner,
      `${this.#label}: owner ${OWNER_NAMES[owner]} lists ${actual.length} sessions, over the limit`,
    );
    assert.deepStrictEqual(
      actual.map(listed),
      expected,
      `${this.#label}: listOwned(${OWNER_NAMES[owner]}) after this step`,
    );
    const handles = expected.map((session) => session.handle);
    await this.options.probe?.checkIndex(ref, handles).catch((error: unknown) => {
      throw new Error(`${this.#label}: the index of ${OWNER_NAMES[owner]}`, { cause: error });
    });
  }

  async checkKeys(): Promise<void> {
    const live = new Set(this.model.liveKeys(this.#now));
    await this.options.probe?.checkKeys([...this.#used], live).catch((error: unknown) => {
      throw new Error(`${this.#label}: at the end, the sessions of every key used`, {
        cause: error,
      });
    });
  }

  async #rotate(slot: number, now: number): Promise<void> {
    const key = this.keys[slot] as string;
    const tag = tagOf(key);
    const nextKey = tag === undefined ? this.generate : () => withTag(this.generate(), tag);
    const before = this.model.get(key, false, now);
    const rotated = await this.store.rotate(key, nextKey, now);
    if (rotated === null || before === null) {
      this.#equal(rotated, before);
      return;
    }
    assert.notEqual(rotated.sessionKey, key, this.#label);
    assert.equal(tagOf(rotated.sessionKey), tag, `${this.#label}: the new key keeps the tag`);
    this.model.rotate(key, rotated.sessionKey, now);
    this.keys[slot] = rotated.sessionKey;
    this.#used.add(rotated.sessionKey);
    const { version, createdAtMs, expiresAtMs } = before;
    this.#equal(
      {
        version: rotated.version,
        createdAtMs: rotated.createdAtMs,
        expiresAtMs: rotated.expiresAtMs,
      },
      { version, createdAtMs, expiresAtMs },
    );
  }

  #equal(actual: unknown, expected: unknown): void {
    assert.deepStrictEqual(actual, expected, this.#label);
  }
}

async function outcome<T>(call: Promise<T>): Promise<T | ModelError> {
  try {
    return await call;
  } catch (error) {
    if (!(error instanceof SessionError)) throw error;
    return { error: error.code, field: error.message.slice(0, error.message.indexOf(':')) };
  }
}

/** The session's fields alone, whatever else a store's object carries. */
function sessionOf(session: Session): Session {
  const { fleetListRequest, fleetListResponse, attributes, ttlSeconds, createdAtMs } = session;
  const { expiresAtMs, version } = session;
  return {
    fleetListRequest,
    fleetListResponse,
    attributes: new Map(attributes),
    ttlSeconds,
    createdAtMs,
    expiresAtMs,
    version,
  };
}

const sessionOrNull = (session: Session | null) => (session ? sessionOf(session) : null);

function listed(session: OwnedSession): OwnedSession {
  const { handle, ttlSeconds, createdAtMs, expiresAtMs, version, sizeBytes, content } = session;
  const fields = { handle, ttlSeconds, createdAtMs, expiresAtMs, version, sizeBytes };
  return content === undefined ? fields : { ...fields, content: copyContent(content) };
}

function describe(op: Op): string {
  const { kind, ...rest } = op;
  if ('owner' in op && kind === 'set') {
    const owner = SLOT_OWNERS[op.slot]?.[op.owner];
    return `${kind} ${JSON.stringify({ ...rest, owner: owner === undefined ? 'none' : OWNER_NAMES[owner] })}`;
  }
  if ('owner' in op) return `${kind} ${JSON.stringify({ ...rest, owner: OWNER_NAMES[op.owner] })}`;
  return `${kind} ${JSON.stringify(rest)}`;
}
