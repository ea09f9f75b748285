import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SessionError } from '../../src/errors.ts';
import type { SessionChange, SessionDraft } from '../../src/session.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import type { SessionStore } from '../../src/store/store.ts';
import { LIMITS } from './store-contract.ts';

/**
 * Differential test: random sequences of operations applied to the Redis store
 * and to the in-memory reference must give the same results, step by step.
 * Time is synthetic and short, so nothing expires during a sequence (expiry
 * has its own tests in the contract suite).
 */

const bytes = fc.uint8Array({ maxLength: 1200 }).map((a) => Buffer.from(a));
const names = fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'ключ', '*?[x]');
const attributes = fc
  .uniqueArray(fc.tuple(names, bytes), { maxLength: 4, selector: ([name]) => name })
  .map((entries) => new Map(entries));
const slot = fc.integer({ min: 0, max: 3 });
const ttl = fc.integer({ min: 10, max: 120 });

type Op =
  | { kind: 'put'; slot: number; draft: SessionDraft }
  | { kind: 'get'; slot: number; touch: boolean }
  | { kind: 'update'; slot: number; change: SessionChange }
  | { kind: 'touch'; slot: number; ttl: number }
  | { kind: 'consume'; slot: number }
  | { kind: 'delete'; slot: number };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('put' as const),
    slot,
    draft: fc.record({
      fleetListRequest: bytes,
      fleetListResponse: fc.constant(Buffer.alloc(0)),
      attributes,
      ttlSeconds: ttl,
    }),
  }),
  fc.record({ kind: fc.constant('get' as const), slot, touch: fc.boolean() }),
  fc.record({
    kind: fc.constant('update' as const),
    slot,
    change: fc
      .record(
        {
          fleetListRequest: bytes,
          fleetListResponse: bytes,
          setAttributes: attributes,
          removeAttributes: fc.uniqueArray(names, { maxLength: 3 }),
          expectedVersion: fc.integer({ min: 0, max: 4 }),
          ttlSeconds: fc.oneof(fc.constant(0), ttl),
        },
        { requiredKeys: ['setAttributes', 'removeAttributes', 'ttlSeconds'] },
      )
      .map((change) => ({
        ...change,
        removeAttributes: change.removeAttributes.filter((n) => !change.setAttributes.has(n)),
      })),
  }),
  fc.record({ kind: fc.constant('touch' as const), slot, ttl: fc.oneof(fc.constant(0), ttl) }),
  fc.record({ kind: fc.constant('consume' as const), slot }),
  fc.record({ kind: fc.constant('delete' as const), slot }),
);

async function apply(
  store: SessionStore,
  key: string,
  operation: Op,
  now: number,
): Promise<unknown> {
  try {
    switch (operation.kind) {
      case 'put':
        return await store.put(key, operation.draft, now);
      case 'get':
        return await store.get(key, now, operation.touch);
      case 'update':
        return await store.update(key, operation.change, now);
      case 'touch':
        return await store.touch(key, operation.ttl, now);
      case 'consume':
        return await store.consume(key, now);
      case 'delete':
        return await store.delete(key, now);
    }
  } catch (error) {
    if (error instanceof SessionError) return { error: error.code };
    throw error;
  }
}

let run = 0;

/**
 * Runs `numRuns` random operation sequences against `store` and a fresh
 * in-memory reference; every step must give the same result on both.
 */
export async function assertAgreesWithModel(store: SessionStore, numRuns: number): Promise<void> {
  const memoryStore = new MemoryStore(LIMITS, 256 * 1024 * 1024);
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 40 }), async (ops) => {
        run += 1;
        const start = Date.now();
        for (const [step, operation] of ops.entries()) {
          const key = `model-${process.pid}-run${run}-key${operation.slot}`;
          const now = start + step * 100;
          const expected = await apply(memoryStore, key, operation, now);
          const actual = await apply(store, key, operation, now);
          assert.deepStrictEqual(actual, expected, `step ${step}: ${operation.kind}`);
        }
      }),
      { numRuns },
    );
  } finally {
    await memoryStore.close();
  }
}
