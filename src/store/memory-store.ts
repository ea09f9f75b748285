import { randomBytes } from 'node:crypto';
import type { CallScope } from '../call-scope.ts';
import {
  ErrorCode,
  notFound,
  ownerLimitReached,
  SessionError,
  tooLarge,
  versionConflict,
} from '../errors.ts';
import { idempotencyKeyReused } from '../idempotency.ts';
import type { OwnedSession, OwnerRef, Session, SessionChange, SessionDraft } from '../session.ts';
import { contentSize, expiryAfterActivity } from '../session.ts';
import { sessionHandle } from '../session-keys.ts';
import {
  LISTED_CONTENT_MAX_BYTES,
  listingTooLarge,
  type PutResult,
  type SessionStore,
  type StoreLimits,
} from './store.ts';

/**
 * Bookkeeping cost of one session beyond its content, for the memory bound:
 * measured at about 1.2 KB of heap and Buffer headers per session (50,000
 * sessions of 2 KB, heapUsed + external after a full GC).
 */
const ENTRY_OVERHEAD_BYTES = 1200;
const SWEEP_INTERVAL_MS = 1000;

interface Entry {
  session: Session;
  bytes: number;
  /** The owner digest whose index lists this session. */
  owner: string | undefined;
}

/** What a write ended with, as an idempotency record keeps it. */
type Outcome = { readonly value: unknown } | { readonly error: SessionError };

interface IdempotencyRecord {
  readonly fingerprint: string;
  readonly outcome: Outcome;
  readonly expiresAtMs: number;
  readonly bytes: number;
}

/** The errors a write ends with that depend on the stored state: a repeat must see them again. */
const RECORDED_ERRORS: ReadonlySet<string> = new Set([
  ErrorCode.NotFound,
  ErrorCode.VersionConflict,
  ErrorCode.TooLarge,
]);

/**
 * The embedded store used when no Redis is configured: the reference semantics
 * for every other store, in one process. Expired sessions vanish on access and
 * are swept once a second; memory is bounded by `maxStoreBytes`, and a write
 * past the bound is refused rather than evicting a session it acknowledged.
 */
export class MemoryStore implements SessionStore {
  readonly #sessions = new Map<string, Entry>();
  /** Owner digest → the keys of its sessions, each with its place in creation order. */
  readonly #owners = new Map<string, Map<string, number>>();
  /** The place of the next session created with an owner. */
  #ownerOrder = 0;
  /** By session key and claim id (`${key}\n${id}`), as Redis keeps them beside the session. */
  readonly #records = new Map<string, IdempotencyRecord>();
  readonly #secret = randomBytes(32);
  readonly #limits: StoreLimits;
  readonly #maxStoreBytes: number;
  readonly #sweeper: NodeJS.Timeout;
  #bytes = 0;

  constructor(limits: StoreLimits, maxStoreBytes: number, clock: () => number = Date.now) {
    this.#limits = limits;
    this.#maxStoreBytes = maxStoreBytes;
    this.#sweeper = setInterval(() => this.#sweep(clock()), SWEEP_INTERVAL_MS).unref();
  }

  async put(
    key: string,
    draft: SessionDraft,
    nowMs: number,
    scope?: CallScope,
  ): Promise<PutResult> {
    return this.#once(key, nowMs, scope, () => this.#put(key, draft, nowMs));
  }

  #put(key: string, draft: SessionDraft, nowMs: number): PutResult {
    const previous = this.#live(key, nowMs);
    const evicted = draft.owner ? this.#makeRoom(draft.owner, key, nowMs) : 0;
    const session: Session = {
      fleetListRequest: Buffer.from(draft.fleetListRequest),
      fleetListResponse: Buffer.from(draft.fleetListResponse),
      attributes: copyAttributes(draft.attributes),
      ttlSeconds: draft.ttlSeconds,
      createdAtMs: nowMs,
      expiresAtMs: expiryAfterActivity(nowMs, draft.ttlSeconds, nowMs, this.#limits.maxLifetimeMs),
      version: (previous?.version ?? 0) + 1,
    };
    this.#store(key, session, draft.owner?.digest ?? null);
    const { version, createdAtMs, expiresAtMs } = session;
    return { version, createdAtMs, expiresAtMs, evicted };
  }

