import type { CallScope } from '../call-scope.ts';
import { tooLarge } from '../errors.ts';
import type { OwnedSession, OwnerRef, Session, SessionChange, SessionDraft } from '../session.ts';

/** What a write reports back to the caller of SetSession. */
export interface StoredVersion {
  readonly version: number;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
}

/**
 * The most content (payloads and attributes) one ListSessions with content
 * may return: gRPC clients refuse replies past 4 MiB by default, and one
 * owner's sessions may hold SESSION_MAX_PER_OWNER × SESSION_MAX_BYTES.
 */
export const LISTED_CONTENT_MAX_BYTES = 4 * 1024 * 1024 - 64 * 1024;

export const listingTooLarge = (bytes: number) =>
  tooLarge(
    'include_content',
    `the owner's sessions hold ${bytes} bytes of content, more than the ${LISTED_CONTENT_MAX_BYTES} one listing may carry; list without include_content`,
  );

/** SetSession's result: also how many of the owner's sessions made room for it. */
export interface PutResult extends StoredVersion {
  readonly evicted: number;
}

/** The rules a store enforces inside its atomic steps, where the stored state is known. */
export interface StoreLimits {
  readonly maxLifetimeMs: number;
  readonly maxBytes: number;
  readonly maxAttributes: number;
  /** How long an idempotency record answers repeats (IDEMPOTENCY_TTL). */
  readonly idempotencyTtlMs: number;
  /** Live sessions one owner may hold (SESSION_MAX_PER_OWNER). */
  readonly maxPerOwner: number;
  /** At that limit, a new session of the owner evicts its oldest, or is refused (SESSION_OWNER_LIMIT). */
  readonly atOwnerLimit: OwnerLimitPolicy;
}

export type OwnerLimitPolicy = 'evict-oldest' | 'refuse';

/**
 * The seam between the service and its storage. Every method is atomic, and
 * every write sets the expiry in the same step. Implementations throw
 * SessionError (errors.ts) and nothing else. `scope` is the call the work
 * serves (call-scope.ts); without one, the work has no deadline of its own.
 *
 * When `scope.idempotency` is present, a write (put, update, touch, consume,
 * delete, rotate) records its outcome (its result, or its NOT_FOUND,
 * VERSION_CONFLICT or TOO_LARGE) under the claim and the session's key, in
 * the same atomic step, for `idempotencyTtlMs`. A repeat of the claim on the
 * same key within that time changes nothing and gets the recorded outcome, as
 * of the first call's time; a repeat with another fingerprint throws
 * IDEMPOTENCY_KEY_REUSED.
 */
export interface SessionStore {
  /**
   * Creates or replaces the whole session; the version continues from the
   * replaced one. With `draft.owner`, the session joins that owner's index
   * (and leaves a previous owner's) in the same step; at the owner's limit
   * the oldest session is evicted, or TOO_LARGE on `owner` is thrown, as
   * `atOwnerLimit` says. The key must carry the owner's tag (session-keys.ts).
   */
  put(key: string, draft: SessionDraft, nowMs: number, scope?: CallScope): Promise<PutResult>;
  /** The session, or null when absent or expired; `touch` also extends it. */
  get(key: string, nowMs: number, touch: boolean, scope?: CallScope): Promise<Session | null>;
  /** Merges a change into an existing session; NOT_FOUND, VERSION_CONFLICT or TOO_LARGE otherwise. */
  update(key: string, change: SessionChange, nowMs: number, scope?: CallScope): Promise<Session>;
  /** Extends an existing session (0 keeps its ttl); the new expiry, or null when absent. */
  touch(key: string, ttlSeconds: number, nowMs: number, scope?: CallScope): Promise<number | null>;
  /**
   * Reads and deletes in one step; null when absent. With `expectedVersion`,
   * VERSION_CONFLICT (and nothing changes) when the stored version differs.
   */
  consume(
    key: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<Session | null>;
  /**
   * True when a session was deleted. With `expectedVersion`, VERSION_CONFLICT
   * (and nothing changes) when a stored session has another version.
   */
  delete(key: string, nowMs: number, expectedVersion?: number, scope?: CallScope): Promise<boolean>;
  /**
   * Moves a session to a new key, atomically: afterwards the old key is
   * absent and the new one holds the same session with the same expiry. The
   * store takes the new key from `nextKey` (a fresh random key each call),
   * possibly after several tries, to suit its layout. Null when absent.
   */
  rotate(
    key: string,
    nextKey: () => string,
    nowMs: number,
    scope?: CallScope,
  ): Promise<(StoredVersion & { readonly sessionKey: string }) | null>;
  /**
   * The owner's live sessions, oldest first, with their content when
   * `includeContent`. Drops index entries of sessions that are gone.
   */
  listOwned(
    owner: OwnerRef,
    nowMs: number,
    includeContent: boolean,
    scope?: CallScope,
  ): Promise<OwnedSession[]>;
  /** Deletes every session of the owner and its index in one step; how many sessions were live. */
  revokeOwned(owner: OwnerRef, nowMs: number, scope?: CallScope): Promise<number>;
  /**
   * A random secret made on first use and shared by every server on this
   * store, for the keys derived from idempotency keys (idempotency.ts) and
   * the digests of owners (session-keys.ts).
   */
  idempotencySecret(): Promise<Buffer>;
  /** Resolves when the store answers; throws STORE_UNAVAILABLE otherwise. */
  ping(): Promise<void>;
  close(): Promise<void>;
}
