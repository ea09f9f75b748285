import type { Socket } from 'node:net';
import { SocketBatch } from '../../socket-batch.ts';
import {
  encodeHeaders,
  HeaderListTooLarge,
  HpackDecoder,
  HpackError,
  MalformedHeaderList,
} from './hpack.ts';
import { OpenStreams } from './open-streams.ts';

/**
 * The server side of one HTTP/2 connection (RFC 9113) on a socket, reduced to
 * what a gRPC server needs: streams the client opens, flow control both ways,
 * SETTINGS, PING, GOAWAY and RST_STREAM. No server push, no priorities (they
 * are parsed and ignored, as the RFC allows).
 *
 * Why not node:http2: its JS layer (a Duplex stream and an event chain per
 * HTTP/2 stream, header objects built in C++ and copied to JS, one socket
 * write per frame group) cost more CPU per gRPC call than the rest of the
 * service together. Here a stream is a small object, every frame the server
 * sends goes into one arena, and the arena is written to the socket once per
 * turn of the event loop: the replies of all the calls that finished in that
 * turn go out in one write.
 */

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const DATA = 0x0;
const HEADERS = 0x1;
const PRIORITY = 0x2;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PUSH_PROMISE = 0x5;
const PING = 0x6;
const GOAWAY = 0x7;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;

const END_STREAM = 0x1;
const ACK = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY_FLAG = 0x20;

const SETTINGS_HEADER_TABLE_SIZE = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
const SETTINGS_MAX_FRAME_SIZE = 0x5;
const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

/** HTTP/2 error codes (RFC 9113 section 7). */
const H2Error = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  ENHANCE_YOUR_CALM: 0xb,
} as const;

const FRAME_HEADER_BYTES = 9;
const DEFAULT_WINDOW = 65_535;
const MAX_WINDOW = 2 ** 31 - 1;
/** What we accept: the protocol's default, so we never advertise it. */
const MAX_RECEIVE_FRAME = 16_384;
const HEADER_TABLE_BYTES = 4096;
/** The connection window we keep open for the peer; replenished as data arrives. */
const CONNECTION_WINDOW = 16 * 1024 * 1024;
/** Stream resets a peer may send: a burst, then a steady rate (nghttp2's defaults, CVE-2023-44487). */
const RESET_BURST = 1000;
const RESETS_PER_SECOND = 33;
/** A peer that stops reading while we owe it this much output is cut off. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024;
const HEADERS_TOO_LARGE = encodeHeaders([[':status', '431']]);

export interface ConnectionOptions {
  /** Our per-stream receive window: room for one whole request message. */
  readonly initialWindowSize: number;
  readonly maxConcurrentStreams: number;
  readonly maxHeaderListSize: number;
  /** A client opened a stream; `headers` hold its request headers, pseudo-headers included. */
  readonly onStream: (stream: H2Stream, headers: Record<string, string>) => void;
}

/** What a stream reports to the code serving it. */
export interface StreamHandler {
  /** A chunk of the request body. */
  requestData(chunk: Buffer): void;
  /** The client has sent all of its request. */
  requestEnd(): void;
  /** The stream ended before the server finished its reply: reset by the client or the connection was lost. */
  streamReset(): void;
}

const ignoreStream: StreamHandler = { requestData() {}, requestEnd() {}, streamReset() {} };

/** One request/response exchange on a connection, as the server sees it. */
export class H2Stream {
  handler: StreamHandler = ignoreStream;
  headersSent = false;
  /** No more frames go out on it: the reply is complete or the stream was reset. */
  closed = false;
  remoteEnded = false;
  sendWindow: number;
  receiveUnacknowledged = 0;
  /** Data waiting for flow-control window, and the trailers to send after it. */
  pending: Buffer[] = [];
  pendingTrailers: Buffer | undefined;

  constructor(
    readonly id: number,
    readonly connection: Http2Connection,
    sendWindow: number,
  ) {
    this.sendWindow = sendWindow;
  }

  /** Sends the response headers (an HPACK block); `endStream` makes it a trailers-only reply. */
  respond(block: Buffer, endStream: boolean): void {
    if (this.closed) return;
    this.headersSent = true;
    this.connection.sendHeaders(this, block, endStream);
  }