  /**
   * Makes room for one more session of the owner (none is needed when `key`
   * is already one of its sessions): evicts its oldest, or refuses, at the
   * limit. How many it evicted.
   */
  #makeRoom(owner: OwnerRef, key: string, nowMs: number): number {
    const keys = this.#liveKeys(owner.digest, nowMs);
    if (keys.includes(key) || keys.length < this.#limits.maxPerOwner) return 0;
    if (this.#limits.atOwnerLimit === 'refuse')
      throw ownerLimitReached(keys.length, this.#limits.maxPerOwner);
    const excess = keys.slice(0, keys.length - this.#limits.maxPerOwner + 1);
    for (const oldest of excess) this.#remove(oldest);
    return excess.length;
  }

  async listOwned(
    owner: OwnerRef,
    nowMs: number,
    includeContent: boolean,
  ): Promise<OwnedSession[]> {
    const sessions = this.#liveKeys(owner.digest, nowMs).map(
      (key) => [key, (this.#sessions.get(key) as Entry).session] as const,
    );
    const content = sessions.reduce((total, [, session]) => total + contentSize(session), 0);
    if (includeContent && content > LISTED_CONTENT_MAX_BYTES) throw listingTooLarge(content);
    return sessions.map(([key, session]) => {
      const { ttlSeconds, createdAtMs, expiresAtMs, version } = session;
      const listed = {
        handle: sessionHandle(key),
        ttlSeconds,
        createdAtMs,
        expiresAtMs,
        version,
        sizeBytes: contentSize(session),
      };
      return includeContent ? { ...listed, content: session } : listed;
    });
  }

  async revokeOwned(owner: OwnerRef, nowMs: number, scope?: CallScope): Promise<number> {
    return this.#once(`owner\n${owner.digest}`, nowMs, scope, () => {
      const keys = this.#liveKeys(owner.digest, nowMs);
      for (const key of keys) this.#remove(key);
      return keys.length;
    });
  }

  /** The keys of the owner's live sessions, oldest first (expired ones are removed on the way). */
  #liveKeys(owner: string, nowMs: number): string[] {
    const listed = [...(this.#owners.get(owner) ?? [])].sort(([, a], [, b]) => a - b);
    return listed.map(([key]) => key).filter((key) => this.#live(key, nowMs) !== null);
  }

  async get(key: string, nowMs: number, touch: boolean): Promise<Session | null> {
    const session = this.#live(key, nowMs);
    if (!session || !touch) return session;
    return this.#store(key, { ...session, expiresAtMs: this.#extend(session, 0, nowMs) });
  }

  async update(
    key: string,
    change: SessionChange,
    nowMs: number,
    scope?: CallScope,
  ): Promise<Session> {
    return this.#once(key, nowMs, scope, () => this.#update(key, change, nowMs));
  }

  #update(key: string, change: SessionChange, nowMs: number): Session {
    const session = this.#live(key, nowMs);
    if (!session) throw notFound();
    checkVersion(session, change.expectedVersion);
    const attributes = new Map(session.attributes);
    for (const name of change.removeAttributes) attributes.delete(name);
    for (const [name, value] of change.setAttributes) attributes.set(name, Buffer.from(value));
    if (attributes.size > this.#limits.maxAttributes) {
      throw tooLarge(
        'set_attributes',
        `the session would hold ${attributes.size} attributes; the limit is ${this.#limits.maxAttributes}`,
      );
    }
    const content = {
      fleetListRequest: copyOr(change.fleetListRequest, session.fleetListRequest),
      fleetListResponse: copyOr(change.fleetListResponse, session.fleetListResponse),
      attributes,
    };
    const size = contentSize(content);
    if (size > this.#limits.maxBytes) {
      throw tooLarge(
        'session',
        `the session would hold ${size} bytes; the limit is ${this.#limits.maxBytes}`,
      );
    }
    const ttlSeconds = change.ttlSeconds || session.ttlSeconds;
    const updated: Session = {
      ...content,
      ttlSeconds,
      createdAtMs: session.createdAtMs,
      expiresAtMs: this.#extend(session, change.ttlSeconds, nowMs),
      version: session.version + 1,
    };
    return this.#store(key, updated);
  }

  async touch(
    key: string,
    ttlSeconds: number,
    nowMs: number,
    scope?: CallScope,
  ): Promise<number | null> {
    return this.#once(key, nowMs, scope, () => {
      const session = this.#live(key, nowMs);
      if (!session) return null;
      const expiresAtMs = this.#extend(session, ttlSeconds, nowMs);
      this.#store(key, { ...session, ttlSeconds: ttlSeconds || session.ttlSeconds, expiresAtMs });
      return expiresAtMs;
    });
  }

  async consume(
    key: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<Session | null> {
    return this.#once(key, nowMs, scope, () => {
      const session = this.#live(key, nowMs);
      if (!session) return null;
      checkVersion(session, expectedVersion);
      this.#remove(key);
      return session;
    });
  }

