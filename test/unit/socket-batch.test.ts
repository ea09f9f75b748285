import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { SocketBatch } from '../../src/wire/socket-batch.ts';
import { type LoopbackPair, loopbackPair } from '../support/wire.ts';

// The write batching under both transports' hot paths: whatever mix of small
// claimed bytes and large appended payloads goes in, the peer reads exactly
// those bytes in order, across arena boundaries.

describe('SocketBatch', () => {
  let pair: LoopbackPair;

  before(async () => {
    pair = await loopbackPair();
  });

  after(() => pair.close());

  it('delivers claimed and appended bytes in order, in one write per turn', async () => {
    let written = pair.local.bytesWritten;
    const sized = (size: number) => Buffer.alloc(size, size % 251);
    const piece = fc.oneof(
      fc.integer({ min: 1, max: 3000 }).map((size) => ({ claim: sized(size) })),
      fc.integer({ min: 1, max: 4096 }).map((size) => ({ append: sized(size) })),
      fc.integer({ min: 4097, max: 70_000 }).map((size) => ({ append: sized(size) })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { minLength: 30, maxLength: 80 }), async (pieces) => {
        const batch = new SocketBatch(pair.local, 2 ** 30);
        const expected: Buffer[] = [];
        for (const p of pieces) {
          if ('claim' in p) {
            const at = batch.claim(p.claim.length);
            p.claim.copy(batch.arena, at);
            expected.push(p.claim);
          } else {
            batch.append(p.append);
            expected.push(p.append);
          }
        }
        assert.equal(pair.local.bytesWritten, written, 'nothing is written before the turn ends');
        const want = Buffer.concat(expected);
        written += want.length;
        assert.ok((await pair.receive(want.length)).equals(want));
      }),
      { numRuns: 60 },
    );
  });
});
