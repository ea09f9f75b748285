import assert from 'node:assert/strict';
import { connect as connectHttp2 } from 'node:http2';
import { after, before, describe, it } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { encodeHeaders } from '../src/transport/lean/hpack.ts';
import { rawClient } from './support/grpc.ts';
import { PROTO_FILE, SERVICE_NAME } from './support/proto.ts';
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
  HEADERS,
  PING,
  PROTOCOL_ERROR,
  RawPeer,
  REFUSED_STREAM,
  RST_STREAM,
  requestBlock,
  resetCode,
  SETTINGS,
  WINDOW_UPDATE,
} from './support/raw-peer.ts';
import { startServer, type TestServer } from './support/server.ts';
import { h2Frame as frame } from './support/wire.ts';

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