  async delete(
    key: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<boolean> {
    return this.#once(key, nowMs, scope, () => {
      const session = this.#live(key, nowMs);
      if (!session) return false;
      checkVersion(session, expectedVersion);
      this.#remove(key);
      return true;
    });
  }

  async rotate(key: string, nextKey: () => string, nowMs: number, scope?: CallScope) {
    return this.#once(key, nowMs, scope, () => {
      const session = this.#live(key, nowMs);
      if (!session) return null;
      let sessionKey = nextKey();
      while (sessionKey === key || this.#sessions.has(sessionKey)) sessionKey = nextKey();
      // Stored under the new key first: if that is refused (store full), nothing changed.
      const owner = this.#sessions.get(key)?.owner;
      const place = owner === undefined ? undefined : this.#owners.get(owner)?.get(key);
      this.#store(sessionKey, session, owner ?? null, place);
      this.#remove(key);
      const { version, createdAtMs, expiresAtMs } = session;
      return { sessionKey, version, createdAtMs, expiresAtMs };
    });
  }

  async idempotencySecret(): Promise<Buffer> {
    return this.#secret;
  }

  /** Bytes counted against the bound, and sessions held (expired ones until the next sweep). */
  usage(): { bytes: number; sessions: number } {
    return { bytes: this.#bytes, sessions: this.#sessions.size };
  }

  /**
   * Runs a write once per idempotency claim (store.ts): the first call's
   * outcome is recorded, and a repeat within the ttl gets it back. Records
   * count against the memory bound; one that would not fit is still kept,
   * as the write it records has happened.
   */
  #once<T>(key: string, nowMs: number, scope: CallScope | undefined, write: () => T): T {
    const claim = scope?.idempotency;
    if (claim === undefined) return write();
    const name = `${key}\n${claim.id}`;
    const recorded = this.#records.get(name);
    if (recorded && recorded.expiresAtMs > nowMs) {
      if (recorded.fingerprint !== claim.fingerprint) throw idempotencyKeyReused();
      if ('error' in recorded.outcome) throw recorded.outcome.error;
      return recorded.outcome.value as T;
    }
    let outcome: Outcome;
    try {
      outcome = { value: write() };
    } catch (error) {
      if (!(error instanceof SessionError && RECORDED_ERRORS.has(error.code))) throw error;
      outcome = { error };
    }
    this.#forget(name);
    const bytes = recordBytes(name, outcome);
    this.#records.set(name, {
      fingerprint: claim.fingerprint,
      outcome,
      expiresAtMs: nowMs + this.#limits.idempotencyTtlMs,
      bytes,
    });
    this.#bytes += bytes;
    if ('error' in outcome) throw outcome.error;
    return outcome.value as T;
  }

  #forget(name: string): void {
    const record = this.#records.get(name);
    if (!record) return;
    this.#bytes -= record.bytes;
    this.#records.delete(name);
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#sessions.clear();
    this.#owners.clear();
    this.#records.clear();
    this.#bytes = 0;
  }

  #extend(session: Session, ttlSeconds: number, nowMs: number): number {
    return expiryAfterActivity(
      nowMs,
      ttlSeconds || session.ttlSeconds,
      session.createdAtMs,
      this.#limits.maxLifetimeMs,
    );
  }

  #live(key: string, nowMs: number): Session | null {
    const entry = this.#sessions.get(key);
    if (!entry) return null;
    if (entry.session.expiresAtMs <= nowMs) {
      this.#remove(key);
      return null;
    }
    return entry.session;
  }

  /**
   * Stores a session under `key`, with its owner: `owner` for a new or
   * replaced one (null for none), or, when left out, the owner it has. A new
   * or replaced one is the owner's newest, unless given its `place` (a
   * rotated one keeps its predecessor's).
   */
  #store(key: string, session: Session, owner?: string | null, place?: number): Session {
    const bytes = contentSize(session) + Buffer.byteLength(key) + ENTRY_OVERHEAD_BYTES;
    const previous = this.#sessions.get(key);
    const previousBytes = previous?.bytes ?? 0;
    if (this.#bytes - previousBytes + bytes > this.#maxStoreBytes) {
      throw new SessionError(
        ErrorCode.StoreFull,
        `session: the in-memory store is full (MEMORY_MAX_BYTES=${this.#maxStoreBytes}); use Redis for more`,
      );
    }
    this.#bytes += bytes - previousBytes;
    const kept = owner === undefined ? previous?.owner : (owner ?? undefined);
    if (previous?.owner !== undefined && previous.owner !== kept)
      this.#unindex(previous.owner, key);
    if (owner != null) this.#index(owner, key, place ?? this.#ownerOrder++);
    this.#sessions.set(key, { session, bytes, owner: kept });
    return session;
  }

  #remove(key: string): void {
    const entry = this.#sessions.get(key);
    if (!entry) return;
    this.#bytes -= entry.bytes;
    this.#sessions.delete(key);
    if (entry.owner !== undefined) this.#unindex(entry.owner, key);
  }

  #index(owner: string, key: string, place: number): void {
    const keys = this.#owners.get(owner);
    if (keys) keys.set(key, place);
    else this.#owners.set(owner, new Map([[key, place]]));
  }

  #unindex(owner: string, key: string): void {
    const keys = this.#owners.get(owner);
    keys?.delete(key);
    if (keys?.size === 0) this.#owners.delete(owner);
  }

  #sweep(nowMs: number): void {
    for (const [key, entry] of this.#sessions) {
      if (entry.session.expiresAtMs <= nowMs) this.#remove(key);
    }
    for (const [name, record] of this.#records) {
      if (record.expiresAtMs <= nowMs) this.#forget(name);
    }
  }
}

/** A record's share of the memory bound: the session it may hold, its name and the bookkeeping. */
function recordBytes(name: string, outcome: Outcome): number {
  const value = 'value' in outcome ? outcome.value : null;
  const session =
    value !== null && typeof value === 'object' && 'fleetListRequest' in value
      ? contentSize(value as Session)
      : 0;
  return session + Buffer.byteLength(name) + ENTRY_OVERHEAD_BYTES;
}

function checkVersion(session: Session, expectedVersion: number | undefined): void {
  if (expectedVersion !== undefined && expectedVersion !== session.version) {
    throw versionConflict(expectedVersion, session.version);
  }
}

function copyAttributes(attributes: ReadonlyMap<string, Buffer>): Map<string, Buffer> {
  const copy = new Map<string, Buffer>();
  for (const [name, value] of attributes) copy.set(name, Buffer.from(value));
  return copy;
}

function copyOr(replacement: Buffer | undefined, current: Buffer): Buffer {
  return replacement === undefined ? current : Buffer.from(replacement);
}
