import type { Socket } from 'node:net';
import { SocketBatch } from '../socket-batch.ts';
import { ReceiveWindow } from './flow-control.ts';
import { FrameReader, OVERSIZE, STOPPED, unpad } from './frame-reader.ts';
import { FrameWriter, uint32 } from './frame-writer.ts';
import {
  DEFAULT_HEADER_TABLE_SIZE,
  DEFAULT_MAX_FRAME,
  DEFAULT_WINDOW,
  Flag,
  FRAME_HEADER_BYTES,
  FrameType,
  H2Error,
  MAX_WINDOW,
  PREFACE,
  Setting,
} from './frames.ts';
import { type HeaderFields, HeaderListTooLarge, HpackDecoder, HpackEncoder } from './hpack.ts';
import { RateBudget } from './limits.ts';
import { OpenStreams } from './open-streams.ts';
import { applyHeaderTableSize, readSettings } from './settings.ts';

/**
 * The client side of one HTTP/2 connection (RFC 9113), reduced to what a
 * gRPC client needs: streams we open with a request sent whole, responses
 * read as they come, flow control both ways, SETTINGS, PING (keepalive),
 * GOAWAY and RST_STREAM. It shares the frame reader and writer, HPACK and the
 * flow-control bookkeeping with the server role (connection.ts).
 *
 * The peer is not trusted: it cannot make us hold more than one frame of
 * the size we accept, a header list past our cap, or data past the windows
 * we gave; floods of PING, SETTINGS or empty frames end the connection. Any
 * connection error fails every open stream with a ConnectionLost the caller
 * can type, and no stream outlives its caller's interest (cancel).
 */

/** Our SETTINGS_HEADER_TABLE_SIZE, and the most of the server's table our encoder uses. */
const HEADER_TABLE_BYTES = DEFAULT_HEADER_TABLE_SIZE;
/** Request header fields that repeat on every call: worth a place in the server's HPACK table. */
const INDEXED_REQUEST_FIELDS = [
  ':authority',
  ':path',
  'content-type',
  'te',
  'user-agent',
  'authorization',
];
/** A hard stop for a server that does not read what we send. */
const MAX_UNSENT_BYTES = 64 * 1024 * 1024;
/** CONTINUATION frames in one header block, whatever their size (nghttp2's default). */
const MAX_CONTINUATIONS = 8;
/** The highest stream id a client may open (odd, below 2^31). */
const LAST_STREAM_ID = 2 ** 31 - 1;

export interface ClientConnectionOptions {
  /** Decoded header list we accept in one block (our SETTINGS_MAX_HEADER_LIST_SIZE). */
  readonly maxHeaderListBytes: number;
  /** What the server may send on one stream before we give window back. */
  readonly streamWindowBytes: number;
  /** What the server may send on the connection before we give window back. */
  readonly connectionWindowBytes: number;
  /** Send a PING this often, and drop the connection when its ACK takes longer than timeoutMs. */
  readonly keepalive?: { readonly timeMs: number; readonly timeoutMs: number } | undefined;
  /** The server's first SETTINGS must arrive within this. */
  readonly handshakeTimeoutMs: number;
  /** The connection has ended: every stream it had was told. */
  readonly onClose?: (connection: ClientConnection) => void;
  /** The server sent GOAWAY: no new streams go on this connection. */
  readonly onGoaway?: (connection: ClientConnection) => void;
}

/** Why a stream ended before its response did. */
export type StreamEnd =
  /** The server reset the stream; `code` is its H2Error code. REFUSED_STREAM means it did no work. */
  | { readonly kind: 'reset'; readonly code: number }
  /** A GOAWAY named a last stream below this one: the server never processed it. */
  | { readonly kind: 'refused' }
  /** The connection failed or closed; the request may or may not have been processed. */
  | { readonly kind: 'lost'; readonly reason: string }
  /** The response broke a rule of ours (header list too large, data past the window). */
  | { readonly kind: 'protocol'; readonly reason: string };

