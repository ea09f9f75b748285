import type { OwnerRef } from '../../src/session.ts';
import { ownerRef } from '../../src/session-keys.ts';

/**
 * Three owners under the store's secret: the first two with the same key tag
 * (two riders whose 18-bit tags collide, found by trying ids: a few hundred
 * on average), so that one key can pass from one to the other; the third
 * with another tag.
 */
export function ownersSharingATag(secret: Buffer, label: string): [OwnerRef, OwnerRef, OwnerRef] {
  const byTag = new Map<string, OwnerRef>();
  for (let i = 0; ; i++) {
    const ref = ownerRef(secret, `${label}-${i}`);
    const twin = byTag.get(ref.tag);
    if (twin) {
      for (let j = 0; ; j++) {
        const other = ownerRef(secret, `${label}-other-${j}`);
        if (other.tag !== ref.tag) return [twin, ref, other];
      }
    }
    byTag.set(ref.tag, ref);
  }
}
