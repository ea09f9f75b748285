import { hash } from 'node:crypto';

/**
 * Every Redis key and hash field the store uses, in one place.
 *
 * A session is one hash under `<prefix>s:<sha256(session key), base64url>`:
 * a Redis dump or MONITOR shows no usable session key, and one key per
 * session keeps every operation within one Cluster slot.
 */
export function sessionKey(prefix: string, key: string): string {
  return `${prefix}s:${hash('sha256', key, 'base64url')}`;
}

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
