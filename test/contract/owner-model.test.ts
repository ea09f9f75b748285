import { describe, it } from 'node:test';
import { MemoryStore } from '../../src/store/memory-store.ts';
import type { StoreLimits } from '../../src/store/store.ts';
import { assertOwnerIndexHolds } from '../support/owner-property.ts';
import { LIMITS } from '../support/store-contract.ts';

const limits = (atOwnerLimit: StoreLimits['atOwnerLimit']): StoreLimits => ({
  ...LIMITS,
  maxPerOwner: 2,
  atOwnerLimit,
});

describe('owner index against the model, on random operation sequences', () => {
  for (const policy of ['evict-oldest', 'refuse'] as const) {
    it(`memory store, ${policy}`, async () => {
      const store = new MemoryStore(limits(policy), 64 * 1024 * 1024);
      try {
        await assertOwnerIndexHolds(store, limits(policy), { numRuns: 300 });
      } finally {
        await store.close();
      }
    });
  }
});
