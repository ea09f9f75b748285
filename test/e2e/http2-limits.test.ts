import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { CallScope } from '../../src/call-scope.ts';
import type { Config } from '../../src/config.ts';
import type { Session } from '../../src/session.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { encodeHeaders } from '../../src/wire/http2/hpack.ts';
import { rawClient } from '../support/grpc.ts';
import { SERVICE_NAME } from '../support/proto.ts';
import {
  CANCEL,
  CONTINUATION,
  DATA,
  END_HEADERS,
  END_STREAM,
  ENHANCE_YOUR_CALM,
  FLOW_CONTROL_ERROR,
  GOAWAY,
  grpcMessage,
  HEADERS,
  NO_ERROR,
  PING,
  RawPeer,
  REFUSED_STREAM,
  RST_STREAM,
  requestBlock,
  resetCode,
  SETTINGS,
  u32,
  WINDOW_UPDATE,
} from '../support/raw-peer.ts';
import { startServer, type TestServer } from '../support/server.ts';
import { h2Frame as frame } from '../support/wire.ts';

// Each abuse limit of the HTTP/2 layer, triggered on purpose against a server
// configured with small limits, from a client that writes frames by hand.
// The attacks themselves, with a legitimate client calling alongside, are in
// http2-attacks.test.ts.

/** A session key message (GetSessionRequest and SessionData both have it as field 1). */
const keyMessage = (key: string) =>
  grpcMessage(Buffer.concat([Buffer.from([0x0a, key.length]), Buffer.from(key)]));

/** The first DATA frame of a body that declares a 120 KB message and never sends it all. */
const heldBody = (size: number) => {
  const body = Buffer.alloc(size);
  body.writeUInt32BE(120_000, 1);
  return body;
};

/** An RFC 7541 integer with a prefix of `bits` bits after the pattern `high`. */
function hpackInt(value: number, bits: number, high: number): number[] {
  const mask = 2 ** bits - 1;
  if (value < mask) return [high | value];
  const out = [high | mask];
  for (value -= mask; value >= 128; value >>>= 7) out.push((value & 0x7f) | 0x80);
  out.push(value);
  return out;
}

/**
 * The memory store, except that reads of keys starting with "gate" wait
 * until the test opens the gate, and every call's scope is recorded.
 */
class GatedStore extends MemoryStore {
  /** The scopes of the gated reads, as the store saw them. */
  readonly scopes: CallScope[] = [];
  puts = 0;
  #open!: () => void;
  #gate = new Promise<void>((resolve) => {
    this.#open = resolve;
  });

  override async get(
    key: string,
    nowMs: number,
    touch: boolean,
    scope?: CallScope,
  ): Promise<Session | null> {
    if (key.startsWith('gate')) {
      if (scope) this.scopes.push(scope);
      await this.#gate;
    }
    return super.get(key, nowMs, touch);
  }

  override async put(...args: Parameters<MemoryStore['put']>) {
    this.puts++;
    return super.put(...args);
  }

  open(): void {
    this.#open();
  }
}

const LIMITS = {
  GRPC_TRANSPORT: 'lean',
  SESSION_MAX_BYTES: '65536',
  H2_MAX_CONCURRENT_STREAMS: '10',
  H2_CONNECTION_WINDOW: '262144',
  H2_MAX_BUFFERED_BYTES: '400000',
  H2_MAX_UNSENT_BYTES: '65536',
  H2_WRITE_STALL_TIMEOUT: '300ms',
  H2_IDLE_TIMEOUT: '1s',
  H2_HANDSHAKE_TIMEOUT: '300ms',
  H2_RESET_BURST: '50',
  H2_RESETS_PER_SECOND: '1',
  // Each test cuts connections off on purpose; the penalty has its own tests below.
  H2_ABUSE_PENALTY: '0',
};

