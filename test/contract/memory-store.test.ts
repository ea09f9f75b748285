import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { draft, LIMITS, storeContract, uniqueKey } from '../support/store-contract.ts';

const store = new MemoryStore(LIMITS, 64 * 1024 * 1024);
const refusing = new MemoryStore({ ...LIMITS, atOwnerLimit: 'refuse' }, 64 * 1024 * 1024);
after(() => Promise.all([store.close(), refusing.close()]));

storeContract('memory store', () => ({ store, refusing, now: Date.now }));

describe('memory store bound', () => {
  it('refuses a write past its memory bound instead of evicting acknowledged sessions', async () => {
    const small = new MemoryStore(LIMITS, 16 * 1024);
    try {
      const now = Date.now();
      const keys: string[] = [];
      let refused: unknown;
      for (let i = 0; i < 100 && refused === undefined; i++) {
        const key = uniqueKey();
        try {
          await small.put(key, draft({ fleetListRequest: Buffer.alloc(1024) }), now);
          keys.push(key);
        } catch (error) {
          refused = error;
        }
      }
      assert.ok(refused instanceof SessionError);
      assert.equal(refused.code, ErrorCode.StoreFull);
      assert.ok(keys.length > 5);
      for (const key of keys)
        assert.ok(await small.get(key, now, false), 'no acknowledged session lost');
      await small.delete(keys[0] ?? '', now);
      await small.put(uniqueKey(), draft({ fleetListRequest: Buffer.alloc(1024) }), now);
    } finally {
      await small.close();
    }
  });
});
