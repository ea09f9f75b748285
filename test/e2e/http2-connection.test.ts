import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { connect as connectHttp2 } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { encodeHeaders } from '../../src/wire/http2/hpack.ts';
import { rawClient } from '../support/grpc.ts';
import { PROTO_FILE, SERVICE_NAME } from '../support/proto.ts';
import {
  ACK,
  CANCEL,
  COMPRESSION_ERROR,
  CONTINUATION,
  DATA,
  END_HEADERS,
  END_STREAM,
  ENHANCE_YOUR_CALM,
  FRAME_SIZE_ERROR,
  GOAWAY,
  HEADERS,
  PING,
  PROTOCOL_ERROR,
  RawPeer,
  REFUSED_STREAM,
  RST_STREAM,
  requestBlock,
  resetCode,
  SETTINGS,
  STREAM_CLOSED,
  WINDOW_UPDATE,
} from '../support/raw-peer.ts';
import { startServer, type TestServer } from '../support/server.ts';
import { h2Frame as frame } from '../support/wire.ts';

// The HTTP/2 layer under the lean transport, seen from a client that writes
// frames by hand: what a misbehaving or hostile peer gets, and flow control
// against a client with tiny windows. The friendly paths (grpc-js, grpcio,
// grpc-go) are in transport-conformance.test.ts.