describe('HTTP/2 limits', () => {
  let server: TestServer;
  let store: GatedStore;

  before(async () => {
    server = await startServer({
      env: LIMITS,
      store: (config: Config) => {
        store = new GatedStore(config.session, config.memoryMaxBytes);
        return store;
      },
    });
  });

  after(() => server.close());

  it('a stream reset in the read that completed it never reaches the store', async () => {
    const peer = await RawPeer.open(server.port);
    const putsBefore = store.puts;
    peer.send(
      Buffer.concat([
        frame(HEADERS, END_HEADERS, 1, requestBlock('SetSession')),
        frame(DATA, END_STREAM, 1, keyMessage('reset-same-read')),
        frame(RST_STREAM, 0, 1, u32(CANCEL)),
        frame(HEADERS, END_HEADERS, 3, requestBlock('GetSession')),
        frame(DATA, END_STREAM, 3, keyMessage('reset-same-read')),
      ]),
    );
    assert.equal(await peer.grpcStatus(3), '5', 'NOT_FOUND: the set never ran');
    assert.equal(store.puts, putsBefore);
    peer.destroy();
  });

  it('a reset stream keeps its slot until its handler ends, and the handler sees it cancelled', async () => {
    const peer = await RawPeer.open(server.port);
    const opens: Buffer[] = [];
    for (let id = 1; id <= 19; id += 2) {
      opens.push(
        frame(HEADERS, END_HEADERS, id, requestBlock('GetSession')),
        frame(DATA, END_STREAM, id, keyMessage(`gate-${id}`)),
      );
    }
    peer.send(Buffer.concat(opens));
    await waitUntil(() => store.scopes.length >= 10);
    const resets: Buffer[] = [];
    for (let id = 1; id <= 19; id += 2) resets.push(frame(RST_STREAM, 0, id, u32(CANCEL)));
    peer.send(Buffer.concat(resets));
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 21, requestBlock('GetSession')));
    const refused = await peer.next((f) => f.type === RST_STREAM && f.stream === 21);
    assert.equal(resetCode(refused), REFUSED_STREAM, 'the ten handlers still hold their slots');
    assert.ok(store.scopes.every((scope) => scope.cancelled));
    store.open();
    let id = 21;
    await waitUntil(async () => {
      id += 2;
      peer.send(frame(HEADERS, END_HEADERS, id, requestBlock('GetSession')));
      peer.send(frame(DATA, END_STREAM, id, keyMessage('absent')));
      const answer = await peer.next((f) => f.stream === id);
      return answer.type === HEADERS;
    });
    peer.destroy();
  });

  it('streams the server resets count against the reset budget (MadeYouReset)', async () => {
    const peer = await RawPeer.open(server.port);
    const frames: Buffer[] = [];
    // A WINDOW_UPDATE of 0 on an open stream makes the server reset it.
    for (let id = 1; id <= 2 * 60; id += 2) {
      frames.push(
        frame(HEADERS, END_HEADERS, id, requestBlock('GetSession')),
        frame(WINDOW_UPDATE, 0, id, u32(0)),
      );
    }
    peer.send(Buffer.concat(frames));
    assert.equal(await peer.goaway(), ENHANCE_YOUR_CALM);
    await peer.closed;
  });

  it('a peer that sends past its connection window is FLOW_CONTROL_ERROR', async () => {
    const peer = await RawPeer.open(server.port);
    const frames: Buffer[] = [];
    // Bodies held open: nothing is handed to a handler, so no window comes back.
    for (let id = 1; id <= 19; id += 2) {
      frames.push(frame(HEADERS, END_HEADERS, id, requestBlock('SetSession')));
      frames.push(frame(DATA, 0, id, heldBody(16_384)), frame(DATA, 0, id, Buffer.alloc(16_384)));
    }
    peer.send(Buffer.concat(frames));
    assert.equal(await peer.goaway(), FLOW_CONTROL_ERROR);
    assert.equal(
      peer.frames.filter((f) => f.type === WINDOW_UPDATE && f.stream === 0).length,
      1,
      'only the opening raise of the connection window',
    );
    await peer.closed;
  });

  it('past the process-wide budget, the connection holding most request bytes is closed', async () => {
    const small = await RawPeer.open(server.port);
    small.send(frame(HEADERS, END_HEADERS, 1, requestBlock('SetSession')));
    small.send(frame(DATA, 0, 1, heldBody(10_000)));
    const holders = await Promise.all([1, 2].map(() => RawPeer.open(server.port)));
    for (const peer of holders) {
      const frames: Buffer[] = [];
      for (let id = 1; id <= 13; id += 2) {
        frames.push(frame(HEADERS, END_HEADERS, id, requestBlock('SetSession')));
        frames.push(frame(DATA, 0, id, heldBody(16_000)), frame(DATA, 0, id, Buffer.alloc(16_000)));
      }
      peer.send(Buffer.concat(frames));
    }
    const code = await Promise.race(holders.map((peer) => peer.goaway()));
    assert.equal(code, ENHANCE_YOUR_CALM, 'a holder was shed');
    small.send(frame(PING, 0, 0, Buffer.from('stillup!')));
    await small.next((f) => f.type === PING);
    for (const peer of [small, ...holders]) peer.destroy();
  });

  it('more than 8 CONTINUATION frames in one block, even empty ones, is ENHANCE_YOUR_CALM', async () => {
    const peer = await RawPeer.open(server.port);
    const frames = [frame(HEADERS, 0, 1, requestBlock('GetSession'))];
    for (let i = 0; i < 9; i++) frames.push(frame(CONTINUATION, 0, 1));
    peer.send(Buffer.concat(frames));
    assert.equal(await peer.goaway(), ENHANCE_YOUR_CALM);
    await peer.closed;
  });

  it('a SETTINGS frame of more than 32 entries, or a flood of SETTINGS, is ENHANCE_YOUR_CALM', async () => {
    const wide = await RawPeer.open(server.port);
    wide.send(frame(SETTINGS, 0, 0, Buffer.alloc(33 * 6)));
    assert.equal(await wide.goaway(), ENHANCE_YOUR_CALM);
    const flood = await RawPeer.open(server.port);
    flood.send(Buffer.concat(Array.from({ length: 150 }, () => frame(SETTINGS, 0, 0))));
    assert.equal(await flood.goaway(), ENHANCE_YOUR_CALM);
    await Promise.all([wide.closed, flood.closed]);
  });

  it('a flood of empty DATA frames (CVE-2019-9518) is ENHANCE_YOUR_CALM', async () => {
    const peer = await RawPeer.open(server.port);
    const frames = [frame(HEADERS, END_HEADERS, 1, requestBlock('SetSession'))];
    for (let i = 0; i < 1100; i++) frames.push(frame(DATA, 0, 1));
    peer.send(Buffer.concat(frames));
    assert.equal(await peer.goaway(), ENHANCE_YOUR_CALM);
    await peer.closed;
  });

  it('an empty header block is a counted stream error, not a request', async () => {
    const peer = await RawPeer.open(server.port);
    peer.send(frame(HEADERS, END_HEADERS | END_STREAM, 1));
    const reset = await peer.next((f) => f.type === RST_STREAM && f.stream === 1);
    assert.equal(resetCode(reset), 1, 'PROTOCOL_ERROR');
    peer.destroy();
  });

  it('an HPACK bomb is ENHANCE_YOUR_CALM at once', async () => {
    const peer = await RawPeer.open(server.port);
    // One 4 KB table entry, then 10,000 one-octet references to it.
    const entry = Buffer.concat([
      Buffer.from([0x40, 1]),
      Buffer.from('x'),
      Buffer.from(hpackInt(4000, 7, 0)),
      Buffer.alloc(4000, 'v'),
    ]);
    peer.send(
      frame(
        HEADERS,
        END_HEADERS | END_STREAM,
        1,
        Buffer.concat([entry, Buffer.alloc(10_000, 0xbe)]),
      ),
    );
    assert.equal(await peer.goaway(), ENHANCE_YOUR_CALM);
    await peer.closed;
  });

  it('a peer that does not read its PING acks is cut off', async () => {
    const peer = await RawPeer.open(server.port);
    peer.stopReading();
    // 2.4 million PINGs: far more acks than the socket buffers between us hold.
    const burst = Buffer.concat(
      Array.from({ length: 4096 }, () => frame(PING, 0, 0, Buffer.alloc(8))),
    );
    for (let sent = 0; sent < 600; sent++) {
      peer.send(burst);
      await new Promise((resolve) => setImmediate(resolve));
    }
    peer.resumeReading();
    assert.ok(await peer.closesWithin(20_000), 'the server closed the connection');
    assert.ok(
      peer.frames.filter((f) => f.type === PING).length < 2_000_000,
      'it did not answer them all',
    );
  });

  it('a peer that stops reading its replies is dropped after the write-stall timeout', async () => {
    // A session of 60 KB read over and over: the replies pile up unread.
    const grpc = rawClient(server.address);
    await grpc.call('SetSession', {
      session_key: 'stall',
      fleet_list_response: Buffer.alloc(60_000),
    });
    grpc.close();
    const peer = await RawPeer.open(server.port);
    peer.stopReading();
    for (let id = 1; id < 2 * 400; id += 2) {
      peer.send(
        Buffer.concat([
          frame(HEADERS, END_HEADERS, id, requestBlock('GetSession')),
          frame(DATA, END_STREAM, id, keyMessage('stall')),
        ]),
      );
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    // Past the stall timeout (300 ms) and a tick (1 s), with room for a busy machine.
    await new Promise((resolve) => setTimeout(resolve, 2500));
    peer.resumeReading();
    assert.ok(await peer.closesWithin(20_000), 'the server dropped the connection');
    const replies = peer.frames.filter((f) => f.type === HEADERS && (f.flags & END_STREAM) !== 0);
    assert.ok(replies.length < 400, `${replies.length} of 400 calls were answered`);
  });

  it('a connection that never sends its preface is closed after the handshake timeout', async () => {
    const socket = connect(server.port, '127.0.0.1');
    socket.resume();
    await new Promise((resolve) => socket.once('close', resolve));
  });

  it('a connection with no stream for the idle timeout gets GOAWAY NO_ERROR', async () => {
    const peer = await RawPeer.open(server.port);
    assert.equal(await peer.goaway(), NO_ERROR);
    peer.destroy();
  });

  it('a request written one byte at a time is served', async () => {
    const peer = await RawPeer.open(server.port);
    const request = Buffer.concat([
      frame(HEADERS, END_HEADERS, 1, requestBlock('SetSession')),
      frame(DATA, END_STREAM, 1, keyMessage('trickled')),
    ]);
    for (const byte of request) {
      peer.send(Buffer.from([byte]));
      await new Promise((resolve) => setImmediate(resolve));
    }
    assert.equal(await peer.grpcStatus(1), '0');
    peer.destroy();
  });

  it('a request with trailers holding a pseudo-header is a stream error', async () => {
    const peer = await RawPeer.open(server.port);
    peer.send(frame(HEADERS, END_HEADERS, 1, requestBlock('GetSession')));
    peer.send(
      frame(HEADERS, END_HEADERS | END_STREAM, 1, encodeHeaders([[':path', `/${SERVICE_NAME}/x`]])),
    );
    const reset = await peer.next((f) => f.type === RST_STREAM && f.stream === 1);
    assert.equal(resetCode(reset), 1, 'PROTOCOL_ERROR');
    assert.ok(!peer.frames.some((f) => f.type === GOAWAY));
    peer.destroy();
  });
});

