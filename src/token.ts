import { randomBytes } from 'node:crypto';

const KEY_BYTES = 32;
const POOL_KEYS = 256;

/**
 * Generates session keys: 256 bits from the OS CSPRNG, base64url without
 * padding (43 characters). Keys are cut from a pooled buffer because one
 * randomBytes call per key costs about fifteen times as much; every pooled byte
 * is used once.
 */
export function createTokenGenerator(): () => string {
  let pool = Buffer.alloc(0);
  let offset = 0;
  return () => {
    if (offset + KEY_BYTES > pool.length) {
      pool = randomBytes(KEY_BYTES * POOL_KEYS);
      offset = 0;
    }
    const key = pool.toString('base64url', offset, offset + KEY_BYTES);
    pool.fill(0, offset, offset + KEY_BYTES);
    offset += KEY_BYTES;
    return key;
  };
}
