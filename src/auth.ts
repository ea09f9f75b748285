import { hash, timingSafeEqual } from 'node:crypto';
import { ErrorCode, SessionError } from './errors.ts';

/**
 * Per-call bearer tokens and what each may do. One check, called by both gRPC
 * transports and the HTTP/JSON API; health, reflection and the probes never
 * call it.
 *
 * Permissions are ordered: `admin` includes `write`, which includes `read`.
 *   read   GetSession without touch: looks, changes nothing
 *   write  anything that creates, changes, extends, consumes, deletes or
 *          re-keys a session whose key the caller holds (GetSession with
 *          touch extends the expiry, so it is a write)
 *   admin  the calls on all sessions of an owner (ListSessions,
 *          RevokeSessions): they reach sessions without their keys, so a
 *          flow that holds keys does not get them by default
 */
export const PERMISSIONS = ['read', 'write', 'admin'] as const;
export type Permission = (typeof PERMISSIONS)[number];

const RANK: Record<Permission, number> = { read: 1, write: 2, admin: 3 };

/** The session RPCs and the permission each needs (GetSession: without touch). */
export const METHOD_PERMISSION = {
  GetSession: 'read',
  SetSession: 'write',
  UpdateSession: 'write',
  TouchSession: 'write',
  ConsumeSession: 'write',
  DeleteSession: 'write',
  RotateSessionKey: 'write',
  ListSessions: 'admin',
  RevokeSessions: 'admin',
} as const satisfies Record<string, Permission>;

export type SessionMethod = keyof typeof METHOD_PERMISSION;

/** What a call needs: GetSession with touch extends the session, so it needs `write`. */
export function requiredPermission(method: SessionMethod, touch = false): Permission {
  return method === 'GetSession' && touch ? 'write' : METHOD_PERMISSION[method];
}

/** A configured token, kept only as its SHA-256 digest. */
export interface TokenGrant {
  readonly digest: Buffer;
  readonly permission: Permission;
}

export const digestToken = (token: string): Buffer => hash('sha256', token, 'buffer');

/** The `authorization` header (HTTP) or metadata value (gRPC) as the transports hand it over. */
export type AuthorizationValue = string | readonly string[] | undefined;

const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*) *$/i;

const unauthenticated = (problem: string) =>
  new SessionError(ErrorCode.Unauthenticated, `authorization: ${problem}`);

/**
 * Checks calls against the configured tokens. Without tokens every call is
 * allowed (loopback development). With tokens, the presented token is hashed
 * and compared with every configured digest by timingSafeEqual, with no early
 * exit, so the time taken tells nothing about which bytes matched. Tokens are
 * never logged and never put in an error message.
 */
export class Authenticator {
  readonly #grants: readonly TokenGrant[];

  constructor(grants: readonly TokenGrant[] | undefined) {
    this.#grants = grants ?? [];
  }

  get enabled(): boolean {
    return this.#grants.length > 0;
  }

  /** The permission the header's token grants; throws UNAUTHENTICATED. */
  authenticate(header: AuthorizationValue): Permission {
    const values = typeof header === 'string' ? [header] : (header ?? []);
    if (values.length === 0)
      throw unauthenticated('missing; send the header "authorization: Bearer <token>"');
    if (values.length > 1) throw unauthenticated('sent more than once; send one Bearer token');
    const match = BEARER.exec(values[0] as string);
    if (!match) throw unauthenticated('expected "Bearer <token>"');
    const digest = digestToken(match[1] as string);
    let granted = 0;
    for (const grant of this.#grants) {
      const rank = RANK[grant.permission];
      if (timingSafeEqual(digest, grant.digest) && rank > granted) granted = rank;
    }
    const permission = PERMISSIONS.find((p) => RANK[p] === granted);
    if (!permission) throw unauthenticated('unknown token');
    return permission;
  }

  /** Throws PERMISSION_DENIED unless `granted` covers the call. */
  authorize(granted: Permission, method: SessionMethod, touch = false): void {
    const needed = requiredPermission(method, touch);
    if (RANK[granted] < RANK[needed]) {
      const what = method === 'GetSession' && touch ? 'GetSession with touch' : method;
      throw new SessionError(
        ErrorCode.PermissionDenied,
        `authorization: the token grants "${granted}"; ${what} needs "${needed}"`,
      );
    }
  }

  /**
   * Who made a call that `check` admitted, for scoping its idempotency key:
   * the digest of its token (hex), or empty when no tokens are configured.
   */
  caller(header: AuthorizationValue): string {
    if (!this.enabled) return '';
    const value = typeof header === 'string' ? header : (header?.[0] ?? '');
    return digestToken(BEARER.exec(value)?.[1] ?? '').toString('hex');
  }

  /** Authenticates and authorizes one call; a no-op when no tokens are configured. */
  check(header: AuthorizationValue, method: SessionMethod, touch = false): void {
    if (!this.enabled) return;
    this.authorize(this.authenticate(header), method, touch);
  }
}