/** What a stream reports to the code that opened it. */
export interface ResponseHandler {
  /** A header block: the response headers, then (with endStream) the trailers. */
  headers(headers: Record<string, string>, endStream: boolean): void;
  /** A chunk of the response body; `endStream` when it was the last. */
  data(chunk: Buffer, endStream: boolean): void;
  /** The stream ended without a complete response. */
  failed(end: StreamEnd): void;
}

/** One request/response exchange, as the client sees it. */
export class ClientStream {
  id = 0;
  sendWindow = 0;
  readonly receiveWindow: ReceiveWindow;
  /** Request bytes waiting for window; the request ends once they are sent. */
  pending: Buffer | undefined;
  closed = false;
  /** The response's END_STREAM has arrived. */
  remoteEnded = false;

  constructor(
    readonly handler: ResponseHandler,
    readonly fields: HeaderFields,
    readonly body: Buffer,
    windowBytes: number,
  ) {
    this.receiveWindow = new ReceiveWindow(windowBytes, windowBytes / 2, 0);
  }
}

export class ClientConnection {
  readonly #socket: Socket;
  readonly #options: ClientConnectionOptions;
  readonly #output: SocketBatch;
  readonly #writer: FrameWriter;
  readonly #reader = new FrameReader(DEFAULT_MAX_FRAME);
  readonly #decoder = new HpackDecoder(HEADER_TABLE_BYTES);
  readonly #encoder = new HpackEncoder(INDEXED_REQUEST_FIELDS, HEADER_TABLE_BYTES);
  readonly #streams = new OpenStreams<ClientStream>();
  /** Streams waiting for the server's MAX_CONCURRENT_STREAMS to allow them. */
  #queued: ClientStream[] = [];
  /** Streams with request bytes waiting for window. */
  #blocked: ClientStream[] = [];
  #nextStreamId = 1;

  #settingsSeen = false;
  #peerMaxConcurrent = Number.POSITIVE_INFINITY;
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerMaxFrame = DEFAULT_MAX_FRAME;
  #sendWindow = DEFAULT_WINDOW;
  readonly #receiveWindow: ReceiveWindow;
  #continuation: { stream: number; flags: number; parts: Buffer[]; frames: number } | undefined;

  readonly #pings = new RateBudget(100, 10);
  readonly #settingsFrames = new RateBudget(100, 10);
  readonly #emptyFrames = new RateBudget(1000, 100);
  readonly #resets = new RateBudget(1000, 100);
  #keepaliveTimer: NodeJS.Timeout | undefined;
  #pingSentAt = 0;
  #handshakeTimer: NodeJS.Timeout | undefined;

  /** The server's GOAWAY arrived (or we are closing): no new streams. */
  #draining = false;
  #closed = false;
  #closeReason = 'the connection was closed';

