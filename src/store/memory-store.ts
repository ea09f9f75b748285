import { ErrorCode, notFound, SessionError, tooLarge, versionConflict } from '../errors.ts';
import type { Session, SessionChange, SessionDraft } from '../session.ts';
import { contentSize, expiryAfterActivity } from '../session.ts';
import type { SessionStore, StoredVersion, StoreLimits } from './store.ts';

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
}

/**
 * The embedded store used when no Redis is configured: the reference semantics
 * for every other store, in one process. Expired sessions vanish on access and
 * are swept once a second; memory is bounded by `maxStoreBytes`, and a write
 * past the bound is refused rather than evicting a session it acknowledged.
 */
export class MemoryStore implements SessionStore {
  readonly #sessions = new Map<string, Entry>();
  readonly #limits: StoreLimits;
  readonly #maxStoreBytes: number;
  readonly #sweeper: NodeJS.Timeout;
  #bytes = 0;

  constructor(limits: StoreLimits, maxStoreBytes: number, clock: () => number = Date.now) {
    this.#limits = limits;
    this.#maxStoreBytes = maxStoreBytes;
    this.#sweeper = setInterval(() => this.#sweep(clock()), SWEEP_INTERVAL_MS).unref();
  }

  async put(key: string, draft: SessionDraft, nowMs: number): Promise<StoredVersion> {
    const previous = this.#live(key, nowMs);
    const session: Session = {
      fleetListRequest: Buffer.from(draft.fleetListRequest),
      fleetListResponse: Buffer.from(draft.fleetListResponse),
      attributes: copyAttributes(draft.attributes),
      ttlSeconds: draft.ttlSeconds,
      createdAtMs: nowMs,
      expiresAtMs: expiryAfterActivity(nowMs, draft.ttlSeconds, nowMs, this.#limits.maxLifetimeMs),
      version: (previous?.version ?? 0) + 1,
    };
    this.#store(key, session);
    const { version, createdAtMs, expiresAtMs } = session;
    return { version, createdAtMs, expiresAtMs };
  }

  async get(key: string, nowMs: number, touch: boolean): Promise<Session | null> {
    const session = this.#live(key, nowMs);
    if (!session || !touch) return session;
    return this.#store(key, { ...session, expiresAtMs: this.#extend(session, 0, nowMs) });
  }

  async update(key: string, change: SessionChange, nowMs: number): Promise<Session> {
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

  async touch(key: string, ttlSeconds: number, nowMs: number): Promise<number | null> {
    const session = this.#live(key, nowMs);
    if (!session) return null;
    const expiresAtMs = this.#extend(session, ttlSeconds, nowMs);
    this.#store(key, { ...session, ttlSeconds: ttlSeconds || session.ttlSeconds, expiresAtMs });
    return expiresAtMs;
  }

  async consume(key: string, nowMs: number, expectedVersion?: number): Promise<Session | null> {
    const session = this.#live(key, nowMs);
    if (!session) return null;
    checkVersion(session, expectedVersion);
    this.#remove(key);
    return session;
  }

  async delete(key: string, nowMs: number, expectedVersion?: number): Promise<boolean> {
    const session = this.#live(key, nowMs);
    if (!session) return false;
    checkVersion(session, expectedVersion);
    this.#remove(key);
    return true;
  }

  async rotate(key: string, nextKey: () => string, nowMs: number) {
    const session = this.#live(key, nowMs);
    if (!session) return null;
    let sessionKey = nextKey();
    while (sessionKey === key || this.#sessions.has(sessionKey)) sessionKey = nextKey();
    // Stored under the new key first: if that is refused (store full), nothing changed.
    this.#store(sessionKey, session);
    this.#remove(key);
    const { version, createdAtMs, expiresAtMs } = session;
    return { sessionKey, version, createdAtMs, expiresAtMs };
  }

  /** Bytes counted against the bound, and sessions held (expired ones until the next sweep). */
  usage(): { bytes: number; sessions: number } {
    return { bytes: this.#bytes, sessions: this.#sessions.size };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#sessions.clear();
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

  #store(key: string, session: Session): Session {
    const bytes = contentSize(session) + Buffer.byteLength(key) + ENTRY_OVERHEAD_BYTES;
    const previousBytes = this.#sessions.get(key)?.bytes ?? 0;
    if (this.#bytes - previousBytes + bytes > this.#maxStoreBytes) {
      throw new SessionError(
        ErrorCode.StoreFull,
        `session: the in-memory store is full (MEMORY_MAX_BYTES=${this.#maxStoreBytes}); use Redis for more`,
      );
    }
    this.#bytes += bytes - previousBytes;
    this.#sessions.set(key, { session, bytes });
    return session;
  }

  #remove(key: string): void {
    const entry = this.#sessions.get(key);
    if (!entry) return;
    this.#bytes -= entry.bytes;
    this.#sessions.delete(key);
  }

  #sweep(nowMs: number): void {
    for (const [key, entry] of this.#sessions) {
      if (entry.session.expiresAtMs <= nowMs) this.#remove(key);
    }
  }
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
