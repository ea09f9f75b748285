import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { OpenStreams } from '../../src/wire/http2/open-streams.ts';

// The table of a connection's open streams, against a Map as the model:
// streams open in increasing id order and close in any order.

describe('OpenStreams', () => {
  it('finds, counts and lists exactly the open streams, in id order', () => {
    const op = fc.oneof(
      fc.record({ open: fc.integer({ min: 1, max: 5 }) }),
      fc.record({ close: fc.nat() }),
      fc.record({ lookup: fc.nat({ max: 400 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 300 }), (ops) => {
        const table = new OpenStreams<{ id: number }>();
        const model = new Map<number, { id: number }>();
        const everOpened: { id: number }[] = [];
        let lastId = 0;
        for (const o of ops) {
          if ('open' in o) {
            lastId += 2 * o.open;
            const stream = { id: lastId - 1 };
            table.add(stream);
            model.set(stream.id, stream);
            everOpened.push(stream);
          } else if ('close' in o) {
            if (everOpened.length === 0) continue;
            const stream = everOpened[o.close % everOpened.length] as { id: number };
            assert.equal(table.delete(stream), model.delete(stream.id));
          } else {
            assert.equal(table.get(o.lookup), model.get(o.lookup));
          }
          assert.equal(table.size, model.size);
        }
        assert.deepEqual(
          table.values().map((s) => s.id),
          [...model.keys()].sort((a, b) => a - b),
        );
        assert.deepEqual(
          table.takeAll().map((s) => s.id),
          [...model.keys()].sort((a, b) => a - b),
        );
        assert.equal(table.size, 0);
      }),
    );
  });
});
