// The public request and response shapes: camelCase mirrors of the proto
// messages, with payloads typed through the client's codecs.

/** Per-call options, always the last argument. */
export interface CallOptions {
  /** Overrides the client's deadlineMs; covers every retry of this call. */
  deadlineMs?: number;
  /** Aborting cancels the call in flight and any pending retry (code CANCELLED). */
  signal?: AbortSignal;
  /** Headers for this call only, after the client's `metadata` (e.g. x-request-id). */
  metadata?: Readonly<Record<string, string>>;
  /**
   * The idempotency key of a write (set, update, touch, consume, delete,
   * rotate, revoke): every attempt carries it, and the server answers a
   * repeat within its IDEMPOTENCY_TTL with the first outcome. Pass your own
   * to repeat a step safely across restarts of your process (a booking
   * request id); by default the client makes one per call. 1-255 visible
   * ASCII characters.
   */
  idempotencyKey?: string;
}

export interface SetSessionInput<Req, Res, Attr> {
  /**
   * The key to create or replace. Omit it (or pass '') to have the server
   * generate one (retried safely under the call's idempotency key).
   */
  sessionKey?: string;
  fleetListRequest?: Req;
  fleetListResponse?: Res;
  attributes?: Readonly<Record<string, Attr>>;
  /** Idle time-to-live; omitted or 0 means the server default. */
  ttlSeconds?: number;
  /**
   * Indexes the session under this owner (a rider or user id, 1-256
   * characters, no control characters) for listSessions, revokeSessions and
   * the server's SESSION_MAX_PER_OWNER. Never returned: the server keeps only
   * a keyed digest. With an owner, omit `sessionKey` (the generated key
   * carries the owner's tag) or pass a key the server generated for the same
   * owner; anything else is INVALID_ARGUMENT.
   */
  owner?: string;
}

export interface SetSessionResult {
  sessionKey: string;
  expiresAtUnixMs: number;
  version: number;
}

export interface GetSessionInput {
  sessionKey: string;
  /** Also extend the idle TTL in the same round trip. */
  touch?: boolean;
}

/**
 * A stored session. The wire has no presence for the fleet-list payloads: an
 * empty payload is left out here, and the codec is never asked to decode it.
 */
export interface Session<Req, Res, Attr> {
  sessionKey: string;
  fleetListRequest?: Req;
  fleetListResponse?: Res;
  attributes: Record<string, Attr>;
  ttlSeconds: number;
  expiresAtUnixMs: number;
  version: number;
  createdAtUnixMs: number;
}

/** Only the properties present are sent: an omitted payload keeps its stored value. */
export interface UpdateSessionInput<Req, Res, Attr> {
  sessionKey: string;
  fleetListRequest?: Req;
  fleetListResponse?: Res;
  setAttributes?: Readonly<Record<string, Attr>>;
  removeAttributes?: readonly string[];
  /** Apply only if the stored version still equals this (else CONFLICT). */
  expectedVersion?: number;
  /** When non-zero, becomes the session's idle ttl. */
  ttlSeconds?: number;
}

export interface TouchSessionInput {
  sessionKey: string;
  /** When non-zero, becomes the session's idle ttl. */
  ttlSeconds?: number;
}

export interface TouchSessionResult {
  expiresAtUnixMs: number;
}

export interface SessionKeyInput {
  sessionKey: string;
}

/** ConsumeSession and DeleteSession. */
export interface ConditionalKeyInput {
  sessionKey: string;
  /**
   * Consume or delete only if the stored version still equals this (else
   * CONFLICT, and the session stays): validate at version N, then consume
   * exactly what was validated.
   */
  expectedVersion?: number;
}

export interface DeleteSessionResult {
  /** False when there was no session to delete. */
  deleted: boolean;
}

export interface RotateSessionKeyResult {
  /** The session's new key; the old key no longer exists. */
  sessionKey: string;
  /** Unchanged by rotation. */
  expiresAtUnixMs: number;
  /** Unchanged by rotation. */
  version: number;
}

export interface ListSessionsInput {
  /** Also return each session's payloads and attributes. */
  includeContent?: boolean;
}

/**
 * A session as listSessions shows it. The payloads and attributes are there
 * only with `includeContent` (an empty payload is left out, as in Session).
 */
export interface OwnedSession<Req, Res, Attr> {
  /**
   * A digest of the session key: tells sessions apart, changes when the key
   * is rotated, and can be neither turned back into the key nor used as one.
   */
  handle: string;
  createdAtUnixMs: number;
  expiresAtUnixMs: number;
  version: number;
  ttlSeconds: number;
  /** Payloads plus attribute names and values, as the server's SESSION_MAX_BYTES counts them. */
  sizeBytes: number;
  fleetListRequest?: Req;
  fleetListResponse?: Res;
  attributes?: Record<string, Attr>;
}

export interface RevokeSessionsResult {
  /** How many live sessions were deleted. */
  revoked: number;
}