describe('HTTP/2 connection layer', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ env: { GRPC_TRANSPORT: 'lean' } });
  });

  after(() => server.close());

  it('answers a PING with an ACK carrying the same 8 bytes', async () => {
    const peer = await RawPeer.open(server.port);
    const data = Buffer.from('8 bytes!');
    peer.send(frame(PING, 0, 0, data));
    const ack = await peer.next((f) => f.type === PING && (f.flags & ACK) !== 0);
    assert.deepEqual(ack.payload, data);
    peer.destroy();
  });

  it('closes a connection that does not open with the HTTP/2 preface', async () => {
    const peer = await RawPeer.open(server.port, false);
    peer.send(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
    await peer.closed;
    assert.deepEqual(
      peer.frames.map((f) => f.type),
      [SETTINGS, WINDOW_UPDATE],
      'nothing but the opening frames went out',
    );
  });

  it('a frame larger than 16 KiB is FRAME_SIZE_ERROR', async () => {
    const peer = await RawPeer.open(server.port);
    peer.send(frame(DATA, 0, 1, Buffer.alloc(20_000)));
    assert.equal(await peer.goaway(), FRAME_SIZE_ERROR);
    await peer.closed;
  });

  it('a client stream with an even id is PROTOCOL_ERROR', async () => {
    const peer = await RawPeer.open(server.port);
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 2, requestBlock('GetSession')));
    assert.equal(await peer.goaway(), PROTOCOL_ERROR);
    await peer.closed;
  });

  it('a header block HPACK cannot decode is COMPRESSION_ERROR', async () => {
    const peer = await RawPeer.open(server.port);
    peer.send(
      frame(HEADERS, END_HEADERS | END_STREAM, 1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff])),
    );
    assert.equal(await peer.goaway(), COMPRESSION_ERROR);
    await peer.closed;
  });

  it('headers over 64 KiB get HTTP 431 on their stream; the connection goes on', async () => {
    const peer = await RawPeer.open(server.port);
    const block = encodeHeaders([
      [':method', 'POST'],
      [':path', `/${SERVICE_NAME}/GetSession`],
      ['x-big', 'b'.repeat(70_000)],
    ]);
    const parts = [frame(HEADERS, END_STREAM, 1, block.subarray(0, 16_384))];
    for (let at = 16_384; at < block.length; at += 16_384) {
      const last = at + 16_384 >= block.length;
      parts.push(frame(CONTINUATION, last ? END_HEADERS : 0, 1, block.subarray(at, at + 16_384)));
    }
    peer.send(Buffer.concat(parts));
    const refused = await peer.next((f) => f.type === HEADERS && f.stream === 1);
    assert.equal(refused.flags & END_STREAM, END_STREAM);
    assert.ok(refused.payload.includes(Buffer.from('431')), 'the reply is :status 431');
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, requestBlock('NoSuchMethod')));
    const next = await peer.next((f) => f.type === HEADERS && f.stream === 3);
    assert.equal(next.flags & END_STREAM, END_STREAM);
    peer.destroy();
  });

  it('an uppercase header name resets its stream with PROTOCOL_ERROR; the connection goes on', async () => {
    const peer = await RawPeer.open(server.port);
    const block = encodeHeaders([
      [':method', 'POST'],
      [':scheme', 'http'],
      [':path', `/${SERVICE_NAME}/GetSession`],
      ['content-type', 'application/grpc'],
      ['X-Upper', 'v'],
    ]);
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, block));
    const reset = await peer.next((f) => f.type === RST_STREAM && f.stream === 1);
    assert.equal(resetCode(reset), PROTOCOL_ERROR);
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 3, requestBlock('NoSuchMethod')));
    const next = await peer.next((f) => f.type === HEADERS && f.stream === 3);
    assert.equal(next.flags & END_STREAM, END_STREAM);
    assert.equal(
      peer.frames.filter((f) => f.stream === 1).length,
      1,
      'stream 1 got only the reset',
    );
    peer.destroy();
  });

  it('a header block that never ends (CONTINUATION flood) is ENHANCE_YOUR_CALM', async () => {
    const peer = await RawPeer.open(server.port);
    peer.send(frame(HEADERS, 0, 1, requestBlock('GetSession')));
    for (let i = 0; i < 16; i++) peer.send(frame(CONTINUATION, 0, 1, Buffer.alloc(16_384, 0x40)));
    assert.equal(await peer.goaway(), ENHANCE_YOUR_CALM);
    await peer.closed;
  });

  it('refuses a stream past 1000 concurrent ones with REFUSED_STREAM, and takes new ones once they end', async () => {
    const peer = await RawPeer.open(server.port);
    const block = requestBlock('SetSession');
    const opens: Buffer[] = [];
    for (let id = 1; id <= 2001; id += 2) opens.push(frame(HEADERS, END_HEADERS, id, block));
    peer.send(Buffer.concat(opens));
    const refused = await peer.next((f) => f.type === RST_STREAM && f.stream === 2001);
    assert.equal(resetCode(refused), REFUSED_STREAM);
    assert.equal(
      peer.frames.filter((f) => f.type === RST_STREAM).length,
      1,
      'only the 1001st stream was refused',
    );
    // Ending stream 1 without a message ends its call (INTERNAL) and frees a slot.
    peer.send(frame(DATA, END_STREAM, 1));
    await peer.next((f) => f.type === HEADERS && f.stream === 1);
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 2003, requestBlock('NoSuchMethod')));
    const served = await peer.next((f) => f.stream === 2003);
    assert.equal(served.type, HEADERS);
    peer.destroy();
  });

  it('a flood of stream resets (CVE-2023-44487) is ENHANCE_YOUR_CALM', async () => {
    const peer = await RawPeer.open(server.port);
    const block = requestBlock('SetSession');
    const cancel = Buffer.alloc(4);
    cancel.writeUInt32BE(CANCEL);
    const burst: Buffer[] = [];
    for (let id = 1; id < 2 * 1100; id += 2) {
      burst.push(frame(HEADERS, END_HEADERS, id, block), frame(RST_STREAM, 0, id, cancel));
    }
    peer.send(Buffer.concat(burst));
    assert.equal(await peer.goaway(), ENHANCE_YOUR_CALM);
    await peer.closed;
  });

  it('sends a large reply through a client window of 1000 bytes, within its frame size', async () => {
    const grpc = rawClient(server.address);
    const response = Buffer.alloc(700_000, 'r');
    const { session_key } = await grpc.call('SetSession', { fleet_list_response: response });
    grpc.close();

    const sessions = protoLoader.loadSync(PROTO_FILE, {
      keepCase: true,
      longs: Number,
      bytes: Buffer,
    });
    const codec = (name: string) =>
      (sessions[SERVICE_NAME] as protoLoader.ServiceDefinition)[
        name
      ] as protoLoader.MethodDefinition<object, object>;
    const session = connectHttp2(`http://${server.address}`, {
      settings: { initialWindowSize: 1000, maxFrameSize: 20_000 },
    });
    const request = codec('GetSession').requestSerialize({ session_key });
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(request.length, 1);
    const stream = session.request({
      ':method': 'POST',
      ':path': `/${SERVICE_NAME}/GetSession`,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const chunks: Buffer[] = [];
    let grpcStatus: unknown;
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('trailers', (trailers) => {
      grpcStatus = trailers['grpc-status'];
    });
    stream.end(Buffer.concat([prefix, request]));
    await new Promise((resolve) => stream.on('close', resolve));
    session.close();
    const body = Buffer.concat(chunks);
    assert.equal(grpcStatus, '0');
    assert.equal(body.readUInt32BE(1), body.length - 5);
    const reply = codec('GetSession').responseDeserialize(body.subarray(5)) as {
      fleet_list_response: Buffer;
    };
    assert.ok(reply.fleet_list_response.equals(response));
  });

  it('random frames after a valid preface never take the server down', async () => {
    const frames = fc.array(
      fc.record({
        type: fc.integer({ min: 0, max: 10 }),
        flags: fc.integer({ min: 0, max: 255 }),
        stream: fc.integer({ min: 0, max: 7 }),
        payload: fc.uint8Array({ maxLength: 40 }),
      }),
      { maxLength: 12 },
    );
    await fc.assert(
      fc.asyncProperty(frames, async (sequence) => {
        const peer = await RawPeer.open(server.port);
        peer.send(
          Buffer.concat(
            sequence.map((f) => frame(f.type, f.flags, f.stream, Buffer.from(f.payload))),
          ),
        );
        // A PING after them is answered unless the connection was failed.
        peer.send(frame(PING, 0, 0, Buffer.from('stillup!')));
        await Promise.race([
          peer.closed,
          peer.next((f) => f.type === PING && (f.flags & ACK) !== 0).catch(() => undefined),
        ]);
        peer.destroy();
      }),
      { numRuns: 150 },
    );
    const peer = await RawPeer.open(server.port);
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, requestBlock('NoSuchMethod')));
    const reply = await peer.next((f) => f.type === HEADERS && f.stream === 1);
    assert.equal(reply.flags & END_STREAM, END_STREAM);
    peer.destroy();
  });
});

