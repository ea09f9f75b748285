import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import {
  ErrorReply,
  ProtocolError,
  type Reply,
  ReplyParser,
  writeCommand,
} from '../../src/wire/resp.ts';
import { SocketBatch } from '../../src/wire/socket-batch.ts';
import { type LoopbackPair, loopbackPair } from '../support/wire.ts';

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

/** Every reply `feed` gives back for these chunks, in order. */
const parseChunks = (chunks: readonly Buffer[]): Array<Reply | ErrorReply> => {
  const parsed: Array<Reply | ErrorReply> = [];
  const parser = new ReplyParser((reply) => parsed.push(reply));
  for (const chunk of chunks) parser.feed(chunk);
  return parsed;
};

/** Cuts `bytes` into pieces of `size` bytes. */
const segments = (bytes: Buffer, size: number) =>
  Array.from({ length: Math.ceil(bytes.length / size) }, (_, i) =>
    bytes.subarray(i * size, (i + 1) * size),
  );

const replyOrError = fc.oneof(
  { weight: 4, arbitrary: replyArbitrary },
  fc.string({ maxLength: 40 }).map((text) => new ErrorReply(`ERR ${text.replace(/[\r\n]/g, ' ')}`)),
);

/**
 * Work the parser hands to Buffer primitives while `run` runs, in bytes:
 * scanned by indexOf, copied by copy and concat, decoded by toString. A
 * parser that goes back over bytes it has seen shows here, whatever the
 * speed of the machine.
 */
function bytesOfWork(run: () => void): number {
  const proto = Buffer.prototype;
  const { indexOf, copy, toString: decode } = proto;
  const concat = Buffer.concat;
  let work = 0;
  proto.indexOf = function (this: Buffer, value: number, from = 0) {
    const found = indexOf.call(this, value, from);
    work += (found < 0 ? this.length : found + 1) - from;
    return found;
  } as typeof indexOf;
  proto.copy = function (this: Buffer, ...args: Parameters<typeof copy>) {
    const copied = copy.apply(this, args);
    work += copied;
    return copied;
  } as typeof copy;
  proto.toString = function (
    this: Buffer,
    encoding?: BufferEncoding,
    start = 0,
    end = this.length,
  ) {
    work += Math.max(0, Math.min(end, this.length) - start);
    return decode.call(this, encoding, start, end);
  } as typeof decode;
  Buffer.concat = (list, totalLength) => {
    const joined = concat(list, totalLength);
    work += joined.length;
    return joined;
  };
  try {
    run();
  } finally {
    proto.indexOf = indexOf;
    proto.copy = copy;
    proto.toString = decode;
    Buffer.concat = concat;
  }
  return work;
}

describe('RESP2 reply parser', () => {
  it('gives back every reply, in order, however the bytes are cut into chunks', () => {
    fc.assert(
      fc.property(
        fc.array(replyOrError, { minLength: 1, maxLength: 8 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 10 }),
        (replies, fractions) => {
          assert.deepEqual(
            parseChunks(cut(Buffer.concat(replies.map(encodeReply)), fractions)),
            replies,
          );
        },
      ),
    );
  });

  it('parses any split of a stream of replies exactly as it parses the stream in one chunk', () => {
    fc.assert(
      fc.property(
        fc.array(fc.oneof(replyOrError, fc.constant(Buffer.from('OK'))), {
          minLength: 1,
          maxLength: 6,
        }),
        fc.array(fc.nat(), { maxLength: 40 }),
        fc.boolean(),
        (replies, points, statusLines) => {
          // Status lines ("+OK") come back as bytes, like a bulk string, so the
          // reference here is the one-chunk parse, not the generated value.
          const bytes = Buffer.concat(
            replies.map((reply) =>
              statusLines &&
              Buffer.isBuffer(reply) &&
              !reply.includes(0x0d) &&
              !reply.includes(0x0a)
                ? Buffer.from(`+${reply.toString('latin1')}\r\n`, 'latin1')
                : encodeReply(reply),
            ),
          );
          const whole = parseChunks([bytes]);
          const at = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
          const chunks = [...at, bytes.length].map((end, i) => bytes.subarray(at[i - 1] ?? 0, end));
          assert.deepEqual(parseChunks(chunks), whole);
          assert.deepEqual(parseChunks(segments(bytes, 1)), whole);
        },
      ),
    );
  });

  it('does work linear in the size of a reply however it is cut: 1 MB in 1460-byte segments and 64 KB byte by byte', () => {
    // An HGETALL of a 1 MB session: 1000 attributes of 1 KB; and one 1 MB bulk string.
    const fields: Reply = Array.from({ length: 2000 }, (_, i) =>
      Buffer.alloc(i % 2 ? 1024 : 12, 0x61 + (i % 26)),
    );
    const big: Reply = [Buffer.alloc(1 << 20, 7), 42];
    for (const [name, reply, size] of [
      ['1000 attributes', fields, 1460],
      ['one 1 MB bulk string', big, 1460],
      ['1000 attributes', fields, 1],
    ] as const) {
      const bytes = encodeReply(reply);
      const input = size === 1 ? encodeReply((reply as Reply[]).slice(0, 120)) : bytes;
      const chunks = segments(input, size);
      let parsed: Array<Reply | ErrorReply> = [];
      const work = bytesOfWork(() => {
        parsed = parseChunks(chunks);
      });
      assert.equal(parsed.length, 1, name);
      // Each byte is looked at a small, fixed number of times: scanned for a
      // line end or copied once into its bulk string, and the few header
      // bytes decoded. Parsing again from the start on each chunk does
      // hundreds of times more (quadratic in the reply's size).
      assert.ok(
        work <= 3 * input.length,
        `${name} in ${size}-byte segments: ${work} bytes of work for ${input.length} bytes`,
      );
    }
  });

  it('reads a status line as bytes and an error inside an array as the error, keeping its place', () => {
    const parsed = parseChunks([Buffer.from('+OK\r\n*2\r\n-ERR inner\r\n:1\r\n:7\r\n')]);
    assert.deepEqual(parsed[0], Buffer.from('OK'));
    assert.ok(parsed[1] instanceof ErrorReply);
    assert.equal((parsed[1] as ErrorReply).message, 'ERR inner');
    assert.equal(parsed[2], 7);
  });

  it('refuses bytes that are not RESP2', () => {
    for (const garbage of [
      'HTTP/1.1 400\r\n',
      ':12x\r\n',
      ':\r\n',
      '+OK\n',
      '$3\r\nabcd\r\n',
      '\n',
    ]) {
      assert.throws(() => parseChunks([Buffer.from(garbage)]), ProtocolError, garbage);
      assert.throws(() => parseChunks(segments(Buffer.from(garbage), 1)), ProtocolError, garbage);
    }
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