  /** Sends body bytes, within the flow-control windows; the rest waits for WINDOW_UPDATE. */
  write(data: Buffer): void {
    if (this.closed) return;
    this.connection.sendData(this, data);
  }

  /** Sends the trailers (an HPACK block) after any data still waiting for window. */
  end(trailers: Buffer): void {
    if (this.closed) return;
    if (this.pending.length > 0) this.pendingTrailers = trailers;
    else this.connection.sendHeaders(this, trailers, true);
  }
}

/**
 * Frame parsing and the connection's state. The reading side is a loop over
 * whole frames in the bytes received; a frame cut by a chunk boundary waits
 * for the next chunk.
 */
export class Http2Connection {
  readonly #socket: Socket;
  readonly #options: ConnectionOptions;
  readonly #decoder = new HpackDecoder(HEADER_TABLE_BYTES);
  readonly #streams = new OpenStreams<H2Stream>();
  #input: Buffer | undefined;
  #prefaceSeen = false;
  #settingsSeen = false;
  #lastStreamId = 0;
  /** The peer's settings and the connection's flow-control state. */
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerMaxFrame = 16_384;
  #sendWindow = DEFAULT_WINDOW;
  #receiveUnacknowledged = 0;
  /** Streams with data waiting for window, in the order they blocked (an array, for the reason OpenStreams gives). */
  #blocked: H2Stream[] = [];
  /** A header block split over CONTINUATION frames. */
  #continuation: { stream: number; flags: number; parts: Buffer[]; bytes: number } | undefined;
  #resetTokens = RESET_BURST;
  #resetRefilledAt = Date.now();
  /** GOAWAY sent: no new streams; the connection ends when the last stream does. */
  #draining = false;
  #destroyed = false;
  readonly #output: SocketBatch;

  constructor(socket: Socket, options: ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#output = new SocketBatch(socket, MAX_UNSENT_BYTES);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.#closed());
    this.#sendSettings();
  }

  /**
   * Graceful close: GOAWAY naming the last stream we took, so the client
   * retries later ones elsewhere; the socket ends once the open streams end.
   */
  drain(): void {
    if (this.#draining || this.#destroyed) return;
    this.#draining = true;
    this.#goaway(H2Error.NO_ERROR);
    this.#endIfIdle();
  }

  destroy(): void {
    this.#socket.destroy();
  }

  sendHeaders(stream: H2Stream, block: Buffer, endStream: boolean): void {
    // One HEADERS frame up to the peer's frame size, then CONTINUATION frames.
    const max = this.#peerMaxFrame;
    const flags = endStream ? END_STREAM : 0;
    if (block.length <= max) this.#frame(HEADERS, flags | END_HEADERS, stream.id, block);
    else {
      this.#frame(HEADERS, flags, stream.id, block.subarray(0, max));
      for (let at = max; at < block.length; at += max) {
        const last = at + max >= block.length;
        this.#frame(CONTINUATION, last ? END_HEADERS : 0, stream.id, block.subarray(at, at + max));
      }
    }
    if (endStream) this.#localEnd(stream);
  }

  sendData(stream: H2Stream, data: Buffer): void {
    if (stream.pending.length > 0) {
      stream.pending.push(data);
      return;
    }
    const sent = this.#sendWithinWindow(stream, data);
    if (sent < data.length) {
      stream.pending.push(data.subarray(sent));
      this.#blocked.push(stream);
    }
  }

  /** Sends as much of `data` as the windows allow; returns how many bytes went. */
  #sendWithinWindow(stream: H2Stream, data: Buffer): number {
    let sent = 0;
    while (sent < data.length) {
      const room = Math.min(stream.sendWindow, this.#sendWindow, this.#peerMaxFrame);
      if (room <= 0) break;
      const size = Math.min(room, data.length - sent);
      this.#frame(DATA, 0, stream.id, data.subarray(sent, sent + size));
      stream.sendWindow -= size;
      this.#sendWindow -= size;
      sent += size;
    }
    return sent;
  }

  /** After a WINDOW_UPDATE: sends what waited for it, in the order streams blocked. */
  #resumeBlocked(): void {
    if (this.#blocked.length === 0) return;
    const blocked = this.#blocked;
    this.#blocked = [];
    for (const stream of blocked) {
      if (stream.closed) continue;
      while (stream.pending.length > 0 && this.#sendWindow > 0) {
        const data = stream.pending[0] as Buffer;
        const sent = this.#sendWithinWindow(stream, data);
        if (sent < data.length) {
          stream.pending[0] = data.subarray(sent);
          break;
        }
        stream.pending.shift();
      }
      if (stream.pending.length > 0) {
        this.#blocked.push(stream);
        continue;
      }
      const trailers = stream.pendingTrailers;
      if (trailers) {
        stream.pendingTrailers = undefined;
        this.sendHeaders(stream, trailers, true);
      }
    }
  }

  /** Our half of the stream is done; a client still sending is asked to stop (RFC 9113 8.1). */
  #localEnd(stream: H2Stream): void {
    stream.closed = true;
    if (!stream.remoteEnded) this.#rstStream(stream.id, H2Error.NO_ERROR);
    this.#forget(stream);
  }