describe('HTTP/2 connection limit', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ env: { GRPC_TRANSPORT: 'lean', H2_MAX_CONNECTIONS: '3' } });
  });

  after(() => server.close());

  it('refuses connections past H2_MAX_CONNECTIONS', async () => {
    const peers: RawPeer[] = [];
    let refused: RawPeer | undefined;
    while (refused === undefined && peers.length <= 3) {
      const peer = await RawPeer.open(server.port);
      peer.send(frame(PING, 0, 0, Buffer.from('anybody?')));
      await Promise.race([peer.closed, peer.next((f) => f.type === PING).catch(() => undefined)]);
      if (peer.isClosed) refused = peer;
      else peers.push(peer);
    }
    assert.ok(refused, 'a connection was refused');
    assert.equal(
      refused.frames.length,
      0,
      `the refused connection got nothing: ${JSON.stringify(refused.frames.map((f) => [f.type, f.payload.toString('hex')]))} after ${peers.length}`,
    );
    assert.ok(peers.length <= 3, `${peers.length} connections were served`);
    for (const peer of peers) peer.destroy();
  });
});

describe('HTTP/2 penalty for an address whose connections were cut off', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ env: { GRPC_TRANSPORT: 'lean', H2_ABUSE_PENALTY: '2s' } });
  });

  after(() => server.close());

  it('reads a new connection from it only after a delay; connections already open go on', async () => {
    const bystander = await RawPeer.open(server.port);
    await bystander.next((f) => f.type === SETTINGS);
    const flood = await RawPeer.open(server.port);
    flood.send(Buffer.concat(Array.from({ length: 150 }, () => frame(SETTINGS, 0, 0))));
    assert.equal(await flood.goaway(), ENHANCE_YOUR_CALM);
    const started = Date.now();
    const next = await RawPeer.open(server.port);
    await next.next((f) => f.type === SETTINGS);
    assert.ok(
      Date.now() - started >= 90,
      `the new connection was read after ${Date.now() - started} ms`,
    );
    bystander.send(frame(PING, 0, 0, Buffer.from('bystand!')));
    await bystander.next((f) => f.type === PING);
    for (const peer of [bystander, flood, next]) peer.destroy();
  });
});

async function waitUntil(check: () => boolean | Promise<boolean>, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