  constructor(socket: Socket, options: ClientConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#output = new SocketBatch(socket, MAX_UNSENT_BYTES);
    this.#writer = new FrameWriter(this.#output);
    this.#receiveWindow = new ReceiveWindow(DEFAULT_WINDOW, options.connectionWindowBytes / 4, 0);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('error', (error: Error) => this.#lose(`the connection failed: ${error.message}`));
    socket.once('close', () => this.#lose('the server closed the connection'));
    this.#output.append(PREFACE);
    this.#writer.settings([
      [Setting.HEADER_TABLE_SIZE, HEADER_TABLE_BYTES],
      [Setting.ENABLE_PUSH, 0],
      [Setting.INITIAL_WINDOW_SIZE, options.streamWindowBytes],
      [Setting.MAX_HEADER_LIST_SIZE, options.maxHeaderListBytes],
    ]);
    const raise = options.connectionWindowBytes - DEFAULT_WINDOW;
    if (raise > 0) {
      this.#writer.windowUpdate(0, raise);
      this.#receiveWindow.raise(raise);
    }
    this.#handshakeTimer = setTimeout(() => {
      if (!this.#settingsSeen) this.#fail(H2Error.SETTINGS_TIMEOUT, 'the server sent no SETTINGS');
    }, options.handshakeTimeoutMs).unref();
    const keepalive = options.keepalive;
    if (keepalive !== undefined) {
      this.#keepaliveTimer = setInterval(() => this.#keepalive(), keepalive.timeMs).unref();
    }
  }

  /** True while new streams may open here. */
  get available(): boolean {
    return !this.#draining && !this.#closed;
  }

  /** Streams open or waiting to open. */
  get load(): number {
    return this.#streams.size + this.#queued.length;
  }

  /**
   * Opens a stream with the request `fields` and `body`, and ends our side.
   * Beyond the server's MAX_CONCURRENT_STREAMS it waits for a stream to end.
   */
  request(fields: HeaderFields, body: Buffer, handler: ResponseHandler): ClientStream {
    const stream = new ClientStream(handler, fields, body, this.#options.streamWindowBytes);
    if (this.#closed || this.#draining) {
      stream.closed = true;
      handler.failed(
        this.#closed ? { kind: 'lost', reason: this.#closeReason } : { kind: 'refused' },
      );
      return stream;
    }
    if (this.#streams.size >= this.#peerMaxConcurrent) this.#queued.push(stream);
    else this.#open(stream);
    return stream;
  }

  /** Abandons a stream: RST_STREAM CANCEL if it is open; its handler hears nothing more. */
  cancel(stream: ClientStream): void {
    if (stream.closed) return;
    stream.closed = true;
    if (stream.id === 0) {
      const at = this.#queued.indexOf(stream);
      if (at >= 0) this.#queued.splice(at, 1);
      return;
    }
    if (!stream.remoteEnded) this.#rstStream(stream.id, H2Error.CANCEL);
    this.#remove(stream);
  }

  /** Graceful close: GOAWAY, no new streams; the socket ends when the open streams do. */
  close(): void {
    if (this.#closed || this.#draining) return;
    this.#draining = true;
    this.#writer.goaway(0, H2Error.NO_ERROR);
    for (const stream of this.#queued.splice(0)) {
      stream.closed = true;
      stream.handler.failed({ kind: 'refused' });
    }
    this.#endIfIdle();
  }

  /** Ends at once; open streams fail with `reason`. */
  destroy(reason: string): void {
    this.#closeReason = reason;
    this.#socket.destroy();
    this.#lose(reason);
  }

  #open(stream: ClientStream): void {
    if (this.#nextStreamId > LAST_STREAM_ID) {
      // Out of stream ids: this connection takes no more, a new one will.
      this.#draining = true;
      stream.closed = true;
      stream.handler.failed({ kind: 'refused' });
      this.#options.onGoaway?.(this);
      this.#endIfIdle();
      return;
    }
    stream.id = this.#nextStreamId;
    this.#nextStreamId += 2;
    stream.sendWindow = this.#peerInitialWindow;
    this.#streams.add(stream);
    const block = this.#encoder.encode(stream.fields);
    const endStream = stream.body.length === 0;
    this.#writer.headers(stream.id, block, endStream, this.#peerMaxFrame);
    if (!endStream) this.#sendBody(stream, stream.body);
  }

  #sendBody(stream: ClientStream, body: Buffer): void {
    let sent = 0;
    while (sent < body.length) {
      const room = Math.min(stream.sendWindow, this.#sendWindow, this.#peerMaxFrame);
      if (room <= 0) break;
      const size = Math.min(room, body.length - sent);
      const last = sent + size === body.length;
      this.#writer.frame(
        FrameType.DATA,
        last ? Flag.END_STREAM : 0,
        stream.id,
        body.subarray(sent, sent + size),
      );
      stream.sendWindow -= size;
      this.#sendWindow -= size;
      sent += size;
    }
    if (sent < body.length) {
      stream.pending = body.subarray(sent);
      this.#blocked.push(stream);
    } else stream.pending = undefined;
  }

  #resumeBlocked(): void {
    if (this.#blocked.length === 0) return;
    const blocked = this.#blocked;
    this.#blocked = [];
    for (const stream of blocked) {
      if (!stream.closed && stream.pending !== undefined) this.#sendBody(stream, stream.pending);
    }
  }

  #remove(stream: ClientStream): void {
    this.#streams.delete(stream);
    if (stream.pending !== undefined) {
      stream.pending = undefined;
      const at = this.#blocked.indexOf(stream);
      if (at >= 0) this.#blocked.splice(at, 1);
    }
    while (this.#queued.length > 0 && this.#streams.size < this.#peerMaxConcurrent) {
      const next = this.#queued.shift() as ClientStream;
      if (!next.closed) this.#open(next);
    }
    this.#endIfIdle();
  }

  #endIfIdle(): void {
    if (this.#draining && !this.#closed && this.#streams.size === 0 && this.#queued.length === 0) {
      this.#output.flush();
      this.#socket.end();
    }
  }

  #keepalive(): void {
    if (this.#closed) return;
    const keepalive = this.#options.keepalive;
    if (keepalive === undefined) return;
    if (this.#pingSentAt > 0) {
      if (Date.now() - this.#pingSentAt > keepalive.timeoutMs) {
        this.destroy('the server did not answer a keepalive ping in time');
      }
      return;
    }
    this.#pingSentAt = Date.now();
    this.#writer.frame(FrameType.PING, 0, 0, Buffer.alloc(8));
  }

  /** A connection error of the server's making: GOAWAY with the code, then the socket goes. */
  #fail(code: number, reason: string): false {
    if (this.#closed) return false;
    this.#writer.goaway(this.#streams.size > 0 ? this.#nextStreamId - 2 : 0, code);
    this.#output.flush();
    this.#closeReason = `the server broke the HTTP/2 protocol: ${reason}`;
    this.#socket.destroySoon();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
    this.#lose(this.#closeReason);
    return false;
  }

  /** The connection is over: every stream still open fails with `reason`. */
  #lose(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#closeReason = reason;
    this.#reader.reset();
    clearTimeout(this.#handshakeTimer);
    clearInterval(this.#keepaliveTimer);
    const streams = [...this.#streams.takeAll(), ...this.#queued.splice(0)];
    this.#blocked = [];
    for (const stream of streams) {
      if (stream.closed) continue;
      stream.closed = true;
      stream.handler.failed(
        stream.id === 0 ? { kind: 'refused' } : { kind: 'lost', reason: this.#closeReason },
      );
    }
    this.#options.onClose?.(this);
  }

  // --- Reading ---

  #receive(chunk: Buffer): void {
    if (this.#closed) return;
    const stop = this.#reader.read(chunk, 0, Number.POSITIVE_INFINITY, this.#onFrame);
    if (stop === OVERSIZE) this.#fail(H2Error.FRAME_SIZE_ERROR, 'a frame larger than 16 KiB');
    else if (stop !== STOPPED) this.#checkPendingFlood();
  }

  /** The frames of one read are handled; nothing to do but keep the connection honest. */
  #checkPendingFlood(): void {
    // Frames we owe the server (acks, window updates) go out at the end of the turn.
    if (this.#socket.writableLength > MAX_UNSENT_BYTES) {
      this.destroy('the server does not read what the client sends');
    }
  }

  readonly #onFrame = (input: Buffer, at: number): boolean =>
    this.#handleFrame(input, at) && !this.#closed;

  #handleFrame(input: Buffer, at: number): boolean {
    const length = input.readUIntBE(at, 3);
    const type = input[at + 3] as number;
    const flags = input[at + 4] as number;
    const streamId = input.readUInt32BE(at + 5) & 0x7fff_ffff;
    const payload = input.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
    if (!this.#settingsSeen && type !== FrameType.SETTINGS) {
      return this.#fail(H2Error.PROTOCOL_ERROR, 'the first frame was not SETTINGS');
    }
    if (this.#continuation && type !== FrameType.CONTINUATION) {
      return this.#fail(H2Error.PROTOCOL_ERROR, 'a header block was interrupted');
    }
    switch (type) {
      case FrameType.DATA:
        return this.#onData(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.#onHeaders(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.#onContinuation(flags, streamId, payload);
      case FrameType.RST_STREAM:
        return this.#onRstStream(streamId, payload);
      case FrameType.SETTINGS:
        return this.#onSettings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE:
        return this.#fail(H2Error.PROTOCOL_ERROR, 'PUSH_PROMISE, though we disabled push');
      case FrameType.PING:
        return this.#onPing(flags, streamId, payload);
      case FrameType.GOAWAY:
        return this.#onGoaway(streamId, payload);
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(streamId, payload);
      default:
        // PRIORITY and unknown types are ignored (RFC 9113 4.1, 5.3.2), within a budget.
        return this.#spendEmptyFrame();
    }
  }

  #spendEmptyFrame(): boolean {
    return this.#emptyFrames.take() || this.#fail(H2Error.ENHANCE_YOUR_CALM, 'a frame flood');
  }

  #onSettings(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId !== 0) return this.#fail(H2Error.PROTOCOL_ERROR, 'SETTINGS on a stream');
    if (flags & Flag.ACK) {
      return payload.length === 0 || this.#fail(H2Error.FRAME_SIZE_ERROR, 'a SETTINGS ack');
    }
    if (payload.length % 6 !== 0) return this.#fail(H2Error.FRAME_SIZE_ERROR, 'SETTINGS size');
    if (!this.#settingsFrames.take()) {
      return this.#fail(H2Error.ENHANCE_YOUR_CALM, 'a SETTINGS flood');
    }
    const settings = readSettings(payload);
    if (typeof settings === 'number') return this.#fail(settings, 'a setting out of range');
    if (!this.#settingsSeen) {
      this.#settingsSeen = true;
      clearTimeout(this.#handshakeTimer);
    }
    applyHeaderTableSize(settings, this.#encoder);
    if (settings.maxFrameSize >= 0) this.#peerMaxFrame = settings.maxFrameSize;
    if (settings.maxConcurrentStreams >= 0) this.#peerMaxConcurrent = settings.maxConcurrentStreams;
    const initialWindow = settings.initialWindowSize;
    if (initialWindow >= 0 && initialWindow !== this.#peerInitialWindow) {
      const delta = initialWindow - this.#peerInitialWindow;
      this.#peerInitialWindow = initialWindow;
      for (const stream of this.#streams.values()) {
        stream.sendWindow += delta;
        if (stream.sendWindow > MAX_WINDOW) {
          return this.#fail(H2Error.FLOW_CONTROL_ERROR, 'a window past 2^31-1');
        }
      }
    }
    this.#writer.frame(FrameType.SETTINGS, Flag.ACK, 0, undefined);
    this.#resumeBlocked();
    // A higher MAX_CONCURRENT_STREAMS lets queued streams open.
    while (this.#queued.length > 0 && this.#streams.size < this.#peerMaxConcurrent) {
      const next = this.#queued.shift() as ClientStream;
      if (!next.closed) this.#open(next);
    }
    return true;
  }

  #onPing(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId !== 0) return this.#fail(H2Error.PROTOCOL_ERROR, 'PING on a stream');
    if (payload.length !== 8) return this.#fail(H2Error.FRAME_SIZE_ERROR, 'PING size');
    if (flags & Flag.ACK) {
      this.#pingSentAt = 0;
      return true;
    }
    if (!this.#pings.take()) return this.#fail(H2Error.ENHANCE_YOUR_CALM, 'a PING flood');
    this.#writer.frame(FrameType.PING, Flag.ACK, 0, Buffer.from(payload));
    return true;
  }

  #onGoaway(streamId: number, payload: Buffer): boolean {
    if (streamId !== 0) return this.#fail(H2Error.PROTOCOL_ERROR, 'GOAWAY on a stream');
    if (payload.length < 8) return this.#fail(H2Error.FRAME_SIZE_ERROR, 'GOAWAY size');
    const lastStreamId = payload.readUInt32BE(0) & 0x7fff_ffff;
    const code = payload.readUInt32BE(4);
    this.#draining = true;
    this.#options.onGoaway?.(this);
    // Streams above the last one the server took were never processed: safe to send again.
    for (const stream of [...this.#streams.values()]) {
      if (stream.id > lastStreamId && !stream.closed) {
        stream.closed = true;
        this.#streams.delete(stream);
        stream.handler.failed({ kind: 'refused' });
      }
    }
    for (const stream of this.#queued.splice(0)) {
      stream.closed = true;
      stream.handler.failed({ kind: 'refused' });
    }
    if (code !== H2Error.NO_ERROR && this.#streams.size > 0) {
      // An error GOAWAY: the server is about to close; what it took is lost.
      this.destroy(`the server closed the connection (HTTP/2 error ${code})`);
      return false;
    }
    this.#endIfIdle();
    return true;
  }

  #onWindowUpdate(streamId: number, payload: Buffer): boolean {
    if (payload.length !== 4) return this.#fail(H2Error.FRAME_SIZE_ERROR, 'WINDOW_UPDATE size');
    const increment = payload.readUInt32BE(0) & 0x7fff_ffff;
    if (streamId === 0) {
      if (increment === 0) return this.#fail(H2Error.PROTOCOL_ERROR, 'an empty WINDOW_UPDATE');
      this.#sendWindow += increment;
      if (this.#sendWindow > MAX_WINDOW) {
        return this.#fail(H2Error.FLOW_CONTROL_ERROR, 'a window past 2^31-1');
      }
    } else {
      const stream = this.#streams.get(streamId);
      if (stream === undefined) {
        if (streamId >= this.#nextStreamId) {
          return this.#fail(H2Error.PROTOCOL_ERROR, 'WINDOW_UPDATE on an idle stream');
        }
        return this.#spendEmptyFrame();
      }
      if (increment === 0 || stream.sendWindow + increment > MAX_WINDOW) {
        this.#resetStream(stream, H2Error.FLOW_CONTROL_ERROR, 'a bad WINDOW_UPDATE');
        return this.#takeResetToken();
      }
      stream.sendWindow += increment;
    }
    this.#resumeBlocked();
    return true;
  }

  #onRstStream(streamId: number, payload: Buffer): boolean {
    if (streamId === 0) return this.#fail(H2Error.PROTOCOL_ERROR, 'RST_STREAM on stream 0');
    if (payload.length !== 4) return this.#fail(H2Error.FRAME_SIZE_ERROR, 'RST_STREAM size');
    if (streamId >= this.#nextStreamId) {
      return this.#fail(H2Error.PROTOCOL_ERROR, 'RST_STREAM on an idle stream');
    }
    if (!this.#takeResetToken()) return false;
    const stream = this.#streams.get(streamId);
    if (stream === undefined) return true;
    stream.closed = true;
    this.#remove(stream);
    stream.handler.failed({ kind: 'reset', code: payload.readUInt32BE(0) });
    return true;
  }

  #takeResetToken(): boolean {
    return this.#resets.take() || this.#fail(H2Error.ENHANCE_YOUR_CALM, 'a reset flood');
  }

  #onData(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId === 0) return this.#fail(H2Error.PROTOCOL_ERROR, 'DATA on stream 0');
    if (!this.#receiveWindow.take(payload.length)) {
      return this.#fail(H2Error.FLOW_CONTROL_ERROR, 'DATA past the connection window');
    }
    // The body is handed on (and copied or dropped) at once: the window goes back now.
    this.#giveBack(payload.length);
    const body = unpad(flags, payload);
    if (body === undefined) return this.#fail(H2Error.PROTOCOL_ERROR, 'bad DATA padding');
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (body.length === 0 && !endStream && !this.#spendEmptyFrame()) return false;
    const stream = this.#streams.get(streamId);
    if (stream === undefined) {
      if (streamId >= this.#nextStreamId) {
        return this.#fail(H2Error.PROTOCOL_ERROR, 'DATA on an idle stream');
      }
      // A stream we cancelled or that ended: frames in flight are dropped.
      return this.#spendEmptyFrame();
    }
    if (stream.remoteEnded) return this.#fail(H2Error.STREAM_CLOSED, 'DATA after END_STREAM');
    if (!stream.receiveWindow.take(payload.length)) {
      this.#resetStream(stream, H2Error.FLOW_CONTROL_ERROR, 'DATA past the stream window');
      return this.#takeResetToken();
    }
    if (endStream) this.#remoteEnd(stream);
    else {
      const increment = stream.receiveWindow.release(payload.length);
      if (increment > 0) this.#writer.windowUpdate(stream.id, increment);
    }
    stream.handler.data(body, endStream);
    return true;
  }

  #giveBack(bytes: number): void {
    const increment = this.#receiveWindow.release(bytes);
    if (increment > 0) this.#writer.windowUpdate(0, increment);
  }

  #remoteEnd(stream: ClientStream): void {
    stream.remoteEnded = true;
    stream.closed = true;
    this.#remove(stream);
  }

  /** A stream error we detected: RST_STREAM to the server, the handler is told. */
  #resetStream(stream: ClientStream, code: number, reason: string): void {
    if (stream.closed) return;
    stream.closed = true;
    this.#rstStream(stream.id, code);
    this.#remove(stream);
    stream.handler.failed({ kind: 'protocol', reason });
  }

  #rstStream(streamId: number, code: number): void {
    this.#writer.frame(FrameType.RST_STREAM, 0, streamId, uint32(code));
  }

  #onHeaders(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId === 0) return this.#fail(H2Error.PROTOCOL_ERROR, 'HEADERS on stream 0');
    let block = unpad(flags, payload);
    if (block === undefined) return this.#fail(H2Error.PROTOCOL_ERROR, 'bad HEADERS padding');
    if (flags & Flag.PRIORITY) {
      if (block.length < 5) return this.#fail(H2Error.PROTOCOL_ERROR, 'bad HEADERS priority');
      block = block.subarray(5);
    }
    if ((flags & Flag.END_HEADERS) === 0) {
      if (block.length === 0 && !this.#spendEmptyFrame()) return false;
      this.#continuation = { stream: streamId, flags, parts: [block], frames: 0 };
      return true;
    }
    return this.#onHeaderBlock(flags, streamId, block);
  }

  #onContinuation(flags: number, streamId: number, payload: Buffer): boolean {
    const pending = this.#continuation;
    if (!pending || pending.stream !== streamId) {
      return this.#fail(H2Error.PROTOCOL_ERROR, 'an unexpected CONTINUATION');
    }
    if (++pending.frames > MAX_CONTINUATIONS) {
      return this.#fail(H2Error.ENHANCE_YOUR_CALM, 'a CONTINUATION flood');
    }
    pending.parts.push(payload);
    if ((flags & Flag.END_HEADERS) === 0) return true;
    this.#continuation = undefined;
    return this.#onHeaderBlock(pending.flags, streamId, Buffer.concat(pending.parts));
  }

  #onHeaderBlock(flags: number, streamId: number, block: Buffer): boolean {
    // Every block is decoded, even one we then refuse: HPACK state is shared.
    let headers: Record<string, string>;
    let tooLarge = false;
    try {
      headers = this.#decoder.decode(block, this.#options.maxHeaderListBytes);
    } catch (error) {
      if (!(error instanceof HeaderListTooLarge)) {
        const message = error instanceof Error ? error.message : String(error);
        return this.#fail(H2Error.COMPRESSION_ERROR, `a header block: ${message}`);
      }
      headers = {};
      tooLarge = true;
    }
    const stream = this.#streams.get(streamId);
    if (stream === undefined) {
      if (streamId >= this.#nextStreamId || (streamId & 1) === 0) {
        return this.#fail(H2Error.PROTOCOL_ERROR, 'HEADERS on a stream we did not open');
      }
      return this.#spendEmptyFrame();
    }
    if (tooLarge) {
      this.#resetStream(
        stream,
        H2Error.PROTOCOL_ERROR,
        `response headers over ${this.#options.maxHeaderListBytes} bytes`,
      );
      return true;
    }
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (endStream) this.#remoteEnd(stream);
    stream.handler.headers(headers, endStream);
    return true;
  }
}