describe('HTTP/2 connection layer: what a peer sees across streams', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ env: { GRPC_TRANSPORT: 'lean' } });
  });

  after(() => server.close());

  const grpcCall = async (session: ReturnType<typeof connectHttp2>, key: string) => {
    const stream = session.request({
      ':method': 'POST',
      ':path': `/${SERVICE_NAME}/SetSession`,
      'content-type': 'application/grpc',
      te: 'trailers',
    });
    const body = Buffer.concat([Buffer.from([0x0a, key.length]), Buffer.from(key)]);
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(body.length, 1);
    let status: unknown;
    stream.on('trailers', (trailers) => {
      status = trailers['grpc-status'];
    });
    stream.resume();
    stream.end(Buffer.concat([prefix, body]));
    await new Promise((resolve, reject) => {
      stream.on('close', resolve);
      stream.on('error', reject);
    });
    return status;
  };

  it('a client whose HPACK table is smaller than 4096 reads every reply (RFC 7541 4.2)', async () => {
    for (const headerTableSize of [1024, 0]) {
      const session = connectHttp2(`http://${server.address}`, { settings: { headerTableSize } });
      session.on('error', () => {});
      try {
        for (let i = 0; i < 20; i++) {
          assert.equal(await grpcCall(session, `table-${headerTableSize}-${i}`), '0');
        }
      } finally {
        session.close();
      }
    }
  });

  it('reply headers after the first call cost a few octets: the peer table holds them', async () => {
    const peer = await RawPeer.open(server.port);
    for (const id of [1, 3, 5]) {
      peer.send(frame(HEADERS, END_HEADERS, id, requestBlock('SetSession')));
      const body = Buffer.from([0, 0, 0, 0, 4, 0x0a, 2, 0x6b, 0x30 + id]);
      peer.send(frame(DATA, END_STREAM, id, body));
      await peer.next((f) => f.type === HEADERS && f.stream === id && (f.flags & END_STREAM) !== 0);
    }
    const blocks = peer.frames.filter((f) => f.type === HEADERS).map((f) => f.payload.length);
    assert.equal(blocks.length, 6);
    assert.ok(
      (blocks[0] ?? 0) > 40,
      `the first reply's headers carry the literals (${blocks[0]} octets)`,
    );
    assert.ok(
      blocks.slice(2).every((length) => length <= 3),
      `later replies: ${blocks.join(', ')} octets`,
    );
    peer.destroy();
  });

  it('a request of nearly the largest size goes through after one refused for its size', async () => {
    // A request is held until complete, so connection window kept back from a
    // refused one would leave the next unable to finish (it once did).
    const client = rawClient(server.address);
    const send = (bytes: number) =>
      client.call(
        'SetSession',
        { session_key: 'near-max', fleet_list_request: Buffer.alloc(bytes, 7) },
        { deadlineMs: 10_000 },
      );
    try {
      await assert.rejects(send(1_200_000), /RESOURCE_EXHAUSTED: request of/);
      for (let i = 0; i < 3; i++) await send(1_040_000);
    } finally {
      client.close();
    }
  });

  it('a client with 64 KiB windows and 256 calls in flight gets every reply', async () => {
    // 256 replies of 9 KB owe this client more than it lets us send at once
    // (grpc-js keeps nghttp2's 64 KiB windows). New streams must wait for
    // window, not be refused: grpc-js retries a refusal at once, and the
    // refusals once added up to a GOAWAY ENHANCE_YOUR_CALM.
    const client = rawClient(server.address);
    const payload = Buffer.alloc(4500, 3);
    try {
      await client.call('SetSession', {
        session_key: 'wide-reply',
        fleet_list_request: payload,
        fleet_list_response: payload,
      });
      const failures: string[] = [];
      const caller = async () => {
        for (let call = 0; call < 10; call++) {
          await client
            .call('GetSession', { session_key: 'wide-reply' }, { deadlineMs: 30_000 })
            .catch((error: Error) => failures.push(error.message));
        }
      };
      await Promise.all(Array.from({ length: 256 }, caller));
      assert.deepEqual(failures.slice(0, 3), []);
    } finally {
      client.close();
    }
  });

  it('h2load with a 1024-byte header table gets no error', {
    skip:
      !existsSync('/usr/bin/h2load') && 'h2load is not installed (apt-get install nghttp2-client)',
  }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'h2load-'));
    const message = join(dir, 'get.msg');
    writeFileSync(message, Buffer.from([0, 0, 0, 0, 0]));
    const { stdout } = await promisify(execFile)('h2load', [
      '-n',
      '500',
      '-c',
      '1',
      '-m',
      '10',
      '--header-table-size=1024',
      '-d',
      message,
      '-H',
      'content-type: application/grpc',
      '-H',
      'te: trailers',
      `http://${server.address}/${SERVICE_NAME}/GetSession`,
    ]);
    assert.match(stdout, /500 succeeded, 0 failed, 0 errored/);
  });

  it('a frame on a stream the client itself ended is STREAM_CLOSED; a lower new stream id is PROTOCOL_ERROR', async () => {
    const ended = await RawPeer.open(server.port);
    ended.send(frame(HEADERS, END_HEADERS | END_STREAM, 1, requestBlock('NoSuchMethod')));
    await ended.next((f) => f.type === HEADERS && f.stream === 1);
    ended.send(frame(DATA, 0, 1, Buffer.from('late')));
    assert.equal(await ended.goaway(), STREAM_CLOSED);
    const lower = await RawPeer.open(server.port);
    lower.send(frame(HEADERS, END_HEADERS, 5, requestBlock('GetSession')));
    lower.send(frame(HEADERS, END_HEADERS, 3, requestBlock('GetSession')));
    assert.equal(await lower.goaway(), PROTOCOL_ERROR);
    await Promise.all([ended.closed, lower.closed]);
  });

  it('frames still in flight on a stream the server reset are ignored', async () => {
    const peer = await RawPeer.open(server.port);
    // A body for an unknown method: the server answers at once and resets the stream.
    peer.send(frame(HEADERS, END_HEADERS, 1, requestBlock('NoSuchMethod')));
    await peer.next((f) => f.type === RST_STREAM && f.stream === 1);
    peer.send(frame(DATA, 0, 1, Buffer.from('in flight')));
    peer.send(frame(PING, 0, 0, Buffer.from('stillok!')));
    await peer.next((f) => f.type === PING && (f.flags & ACK) !== 0);
    assert.equal(peer.frames.filter((f) => f.type === GOAWAY).length, 0);
    peer.destroy();
  });

  it('refuses a request that breaks RFC 9113 8.3 with a stream error; the connection goes on', async () => {
    const peer = await RawPeer.open(server.port);
    const malformed = [
      [
        [':method', 'POST'],
        [':path', `/${SERVICE_NAME}/GetSession`],
      ],
      [
        [':method', 'POST'],
        [':scheme', 'http'],
        [':path', ''],
      ],
      [
        [':method', 'POST'],
        [':scheme', 'http'],
        [':path', '/x'],
        [':status', '200'],
      ],
      [
        [':method', 'POST'],
        [':scheme', 'http'],
        [':path', '/x'],
        [':foo', 'x'],
      ],
      [
        [':method', 'POST'],
        [':scheme', 'http'],
        [':path', '/x'],
        ['connection', 'close'],
      ],
    ] as Array<Array<[string, string]>>;
    let id = 1;
    for (const fields of malformed) {
      peer.send(frame(HEADERS, END_HEADERS | END_STREAM, id, encodeHeaders(fields)));
      const reset = await peer.next((f) => f.type === RST_STREAM && f.stream === id);
      assert.equal(resetCode(reset), PROTOCOL_ERROR, JSON.stringify(fields));
      id += 2;
    }
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, id, requestBlock('NoSuchMethod')));
    const reply = await peer.next((f) => f.type === HEADERS && f.stream === id);
    assert.equal(reply.headers?.['grpc-status'], '12');
    peer.destroy();
  });
});
