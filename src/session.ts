/** What a caller stores: payloads are opaque bytes, the encoding is the caller's. */
export interface SessionContent {
  readonly fleetListRequest: Buffer;
  readonly fleetListResponse: Buffer;
  readonly attributes: ReadonlyMap<string, Buffer>;
}

/** A stored session with the metadata the service keeps beside the content. */
export interface Session extends SessionContent {
  readonly ttlSeconds: number;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly version: number;
}

/**
 * An owner (a rider or user id) as stores keep it: a keyed digest, never the
 * id (session-keys.ts), and the tag that its sessions' keys carry.
 */
export interface OwnerRef {
  readonly digest: string;
  readonly tag: string;
}

/** A replacement for the whole session (SetSession). */
export interface SessionDraft extends SessionContent {
  readonly ttlSeconds: number;
  /** Indexes the session under this owner (ListSessions, RevokeSessions, SESSION_MAX_PER_OWNER). */
  readonly owner?: OwnerRef;
  /** The key was generated for this call: no session can be under it yet, in any layout. */
  readonly newKey?: boolean;
}

/** A session as an owner listing shows it: its handle and metadata, its content on request. */
export interface OwnedSession {
  /** The digest of its key (session-keys.ts sessionHandle); not usable as a key. */
  readonly handle: string;
  readonly ttlSeconds: number;
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly version: number;
  /** Its content's size, as SESSION_MAX_BYTES counts it. */
  readonly sizeBytes: number;
  readonly content?: SessionContent;
}

/** A merge into an existing session (UpdateSession); absent parts are left as they are. */
export interface SessionChange {
  readonly fleetListRequest?: Buffer;
  readonly fleetListResponse?: Buffer;
  readonly setAttributes: ReadonlyMap<string, Buffer>;
  readonly removeAttributes: readonly string[];
  readonly expectedVersion?: number;
  /** 0 keeps the session's ttl. */
  readonly ttlSeconds: number;
}

/**
 * Activity extends a session to now + its idle ttl, but never past its
 * absolute lifetime: expires_at = min(now + ttl, created_at + max_lifetime).
 */
export function expiryAfterActivity(
  nowMs: number,
  ttlSeconds: number,
  createdAtMs: number,
  maxLifetimeMs: number,
): number {
  return Math.min(nowMs + ttlSeconds * 1000, createdAtMs + maxLifetimeMs);
}

/** The size that SESSION_MAX_BYTES limits: payloads plus attribute names and values. */
export function contentSize(content: SessionContent): number {
  let size = content.fleetListRequest.length + content.fleetListResponse.length;
  for (const [name, value] of content.attributes) size += Buffer.byteLength(name) + value.length;
  return size;
}
