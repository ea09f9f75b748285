import { createHash, createHmac, type Hash, hash } from 'node:crypto';
import { ErrorCode, invalidArgument, SessionError } from './errors.ts';

/**
 * Idempotency keys (the IETF httpapi `Idempotency-Key` draft, as gRPC
 * metadata `idempotency-key` too): a caller that sends one with a write may
 * repeat the write, and every repeat within IDEMPOTENCY_TTL gets the first
 * one's outcome instead of doing the work again. The store records the
 * outcome in the same atomic step as the write (store.ts).
 */
export interface IdempotencyClaim {
  /**
   * The record's name: SHA-256 of the caller's identity and the key, so one
   * caller cannot replay another's key and neither the key nor the identity
   * is stored. base64url.
   */
  readonly id: string;
  /** SHA-256 of the method and its request: a repeat must carry the same request. */
  readonly fingerprint: string;
}

/** Header and metadata name (lowercase, as HTTP/2 and gRPC carry it). */
export const IDEMPOTENCY_HEADER = 'idempotency-key';

/** 1-255 visible ASCII characters: a UUID, a request id, a booking id. */
const KEY = /^[\x21-\x7e]{1,255}$/;

/** The key a caller sent, or undefined; INVALID_ARGUMENT naming the header when malformed. */
export function idempotencyKey(value: string | readonly string[] | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    if (value.length > 1) throw invalidArgument(IDEMPOTENCY_HEADER, 'sent more than once');
    return idempotencyKey(value[0]);
  }
  if (!KEY.test(value)) {
    throw invalidArgument(
      IDEMPOTENCY_HEADER,
      `must be 1-255 visible ASCII characters (got ${value.length} characters)`,
    );
  }
  return value;
}

/**
 * The claim of one call: `caller` is who made it (the token's digest when
 * tokens are on, empty otherwise), `method` and `request` what it asked for.
 */
export function claimOf(
  caller: string,
  key: string,
  method: string,
  request: unknown,
): IdempotencyClaim {
  const fingerprint = createHash('sha256').update(method);
  digest(fingerprint, request);
  return {
    id: hash('sha256', `${caller}\n${key}`, 'base64url'),
    fingerprint: fingerprint.digest('base64url'),
  };
}

/**
 * The session keys a keyless SetSession or a RotateSessionKey under `claim`
 * generates: HMAC-SHA-256 of the claim with the store's secret, counting up.
 * A repeat on any server that shares the store derives the same keys, so it
 * finds the record beside the first call's session; without the secret
 * nobody can compute them. 256 bits, base64url, like generated keys.
 */
export function derivedKeys(secret: Buffer, claim: IdempotencyClaim): () => string {
  let counter = 0;
  return () => createHmac('sha256', secret).update(`${claim.id}\n${counter++}`).digest('base64url');
}

export const idempotencyKeyReused = () =>
  new SessionError(
    ErrorCode.IdempotencyKeyReused,
    `${IDEMPOTENCY_HEADER}: was used for a different request within IDEMPOTENCY_TTL; send a new key for a new request`,
  );

/**
 * Feeds a decoded request to `into` in a stable form: each value tagged with
 * its kind and length, map entries and object keys sorted, bytes as they are
 * (no copy of a payload is made).
 */
function digest(into: Hash, value: unknown): void {
  if (Buffer.isBuffer(value)) {
    into.update(`b${value.length}:`).update(value);
  } else if (value instanceof Map) {
    const names = [...value.keys()].sort();
    into.update(`m${names.length}:`);
    for (const name of names) {
      digest(into, name);
      digest(into, value.get(name));
    }
  } else if (Array.isArray(value)) {
    into.update(`a${value.length}:`);
    for (const item of value) digest(into, item);
  } else if (value !== null && typeof value === 'object') {
    const names = Object.keys(value).sort();
    into.update(`o${names.length}:`);
    for (const name of names) {
      digest(into, name);
      digest(into, (value as Record<string, unknown>)[name]);
    }
  } else {
    const text = String(value);
    into.update(`${typeof value}${Buffer.byteLength(text)}:${text}`);
  }
}
