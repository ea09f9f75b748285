import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { SocketBatch } from '../src/socket-batch.ts';

// The write batching under both transports' hot paths: whatever mix of small
// claimed bytes and large appended payloads goes in, the peer reads exactly
// those bytes in order, across arena boundaries.

describe('SocketBatch', () => {
  let received: Buffer[] = [];
  let peer: Socket;
  let local: Socket;
  const server = createServer((socket) => {
    peer = socket;
    socket.on('data', (chunk: Buffer) => received.push(chunk));
  });

  before(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    local = connect(port, '127.0.0.1');
    await new Promise((resolve) => local.once('connect', resolve));
  });

  after(() => {
    local.destroy();
    peer.destroy();
    server.close();
  });

  it('delivers claimed and appended bytes in order, in one write per turn', async () => {
    const sized = (size: number) => Buffer.alloc(size, size % 251);
    const piece = fc.oneof(
      fc.integer({ min: 1, max: 3000 }).map((size) => ({ claim: sized(size) })),
      fc.integer({ min: 1, max: 4096 }).map((size) => ({ append: sized(size) })),
      fc.integer({ min: 4097, max: 70_000 }).map((size) => ({ append: sized(size) })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(piece, { minLength: 30, maxLength: 80 }), async (pieces) => {
        received = [];
        const batch = new SocketBatch(local, 2 ** 30);
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
        const want = Buffer.concat(expected);
        assert.equal(received.length, 0, 'nothing is written before the turn ends');
        const deadline = Date.now() + 5000;
        while (Buffer.concat(received).length < want.length && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 1));
        }
        assert.ok(Buffer.concat(received).equals(want));
      }),
      { numRuns: 60 },
    );
  });
});
