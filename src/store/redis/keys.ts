import { hash } from 'node:crypto';
import type { OwnerRef } from '../../session.ts';
import { sessionHandle, tagOf } from '../../session-keys.ts';

/**
 * Every Redis key and hash field the store uses, in one place
 * (docs/redis-layout.md). A Redis dump or MONITOR shows no usable session
 * key and no owner id, and one key per session keeps every operation on it
 * within one Cluster slot.
 */

/**
 * The Redis key of a session in the compact layout:
 * `<prefix>S:<handle>`, or `<prefix>S:{<tag>}<handle>` for a key that
 * carries an owner's tag (session-keys.ts), which puts it in its owner's
 * slot. The handle, a 128-bit digest of the session key, is always the last
 * 22 characters (the scripts rely on it).
 */
export function compactKey(prefix: string, sessionKey: string): string {
  const tag = tagOf(sessionKey);
  return `${prefix}S:${tag === undefined ? '' : `{${tag}}`}${sessionHandle(sessionKey)}`;
}

/** The Redis key of a session in the legacy layout: `<prefix>s:<sha256(session key), base64url>`. */
export function legacyKey(prefix: string, sessionKey: string): string {
  return `${prefix}s:${hash('sha256', sessionKey, 'base64url')}`;
}

/** What the keys of an owner's sessions start with: the key is this plus the handle. */
export const sessionStem = (prefix: string, tag: string) => `${prefix}S:{${tag}}`;

/** What the index keys of owners with this tag start with: the key is this plus the owner digest. */
export const ownerStem = (prefix: string, tag: string) => `${prefix}o:{${tag}}`;

/** An owner's index: a sorted set of its sessions' handles, scored by creation time. */
export const indexKey = (prefix: string, owner: OwnerRef) =>
  ownerStem(prefix, owner.tag) + owner.digest;

/**
 * The Redis key of an idempotency record (src/idempotency.ts) of a call on
 * the key `target` (a session's, or an owner index's). Its hash tag is what
 * Cluster hashes of `target` (its own tag, or all of it), so both lie in one
 * slot and one script updates both. A prefix that carries a tag puts every
 * key in its slot anyway (config.ts refuses a prefix with a brace but no
 * tag). Only digests: neither the session key nor the idempotency key.
 */
export function recordKey(prefix: string, target: string, claimId: string): string {
  return `${prefix}i:{${hashedPart(target)}}:${claimId}`;
}

/**
 * The part of a key that Cluster hashes (cluster-spec "hash tags"): all of
 * it, or what lies between the first `{` and the next `}` when that is not
 * empty.
 */
function hashedPart(key: string): string {
  const open = key.indexOf('{');
  if (open < 0) return key;
  const close = key.indexOf('}', open + 1);
  return close > open + 1 ? key.slice(open + 1, close) : key;
}

/** The hash holding the secret that keys derived from idempotency keys are made with. */
export const secretKey = (prefix: string) => `${prefix}idempotency-secret`;

/** The fixed fields of a session's hash in the legacy layout: one that lacks any of them is torn. */
export const Field = {
  fleetListRequest: 'fleet_list_request',
  fleetListResponse: 'fleet_list_response',
  createdAt: 'created_at',
  expiresAt: 'expires_at',
  version: 'version',
  ttl: 'ttl',
  size: 'size',
} as const;

/** Attributes share the hash with the fields above; the prefix keeps them apart. */
export const ATTRIBUTE_PREFIX = 'attr:';

export const attributeField = (name: string) => ATTRIBUTE_PREFIX + name;

/**
 * The compact layout's fields (lua/compact.lua): `m` the metadata, `o` the
 * owner digest, `p<n>` the payloads (request then response) whole or in
 * pieces, `.<name>` the attributes.
 */
export const Compact = {
  meta: 'm',
  owner: 'o',
  payloads: 'p',
  attributePrefix: '.',
  /** Payload pieces: Redis's default hash-max-listpack-value. */
  piece: 64,
  /**
   * The most pieces payloads are cut in (1 KB): each piece costs Redis CPU
   * on every write and the service on every read, while what a listpack
   * saves over a hashtable is about the same per session, so pieces pay for
   * small sessions. Larger payloads go whole in one field, with the request
   * and response together, which also saves a field over storing them apart.
   */
  maxPieces: 16,
} as const;

/** CRC16-CCITT (XMODEM), the checksum Redis Cluster maps keys to slots with. */
const CRC16_TABLE = (() => {
  const table = new Uint16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    let crc = byte << 8;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1;
    table[byte] = crc & 0xffff;
  }
  return table;
})();

function crc16(bytes: Buffer): number {
  let crc = 0;
  for (let i = 0; i < bytes.length; i++)
    crc =
      ((crc << 8) & 0xffff) ^ (CRC16_TABLE[((crc >> 8) ^ (bytes[i] as number)) & 0xff] as number);
  return crc;
}

const CLUSTER_SLOTS = 16384;

/** The Redis Cluster hash slot of a key (cluster-spec "Keys distribution model"). */
export function keySlot(key: string): number {
  return crc16(Buffer.from(hashedPart(key))) % CLUSTER_SLOTS;
}

/** Candidates tried between yields to the event loop (about a millisecond of work). */
const SEARCH_BATCH = 512;
/** Past this many candidates (odds e^-61 at 16384 slots) the search gives up. */
const SEARCH_LIMIT = 1_000_000;

/**
 * A new session key whose Redis key lies in the same Cluster slot as the old
 * one's, so a script can move the session atomically (a script's keys must
 * share a slot). The Redis key is a SHA-256 of the session key, so there is
 * no shortcut: candidates are drawn until one lands in the slot, 16384 on
 * average; the search yields to the event loop between batches. Resolves to
 * the key and the number of candidates drawn.
 */
export async function sameSlotKey(
  redisKey: (sessionKey: string) => string,
  sessionKey: string,
  nextKey: () => string,
): Promise<{ key: string; tries: number }> {
  const slot = keySlot(redisKey(sessionKey));
  let tries = 0;
  while (tries < SEARCH_LIMIT) {
    for (let i = 0; i < SEARCH_BATCH; i++) {
      const candidate = nextKey();
      tries++;
      if (keySlot(redisKey(candidate)) === slot && candidate !== sessionKey)
        return { key: candidate, tries };
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`no key in slot ${slot} after ${tries} candidates`);
}
