import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import fc from 'fast-check';
import { type Expiring, TimeoutSweeper } from '../../src/wire/timeouts.ts';

// The sweeper behind every Redis command timeout and every call deadline:
// checked against a model over random interleavings of adds, deletes and the
// passing of time, including an expiry that removes other entries.

const RESOLUTION_MS = 10;

type Op =
  | { kind: 'add'; lifeMs: number; removesOnExpiry: number | undefined }
  | { kind: 'delete'; pick: number }
  | { kind: 'tick' };

const op: fc.Arbitrary<Op> = fc.oneof(
  fc.record({
    kind: fc.constant('add' as const),
    lifeMs: fc.integer({ min: 0, max: 60 }),
    removesOnExpiry: fc.option(fc.nat(), { nil: undefined }),
  }),
  fc.record({ kind: fc.constant('delete' as const), pick: fc.nat() }),
  fc.constant({ kind: 'tick' as const }),
);

describe('TimeoutSweeper', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 }));
  afterEach(() => mock.timers.reset());

  it('expires exactly the entries past their time, once, and only those not deleted', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
        const sweeper = new TimeoutSweeper(RESOLUTION_MS);
        const entries: Expiring[] = [];
        const expired = new Map<Expiring, number>();
        /** The model: entries neither deleted nor expired. */
        const live = new Set<Expiring>();
        const remove = (entry: Expiring) => {
          assert.equal(sweeper.delete(entry), live.has(entry));
          live.delete(entry);
        };
        for (const o of ops) {
          if (o.kind === 'add') {
            const entry: Expiring = {
              expiresAtMs: Date.now() + o.lifeMs,
              sweeperSlot: -1,
              expire() {
                expired.set(entry, (expired.get(entry) ?? 0) + 1);
                assert.ok(live.has(entry), 'an entry expired after it was deleted');
                live.delete(entry);
                if (o.removesOnExpiry !== undefined && entries.length > 0) {
                  remove(entries[o.removesOnExpiry % entries.length] as Expiring);
                }
              },
            };
            entries.push(entry);
            live.add(entry);
            sweeper.add(entry);
          } else if (o.kind === 'delete') {
            if (entries.length > 0) remove(entries[o.pick % entries.length] as Expiring);
          } else {
            mock.timers.tick(RESOLUTION_MS);
            for (const entry of live) {
              assert.ok(entry.expiresAtMs > Date.now(), 'an entry outlived its time');
            }
          }
        }
        for (const count of expired.values()) assert.equal(count, 1);
        for (const entry of [...live]) remove(entry);
      }),
    );
  });
});
