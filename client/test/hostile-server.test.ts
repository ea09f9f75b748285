// The lean transport against servers that misbehave on purpose, each a raw
// TCP server that speaks as much HTTP/2 as its misbehaviour needs. Every case
// must end in a typed SessionError, within the deadline (plus the sweeper's
// resolution and a margin for a busy machine), without the client holding
// more than the limits allow.
import assert from 'node:assert/strict';
import { createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { FrameType, PREFACE, Setting } from '../../src/wire/http2/frames.ts';
import { encodeHeaders, HpackDecoder } from '../../src/wire/http2/hpack.ts';
import { h2Frame as frame } from '../../test/support/wire.ts';
import { createClient, SessionError, type SessionErrorCode } from '../src/index.ts';

const DEADLINE_MS = 400;
/** How late past its deadline a call may settle on a busy machine. */
const MARGIN_MS = 1500;

function settings(entries: Array<[number, number]> = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

/** Called with each request's HEADERS frame (stream id and header block), after the client preface. */
type Behaviour = (socket: Socket, streamId: number, block: Buffer) => void;

const servers: Server[] = [];
after(() => {
  for (const server of servers) server.close();
});

async function hostile(behaviour: Behaviour, greet = settings()): Promise<string> {
  const server = createServer((socket) => {
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    let at = PREFACE.length;
    socket.write(greet);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (at + 9 <= buffered.length) {
        const length = buffered.readUIntBE(at, 3);
        if (at + 9 + length > buffered.length) return;
        if (buffered[at + 3] === FrameType.HEADERS) {
          const id = buffered.readUInt32BE(at + 5) & 0x7fffffff;
          behaviour(socket, id, buffered.subarray(at + 9, at + 9 + length));
        }
        at += 9 + length;
      }
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  assert.ok(address !== null && typeof address === 'object');
  return `127.0.0.1:${address.port}`;
}

async function expectFailure(address: string, codes: SessionErrorCode[]): Promise<SessionError> {
  const client = createClient({ address, deadlineMs: DEADLINE_MS, retries: false });
  const started = Date.now();
  try {
    await client.getSession({ sessionKey: 'k' });
    assert.fail('the call succeeded');
  } catch (error) {
    const elapsed = Date.now() - started;
    assert.ok(error instanceof SessionError, `a SessionError, got ${error}`);
    assert.ok(codes.includes(error.code), `${error.code}: ${error.message}`);
    assert.ok(elapsed < DEADLINE_MS + MARGIN_MS, `settled after ${elapsed} ms`);
    return error;
  } finally {
    client.close();
  }
}

const okHeaders = encodeHeaders([
  [':status', '200'],
  ['content-type', 'application/grpc'],
]);

describe('a hostile server', () => {
  test('garbage bytes instead of HTTP/2', async () => {
    const address = await hostile(() => {}, Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'));
    const error = await expectFailure(address, ['UNAVAILABLE']);
    assert.match(String((error.cause as Error).message), /protocol/);
  });

  test('a frame larger than the client accepts', async () => {
    const address = await hostile((socket, id) => {
      socket.write(frame(FrameType.HEADERS, 0x4, id, okHeaders));
      socket.write(frame(FrameType.DATA, 0, id, Buffer.alloc(1024 * 1024)));
    });
    await expectFailure(address, ['UNAVAILABLE']);
  });

  test('a response message over maxResponseBytes', async () => {
    const address = await hostile((socket, id) => {
      socket.write(frame(FrameType.HEADERS, 0x4, id, okHeaders));
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(0xffffffff, 1);
      socket.write(frame(FrameType.DATA, 0, id, prefix));
    });
    const error = await expectFailure(address, ['RESOURCE_EXHAUSTED']);
    assert.match(error.message, /larger than the client accepts/);
  });

  test('GOAWAY in the middle of the call', async () => {
    const address = await hostile((socket, id) => {
      const payload = Buffer.alloc(8);
      payload.writeUInt32BE(id, 0);
      payload.writeUInt32BE(0x2, 4);
      socket.write(frame(FrameType.HEADERS, 0x4, id, okHeaders));
      socket.write(frame(FrameType.GOAWAY, 0, 0, payload));
      socket.end();
    });
    await expectFailure(address, ['UNAVAILABLE']);
  });

  test('RST_STREAM on the call', async () => {
    const address = await hostile((socket, id) => {
      const code = Buffer.alloc(4);
      code.writeUInt32BE(0x2, 0);
      socket.write(frame(FrameType.RST_STREAM, 0, id, code));
    });
    await expectFailure(address, ['INTERNAL']);
  });

  test('a server that stalls after its headers', async () => {
    const address = await hostile((socket, id) => {
      socket.write(frame(FrameType.HEADERS, 0x4, id, okHeaders));
    });
    await expectFailure(address, ['DEADLINE_EXCEEDED']);
  });

  test('a server that accepts the connection and never speaks', async () => {
    const address = await hostile(() => {}, Buffer.alloc(0));
    await expectFailure(address, ['DEADLINE_EXCEEDED']);
  });

  test('response headers over the header-list cap', async () => {
    const address = await hostile((socket, id) => {
      const block = encodeHeaders([
        [':status', '200'],
        ['content-type', 'application/grpc'],
        ...Array.from({ length: 12 }, (_, i) => [`x-filler-${i}`, 'v'.repeat(8000)] as const),
      ]);
      socket.write(frame(FrameType.HEADERS, 0, id, block.subarray(0, 16_000)));
      for (let at = 16_000; at < block.length; at += 16_000) {
        const last = at + 16_000 >= block.length;
        socket.write(
          frame(FrameType.CONTINUATION, last ? 0x4 : 0, id, block.subarray(at, at + 16_000)),
        );
      }
    });
    await expectFailure(address, ['INTERNAL']);
  });

  test('a server that lowers SETTINGS_HEADER_TABLE_SIZE to 0 is still sent decodable headers', async () => {
    const blocks: Buffer[] = [];
    const trailers = encodeHeaders([
      [':status', '200'],
      ['content-type', 'application/grpc'],
      ['grpc-status', '5'],
      ['grpc-message', 'no such session'],
    ]);
    const address = await hostile(
      (socket, id, block) => {
        blocks.push(Buffer.from(block));
        socket.write(frame(FrameType.HEADERS, 0x5, id, trailers));
      },
      settings([[Setting.HEADER_TABLE_SIZE, 0]]),
    );
    const client = createClient({ address, deadlineMs: 2000, retries: false });
    try {
      for (let i = 0; i < 3; i++) assert.equal(await client.getSession({ sessionKey: 'k' }), null);
    } finally {
      client.close();
    }
    // The first block may predate our SETTINGS; the next announces the new size (0x20: size 0).
    assert.equal(blocks[1]?.[0], 0x20);
    const decoder = new HpackDecoder(4096);
    for (const block of blocks)
      assert.equal(
        decoder.decode(block, 65536)[':path'],
        '/sessionmanager.v1.SessionManagerService/GetSession',
      );
  });

  test('a server that never opens its window: the request waits, the deadline fires', async () => {
    const address = await hostile(() => {}, settings([[Setting.INITIAL_WINDOW_SIZE, 0]]));
    await expectFailure(address, ['DEADLINE_EXCEEDED']);
  });

  test('a PING flood ends the connection, not the process', async () => {
    const address = await hostile((socket) => {
      const ping = frame(FrameType.PING, 0, 0, Buffer.alloc(8));
      socket.write(Buffer.concat(Array.from({ length: 2000 }, () => ping)));
    });
    await expectFailure(address, ['UNAVAILABLE', 'DEADLINE_EXCEEDED']);
  });
});
