import { createHmac, hash } from 'node:crypto';
import type { OwnerRef } from './session.ts';

/**
 * The shapes of session keys and the digests made from them and from owners.
 *
 * A session with an owner lives in its owner's Redis Cluster slot, so that
 * one script changes the session and the owner's index together. Its key
 * carries the owner's tag: `<43 characters>.<tag>`, the shape of a generated
 * key plus 3 characters. Stores put the tag in the session's Redis key as a
 * hash tag. Only keys of exactly that shape carry a tag; any other key,
 * generated or chosen by a caller, is placed by its digest alone.
 */
const TAGGED_KEY = /^[A-Za-z0-9_-]{43}\.([A-Za-z0-9_-]{3})$/;
const TAG_LENGTH = 3;
const TAGGED_KEY_LENGTH = 43 + 1 + TAG_LENGTH;
/** 128 bits: plenty to tell apart the digests of 256-bit keys, and of owners. */
const DIGEST_BYTES = 16;

/** The owner tag a session key carries, if it has the tagged shape. */
export function tagOf(sessionKey: string): string | undefined {
  // Every call on a session asks, and most keys have no tag: the length says so first.
  return sessionKey.length === TAGGED_KEY_LENGTH ? TAGGED_KEY.exec(sessionKey)?.[1] : undefined;
}

/** A generated key for a session of this owner. */
export const withTag = (generatedKey: string, tag: string) => `${generatedKey}.${tag}`;

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
/** base64url characters of DIGEST_BYTES bytes: 21 of 6 bits and one of the last 2. */
const HANDLE_CHARS = Math.ceil((DIGEST_BYTES * 8) / 6);
/** By character code: the character with only its 2 high bits kept. */
const LAST_HANDLE_CHAR: string[] = [];
for (let value = 0; value < 64; value++) {
  LAST_HANDLE_CHAR[BASE64URL.charCodeAt(value)] = BASE64URL[value & 0b110000] as string;
}

/**
 * A session's handle: the 128-bit digest of its key, base64url. It names the
 * session in owner listings and in the Redis key, and cannot be turned back
 * into the key.
 */
export function sessionHandle(sessionKey: string): string {
  // Every call computes it. Node encodes a digest to base64url without a
  // Buffer at half the cost of one; the 22nd character then keeps only the
  // last 2 bits of the 16th byte, as encoding 16 bytes would.
  const digest = hash('sha256', sessionKey, 'base64url');
  return (
    digest.slice(0, HANDLE_CHARS - 1) +
    (LAST_HANDLE_CHAR[digest.charCodeAt(HANDLE_CHARS - 1)] as string)
  );
}

/**
 * An owner as the stores keep it: an HMAC of the caller's id under the
 * store's shared secret (so ids with few possible values, such as numeric
 * rider ids, cannot be recovered from a Redis dump by trying them all), and
 * the tag its sessions' keys carry, taken from the same HMAC.
 */
export function ownerRef(secret: Buffer, owner: string): OwnerRef {
  const mac = createHmac('sha256', secret).update(`owner\n${owner}`).digest();
  return {
    digest: mac.toString('base64url', 0, DIGEST_BYTES),
    tag: mac.toString('base64url', DIGEST_BYTES, DIGEST_BYTES + 3).slice(0, TAG_LENGTH),
  };
}