  /** A stream error: the client gets RST_STREAM, the handler is told. */
  #resetStream(stream: H2Stream, code: number): void {
    if (stream.closed) return;
    stream.closed = true;
    this.#rstStream(stream.id, code);
    this.#forget(stream);
    stream.handler.streamReset();
  }

  #forget(stream: H2Stream): void {
    if (stream.pending.length > 0) {
      stream.pending = [];
      const at = this.#blocked.indexOf(stream);
      if (at >= 0) this.#blocked.splice(at, 1);
    }
    if (this.#streams.delete(stream)) this.#endIfIdle();
  }

  #endIfIdle(): void {
    if (this.#draining && this.#streams.size === 0 && !this.#destroyed) {
      this.#output.flush();
      this.#socket.end();
    }
  }

  #closed(): void {
    this.#destroyed = true;
    const streams = this.#streams.takeAll();
    this.#blocked = [];
    for (const stream of streams) {
      stream.closed = true;
      stream.handler.streamReset();
    }
  }

  // --- Reading ---

  #receive(chunk: Buffer): void {
    let input = this.#input ? Buffer.concat([this.#input, chunk]) : chunk;
    this.#input = undefined;
    if (!this.#prefaceSeen) {
      if (input.length < PREFACE.length) {
        if (!PREFACE.subarray(0, input.length).equals(input)) this.destroy();
        else this.#input = input;
        return;
      }
      if (!input.subarray(0, PREFACE.length).equals(PREFACE)) {
        this.destroy();
        return;
      }
      this.#prefaceSeen = true;
      input = input.subarray(PREFACE.length);
    }
    let at = 0;
    while (input.length - at >= FRAME_HEADER_BYTES && !this.#destroyed) {
      const length = input.readUIntBE(at, 3);
      if (length > MAX_RECEIVE_FRAME) {
        this.#fail(H2Error.FRAME_SIZE_ERROR);
        return;
      }
      const end = at + FRAME_HEADER_BYTES + length;
      if (end > input.length) break;
      const type = input[at + 3] as number;
      const flags = input[at + 4] as number;
      const streamId = input.readUInt32BE(at + 5) & 0x7fff_ffff;
      const payload = input.subarray(at + FRAME_HEADER_BYTES, end);
      at = end;
      if (!this.#onFrame(type, flags, streamId, payload)) return;
    }
    if (at < input.length && !this.#destroyed) this.#input = input.subarray(at);
  }

  /** Handles one frame; false when it ended the connection. */
  #onFrame(type: number, flags: number, streamId: number, payload: Buffer): boolean {
    if (!this.#settingsSeen && type !== SETTINGS) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (this.#continuation && type !== CONTINUATION) return this.#fail(H2Error.PROTOCOL_ERROR);
    switch (type) {
      case DATA:
        return this.#onData(flags, streamId, payload);
      case HEADERS:
        return this.#onHeaders(flags, streamId, payload);
      case CONTINUATION:
        return this.#onContinuation(flags, streamId, payload);
      case PRIORITY:
        return streamId === 0 || payload.length !== 5 ? this.#fail(H2Error.PROTOCOL_ERROR) : true;
      case RST_STREAM:
        return this.#onRstStream(streamId, payload);
      case SETTINGS:
        return this.#onSettings(flags, streamId, payload);
      case PUSH_PROMISE:
        return this.#fail(H2Error.PROTOCOL_ERROR);
      case PING:
        if (streamId !== 0 || payload.length !== 8) return this.#fail(H2Error.PROTOCOL_ERROR);
        if ((flags & ACK) === 0) this.#frame(PING, ACK, 0, payload);
        return true;
      case GOAWAY:
        if (streamId !== 0) return this.#fail(H2Error.PROTOCOL_ERROR);
        this.drain();
        return true;
      case WINDOW_UPDATE:
        return this.#onWindowUpdate(streamId, payload);
      default:
        return true;
    }
  }

  #onData(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId === 0) return this.#fail(H2Error.PROTOCOL_ERROR);
    // Padding counts against flow control like the data it pads.
    this.#acknowledgeConnection(payload.length);
    const body = unpad(flags, payload);
    if (body === undefined) return this.#fail(H2Error.PROTOCOL_ERROR);
    const stream = this.#streams.get(streamId);
    if (!stream) {
      // A stream that has ended (frames in flight when we closed it are
      // ignored) or that was never opened.
      return streamId <= this.#lastStreamId || this.#fail(H2Error.PROTOCOL_ERROR);
    }
    if (stream.remoteEnded) {
      this.#resetStream(stream, H2Error.STREAM_CLOSED);
      return true;
    }
    if (flags & END_STREAM) stream.remoteEnded = true;
    else {
      stream.receiveUnacknowledged += payload.length;
      if (stream.receiveUnacknowledged >= this.#options.initialWindowSize / 2) {
        this.#windowUpdate(streamId, stream.receiveUnacknowledged);
        stream.receiveUnacknowledged = 0;
      }
    }
    if (body.length > 0) stream.handler.requestData(body);
    if (stream.remoteEnded && !stream.closed) {
      stream.handler.requestEnd();
      if (stream.closed) this.#forget(stream);
    }
    return true;
  }

  #acknowledgeConnection(bytes: number): void {
    this.#receiveUnacknowledged += bytes;
    if (this.#receiveUnacknowledged >= CONNECTION_WINDOW / 2) {
      this.#windowUpdate(0, this.#receiveUnacknowledged);
      this.#receiveUnacknowledged = 0;
    }
  }

  #onHeaders(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId === 0 || (streamId & 1) === 0) return this.#fail(H2Error.PROTOCOL_ERROR);
    let block = unpad(flags, payload);
    if (block === undefined) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (flags & PRIORITY_FLAG) {
      if (block.length < 5) return this.#fail(H2Error.PROTOCOL_ERROR);
      block = block.subarray(5);
    }
    if ((flags & END_HEADERS) === 0) {
      this.#continuation = { stream: streamId, flags, parts: [block], bytes: block.length };
      return true;
    }
    return this.#onHeaderBlock(flags, streamId, block);
  }

  #onContinuation(flags: number, streamId: number, payload: Buffer): boolean {
    const pending = this.#continuation;
    if (!pending || pending.stream !== streamId) return this.#fail(H2Error.PROTOCOL_ERROR);
    pending.parts.push(payload);
    pending.bytes += payload.length;
    // A header block may not grow without bound (the CONTINUATION flood).
    if (pending.bytes > 2 * this.#options.maxHeaderListSize) {
      return this.#fail(H2Error.ENHANCE_YOUR_CALM);
    }
    if ((flags & END_HEADERS) === 0) return true;
    this.#continuation = undefined;
    return this.#onHeaderBlock(pending.flags, streamId, Buffer.concat(pending.parts));
  }

  #onHeaderBlock(flags: number, streamId: number, block: Buffer): boolean {
    // Every block is decoded, even one we then ignore: HPACK state is shared.
    let headers: Record<string, string>;
    try {
      headers = this.#decoder.decode(block, this.#options.maxHeaderListSize);
    } catch (error) {
      if (error instanceof HeaderListTooLarge) return this.#refuseHeaders(flags, streamId);
      if (error instanceof MalformedHeaderList) return this.#malformed(streamId);
      if (error instanceof HpackError) return this.#fail(H2Error.COMPRESSION_ERROR);
      throw error;
    }
    const existing = this.#streams.get(streamId);
    if (existing) {
      // Trailers: they must end the stream; gRPC servers have no use for them.
      if ((flags & END_STREAM) === 0 || existing.remoteEnded) {
        return this.#fail(H2Error.PROTOCOL_ERROR);
      }
      existing.remoteEnded = true;
      existing.handler.requestEnd();
      if (existing.closed) this.#forget(existing);
      return true;
    }
    // Headers on a stream that has ended: frames in flight when it closed.
    if (streamId <= this.#lastStreamId) return true;
    this.#lastStreamId = streamId;
    if (this.#draining) return true;
    if (this.#streams.size >= this.#options.maxConcurrentStreams) {
      this.#rstStream(streamId, H2Error.REFUSED_STREAM);
      return true;
    }
    const stream = new H2Stream(streamId, this, this.#peerInitialWindow);
    stream.remoteEnded = (flags & END_STREAM) !== 0;
    this.#streams.add(stream);
    this.#options.onStream(stream, headers);
    if (stream.remoteEnded && !stream.closed) stream.handler.requestEnd();
    if (stream.closed) this.#forget(stream);
    return true;
  }

  /** Headers over our limit on a new stream: HTTP 431 (RFC 9113 10.5.1); the connection goes on. */
  #refuseHeaders(flags: number, streamId: number): boolean {
    if (streamId <= this.#lastStreamId) return this.#fail(H2Error.PROTOCOL_ERROR);
    this.#lastStreamId = streamId;
    this.#frame(HEADERS, END_HEADERS | END_STREAM, streamId, HEADERS_TOO_LARGE);
    if ((flags & END_STREAM) === 0) this.#rstStream(streamId, H2Error.NO_ERROR);
    return true;
  }

  /** A malformed request or trailers (RFC 9113 8.1.1): a stream error; the connection goes on. */
  #malformed(streamId: number): boolean {
    const existing = this.#streams.get(streamId);
    if (existing) this.#resetStream(existing, H2Error.PROTOCOL_ERROR);
    else if (streamId > this.#lastStreamId) {
      this.#lastStreamId = streamId;
      this.#rstStream(streamId, H2Error.PROTOCOL_ERROR);
    }
    return true;
  }

  #onRstStream(streamId: number, payload: Buffer): boolean {
    if (streamId === 0 || payload.length !== 4) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (streamId > this.#lastStreamId) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (!this.#takeResetToken()) return this.#fail(H2Error.ENHANCE_YOUR_CALM);
    const stream = this.#streams.get(streamId);
    if (!stream) return true;
    stream.closed = true;
    this.#forget(stream);
    stream.handler.streamReset();
    return true;
  }

  #takeResetToken(): boolean {
    const now = Date.now();
    const refill = Math.floor(((now - this.#resetRefilledAt) * RESETS_PER_SECOND) / 1000);
    if (refill > 0) {
      this.#resetTokens = Math.min(RESET_BURST, this.#resetTokens + refill);
      this.#resetRefilledAt = now;
    }
    if (this.#resetTokens === 0) return false;
    this.#resetTokens--;
    return true;
  }

  #onSettings(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId !== 0) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (flags & ACK) {
      return payload.length === 0 || this.#fail(H2Error.FRAME_SIZE_ERROR);
    }
    if (payload.length % 6 !== 0) return this.#fail(H2Error.FRAME_SIZE_ERROR);
    this.#settingsSeen = true;
    for (let at = 0; at < payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (id === SETTINGS_INITIAL_WINDOW_SIZE) {
        if (value > MAX_WINDOW) return this.#fail(H2Error.FLOW_CONTROL_ERROR);
        const delta = value - this.#peerInitialWindow;
        this.#peerInitialWindow = value;
        for (const stream of this.#streams.values()) {
          stream.sendWindow += delta;
          if (stream.sendWindow > MAX_WINDOW) return this.#fail(H2Error.FLOW_CONTROL_ERROR);
        }
      } else if (id === SETTINGS_MAX_FRAME_SIZE) {
        if (value < 16_384 || value > 16_777_215) return this.#fail(H2Error.PROTOCOL_ERROR);
        this.#peerMaxFrame = value;
      }
      // HEADER_TABLE_SIZE does not concern an encoder that never indexes;
      // MAX_CONCURRENT_STREAMS limits pushes, which we never make.
    }
    this.#frame(SETTINGS, ACK, 0, undefined);
    this.#resumeBlocked();
    return true;
  }

  #onWindowUpdate(streamId: number, payload: Buffer): boolean {
    if (payload.length !== 4) return this.#fail(H2Error.FRAME_SIZE_ERROR);
    const increment = payload.readUInt32BE(0) & 0x7fff_ffff;
    if (streamId === 0) {
      if (increment === 0) return this.#fail(H2Error.PROTOCOL_ERROR);
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW) return this.#fail(H2Error.FLOW_CONTROL_ERROR);
    } else {
      const stream = this.#streams.get(streamId);
      if (!stream) return streamId <= this.#lastStreamId || this.#fail(H2Error.PROTOCOL_ERROR);
      if (increment === 0 || stream.sendWindow + increment > MAX_WINDOW) {
        const code = increment === 0 ? H2Error.PROTOCOL_ERROR : H2Error.FLOW_CONTROL_ERROR;
        this.#resetStream(stream, code);
        return true;
      }
      stream.sendWindow += increment;
    }
    this.#resumeBlocked();
    return true;
  }

  /** A connection error: GOAWAY with the code, then the socket goes. Returns false for #onFrame. */
  #fail(code: number): false {
    if (this.#destroyed) return false;
    this.#draining = true;
    this.#goaway(code);
    this.#output.flush();
    this.#destroyed = true;
    this.#socket.destroySoon();
    return false;
  }

  // --- Writing ---

  #sendSettings(): void {
    const settings = Buffer.allocUnsafe(24);
    const entries: Array<[number, number]> = [
      [SETTINGS_HEADER_TABLE_SIZE, HEADER_TABLE_BYTES],
      [SETTINGS_MAX_CONCURRENT_STREAMS, this.#options.maxConcurrentStreams],
      [SETTINGS_INITIAL_WINDOW_SIZE, this.#options.initialWindowSize],
      [SETTINGS_MAX_HEADER_LIST_SIZE, this.#options.maxHeaderListSize],
    ];
    entries.forEach(([id, value], index) => {
      settings.writeUInt16BE(id, index * 6);
      settings.writeUInt32BE(value, index * 6 + 2);
    });
    this.#frame(SETTINGS, 0, 0, settings);
    this.#windowUpdate(0, CONNECTION_WINDOW - DEFAULT_WINDOW);
  }

  #goaway(code: number): void {
    const payload = Buffer.allocUnsafe(8);
    payload.writeUInt32BE(this.#lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    this.#frame(GOAWAY, 0, 0, payload);
  }

  #rstStream(streamId: number, code: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(code, 0);
    this.#frame(RST_STREAM, 0, streamId, payload);
  }

  #windowUpdate(streamId: number, increment: number): void {
    const payload = Buffer.allocUnsafe(4);
    payload.writeUInt32BE(increment, 0);
    this.#frame(WINDOW_UPDATE, 0, streamId, payload);
  }

  /** Appends one frame to the output; it goes out at the end of this turn of the event loop. */
  #frame(type: number, flags: number, streamId: number, payload: Buffer | undefined): void {
    if (this.#destroyed) return;
    const length = payload ? payload.length : 0;
    const at = this.#output.claim(FRAME_HEADER_BYTES);
    const arena = this.#output.arena;
    arena[at] = length >>> 16;
    arena[at + 1] = (length >>> 8) & 0xff;
    arena[at + 2] = length & 0xff;
    arena[at + 3] = type;
    arena[at + 4] = flags;
    arena.writeUInt32BE(streamId, at + 5);
    if (payload) this.#output.append(payload);
  }
}

/** The payload of a frame that may be PADDED, without the padding; undefined when malformed. */
function unpad(flags: number, payload: Buffer): Buffer | undefined {
  if ((flags & PADDED) === 0) return payload;
  if (payload.length === 0) return undefined;
  const padding = payload[0] as number;
  if (padding >= payload.length) return undefined;
  return payload.subarray(1, payload.length - padding);
}
