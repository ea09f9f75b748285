import { ErrorCode } from '../../src/errors.ts';
import type { OwnedSession, Session, SessionChange, SessionContent } from '../../src/session.ts';
import { contentSize, expiryAfterActivity } from '../../src/session.ts';
import { sessionHandle } from '../../src/session-keys.ts';
import type { PutResult, StoreLimits } from '../../src/store/store.ts';

/**
 * The plain model of sessions with owners that the owner property test
 * (owner-property.ts) holds the stores to: a map from key to session, with no
 * index at all. An owner's sessions are found by looking at every session,
 * and "oldest" means the smallest `createdAtMs`. Owners are numbers here;
 * the test maps them to OwnerRefs.
 */

/** A call's error as the test compares it: its code and the field its message names. */
export interface ModelError {
  readonly error: ErrorCode;
  readonly field: string;
}

interface Held extends Session {
  readonly owner: number | undefined;
}

export class OwnerModel {
  readonly #sessions = new Map<string, Held>();
  readonly #limits: StoreLimits;

  constructor(limits: StoreLimits) {
    this.#limits = limits;
  }

  put(
    key: string,
    content: SessionContent,
    ttlSeconds: number,
    owner: number | undefined,
    nowMs: number,
  ): PutResult | ModelError {
    const previous = this.#live(key, nowMs);
    let evicted = 0;
    if (owner !== undefined && previous?.owner !== owner) {
      const held = this.#ownedKeys(owner, nowMs);
      if (held.length >= this.#limits.maxPerOwner) {
        if (this.#limits.atOwnerLimit === 'refuse') {
          return { error: ErrorCode.TooLarge, field: 'owner' };
        }
        const excess = held.slice(0, held.length - this.#limits.maxPerOwner + 1);
        for (const oldest of excess) this.#sessions.delete(oldest);
        evicted = excess.length;
      }
    }
    const session: Held = {
      ...copyContent(content),
      ttlSeconds,
      createdAtMs: nowMs,
      expiresAtMs: expiryAfterActivity(nowMs, ttlSeconds, nowMs, this.#limits.maxLifetimeMs),
      version: (previous?.version ?? 0) + 1,
      owner,
    };
    this.#sessions.set(key, session);
    const { version, createdAtMs, expiresAtMs } = session;
    return { version, createdAtMs, expiresAtMs, evicted };
  }

  get(key: string, touch: boolean, nowMs: number): Session | null {
    const session = this.#live(key, nowMs);
    if (!session) return null;
    if (!touch) return view(session);
    return view(this.#replace(key, { expiresAtMs: this.#extend(session, 0, nowMs) }));
  }

  update(key: string, change: SessionChange, nowMs: number): Session | ModelError {
    const session = this.#live(key, nowMs);
    if (!session) return { error: ErrorCode.NotFound, field: 'session_key' };
    const conflict = checkVersion(session, change.expectedVersion);
    if (conflict) return conflict;
    const attributes = new Map(session.attributes);
    for (const name of change.removeAttributes) attributes.delete(name);
    for (const [name, value] of change.setAttributes) attributes.set(name, value);
    const updated = this.#replace(key, {
      fleetListRequest: change.fleetListRequest ?? session.fleetListRequest,
      fleetListResponse: change.fleetListResponse ?? session.fleetListResponse,
      attributes,
      ttlSeconds: change.ttlSeconds || session.ttlSeconds,
      expiresAtMs: this.#extend(session, change.ttlSeconds, nowMs),
      version: session.version + 1,
    });
    return view(updated);
  }

  touch(key: string, ttlSeconds: number, nowMs: number): number | null {
    const session = this.#live(key, nowMs);
    if (!session) return null;
    const expiresAtMs = this.#extend(session, ttlSeconds, nowMs);
    this.#replace(key, { ttlSeconds: ttlSeconds || session.ttlSeconds, expiresAtMs });
    return expiresAtMs;
  }

  consume(key: string, expectedVersion: number | undefined, nowMs: number) {
    const session = this.#live(key, nowMs);
    if (!session) return null;
    const conflict = checkVersion(session, expectedVersion);
    if (conflict) return conflict;
    this.#sessions.delete(key);
    return view(session);
  }

  delete(key: string, expectedVersion: number | undefined, nowMs: number): boolean | ModelError {
    const session = this.#live(key, nowMs);
    if (!session) return false;
    const conflict = checkVersion(session, expectedVersion);
    if (conflict) return conflict;
    this.#sessions.delete(key);
    return true;
  }

  /** Moves a live session to `nextKey` (the key the store chose); its old key's session, or null. */
  rotate(key: string, nextKey: string, nowMs: number): Session | null {
    const session = this.#live(key, nowMs);
    if (!session) return null;
    this.#sessions.delete(key);
    this.#sessions.set(nextKey, session);
    return view(session);
  }

  revoke(owner: number, nowMs: number): number {
    const keys = this.#ownedKeys(owner, nowMs);
    for (const key of keys) this.#sessions.delete(key);
    return keys.length;
  }

  /** The owner's live sessions as listOwned shows them, oldest first. */
  list(owner: number, includeContent: boolean, nowMs: number): OwnedSession[] {
    return this.#ownedKeys(owner, nowMs).map((key) => {
      const session = this.#sessions.get(key) as Held;
      const listed: OwnedSession = {
        handle: sessionHandle(key),
        ttlSeconds: session.ttlSeconds,
        createdAtMs: session.createdAtMs,
        expiresAtMs: session.expiresAtMs,
        version: session.version,
        sizeBytes: contentSize(session),
      };
      return includeContent ? { ...listed, content: copyContent(session) } : listed;
    });
  }

  /** When the session under `key` expires (it may have already), if there is one. */
  expiryOf(key: string): number | undefined {
    return this.#sessions.get(key)?.expiresAtMs;
  }

  /** Drops the sessions whose expiry has come by `nowMs`; their keys. */
  expire(nowMs: number): string[] {
    return [...this.#sessions.keys()].filter((key) => this.#live(key, nowMs) === undefined);
  }

  /** The keys of the live sessions. */
  liveKeys(nowMs: number): string[] {
    return [...this.#sessions.keys()].filter((key) => this.#live(key, nowMs) !== undefined);
  }

  #ownedKeys(owner: number, nowMs: number): string[] {
    return [...this.#sessions.keys()]
      .filter((key) => this.#live(key, nowMs)?.owner === owner)
      .sort(
        (a, b) =>
          (this.#sessions.get(a) as Held).createdAtMs - (this.#sessions.get(b) as Held).createdAtMs,
      );
  }

  #live(key: string, nowMs: number): Held | undefined {
    const session = this.#sessions.get(key);
    if (session && session.expiresAtMs <= nowMs) {
      this.#sessions.delete(key);
      return undefined;
    }
    return session;
  }

  #replace(key: string, changes: Partial<Held>): Held {
    const replaced = { ...(this.#sessions.get(key) as Held), ...changes };
    this.#sessions.set(key, replaced);
    return replaced;
  }

  #extend(session: Session, ttlSeconds: number, nowMs: number): number {
    return expiryAfterActivity(
      nowMs,
      ttlSeconds || session.ttlSeconds,
      session.createdAtMs,
      this.#limits.maxLifetimeMs,
    );
  }
}

/** A session's content alone, as listOwned's `content` holds it. */
export function copyContent(content: SessionContent): SessionContent {
  return {
    fleetListRequest: content.fleetListRequest,
    fleetListResponse: content.fleetListResponse,
    attributes: new Map(content.attributes),
  };
}

/** A session as the stores return it: the content and the metadata, nothing of the model's. */
function view(session: Held): Session {
  const { owner: _, ...rest } = session;
  return { ...rest, attributes: new Map(session.attributes) };
}

function checkVersion(session: Session, expected: number | undefined): ModelError | undefined {
  if (expected === undefined || expected === session.version) return undefined;
  return { error: ErrorCode.VersionConflict, field: 'expected_version' };
}
