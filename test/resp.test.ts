import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorReply } from '@redis/client';
import fc from 'fast-check';
import { ProtocolError, type Reply, ReplyParser, writeCommand } from '../src/store/redis/resp.ts';
import { SocketBatch } from '../src/wire/socket-batch.ts';
import { type LoopbackPair, loopbackPair } from './support/wire.ts';

// The RESP2 codec of the standalone link. Replies are generated, encoded the
// way Redis encodes them, cut into arbitrary chunks and parsed back; commands
// are encoded and compared with the protocol's definition. The link itself is
// tested against real redis-server processes (redis-store, fault-* tests).

const encodeReply = (reply: Reply | ErrorReply): Buffer => {
  if (reply instanceof ErrorReply) return Buffer.from(`-${reply.message}\r\n`);
  if (reply === null) return Buffer.from('$-1\r\n');
  if (typeof reply === 'number') return Buffer.from(`:${reply}\r\n`);
  if (Buffer.isBuffer(reply)) {
    return Buffer.concat([Buffer.from(`$${reply.length}\r\n`), reply, Buffer.from('\r\n')]);
  }
  return Buffer.concat([Buffer.from(`*${reply.length}\r\n`), ...reply.map(encodeReply)]);
};

const replyArbitrary: fc.Arbitrary<Reply> = fc.letrec<{ reply: Reply }>((tie) => ({
  reply: fc.oneof(
    { depthSize: 'small' },
    fc.constant(null),
    fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
    fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)),
    fc.array(tie('reply'), { maxLength: 5 }),
  ),
})).reply;

/** Cuts `bytes` at the given fractions of its length. */
const cut = (bytes: Buffer, fractions: number[]) => {
  const points = [...new Set(fractions.map((f) => Math.floor(f * bytes.length)))].sort(
    (a, b) => a - b,
  );
  const chunks: Buffer[] = [];
  let from = 0;
  for (const point of [...points, bytes.length]) {
    if (point > from) chunks.push(bytes.subarray(from, point));
    from = Math.max(from, point);
  }
  return chunks;
};

describe('RESP2 reply parser', () => {
  it('gives back every reply, in order, however the bytes are cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(replyArbitrary, fc.constant(new ErrorReply('NOSCRIPT no script'))), {
          minLength: 1,
          maxLength: 8,
        }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 10 }),
        (replies, fractions) => {
          const parser = new ReplyParser();
          const parsed: Array<Reply | ErrorReply> = [];
          for (const chunk of cut(Buffer.concat(replies.map(encodeReply)), fractions)) {
            parser.feed(chunk, (reply) => parsed.push(reply));
          }
          assert.deepEqual(parsed, replies);
        },
      ),
    );
  });

  it('reads a status line as bytes and an error inside an array as the error, keeping its place', () => {
    const parser = new ReplyParser();
    const parsed: Array<Reply | ErrorReply> = [];
    parser.feed(Buffer.from('+OK\r\n*2\r\n-ERR inner\r\n:1\r\n:7\r\n'), (r) => parsed.push(r));
    assert.deepEqual(parsed[0], Buffer.from('OK'));
    assert.ok(parsed[1] instanceof ErrorReply);
    assert.equal(parsed[2], 7);
  });

  it('refuses bytes that are not RESP2', () => {
    assert.throws(
      () => new ReplyParser().feed(Buffer.from('HTTP/1.1 400\r\n'), () => {}),
      ProtocolError,
    );
    assert.throws(() => new ReplyParser().feed(Buffer.from(':12x\r\n'), () => {}), ProtocolError);
  });
});

describe('RESP2 command encoding', () => {
  let pair: LoopbackPair;

  before(async () => {
    pair = await loopbackPair();
  });

  after(() => pair.close());

  it('writes each command as an array of bulk strings, byte lengths counted in UTF-8', async () => {
    const arg = fc.oneof(
      fc.string({ unit: 'grapheme', maxLength: 30 }),
      fc.uint8Array({ maxLength: 9000 }).map((bytes) => Buffer.from(bytes)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(arg, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 5 }),
        async (commands) => {
          const batch = new SocketBatch(pair.local, 2 ** 30);
          for (const command of commands) writeCommand(batch, command);
          const want = Buffer.concat(
            commands.flatMap((command) => [
              Buffer.from(`*${command.length}\r\n`),
              ...command.flatMap((a) => {
                const bytes = typeof a === 'string' ? Buffer.from(a) : a;
                return [Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n')];
              }),
            ]),
          );
          assert.ok((await pair.receive(want.length)).equals(want));
        },
      ),
      { numRuns: 60 },
    );
  });
});
