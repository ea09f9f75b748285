import type { Socket } from 'node:net';
import { SocketBatch } from '../socket-batch.ts';
import type { BufferBudget } from './buffer-budget.ts';
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
import {
  type HeaderFields,
  HeaderListFlood,
  HeaderListTooLarge,
  HpackDecoder,
  HpackEncoder,
  HpackError,
  MalformedHeaderList,
} from './hpack.ts';
import { FIXED_LIMITS, type Http2Limits, RateBudget } from './limits.ts';
import { OpenStreams } from './open-streams.ts';
import { applyHeaderTableSize, readSettings } from './settings.ts';
import { H2Stream, ignoreStream } from './stream.ts';

/**
 * The server side of one HTTP/2 connection (RFC 9113) on a socket, reduced to
 * what a gRPC server needs: streams the client opens, flow control both ways,
 * SETTINGS, PING, GOAWAY and RST_STREAM. No server push, no priorities (they
 * are checked and ignored, as the RFC allows).
 *
 * Why not node:http2: its JS layer (a Duplex stream and an event chain per
 * HTTP/2 stream, header objects built in C++ and copied to JS, one socket
 * write per frame group) cost more CPU per gRPC call than the rest of the
 * service together. Here a stream is a small object, every frame the server
 * sends goes into one arena, and the arena is written to the socket once per
 * turn of the event loop: the replies of all the calls that finished in that
 * turn go out in one write.
 *
 * A hostile peer is held to the limits of http2-limits.ts. Three rules carry
 * most of the weight: a request's handler starts only once every frame of the
 * read that completed it has been handled (a RST_STREAM in the same packet
 * cancels it before it costs anything); a reset stream keeps its concurrency
 * slot until its handler ends; and request bytes count against the
 * connection's receive window until a handler takes them, not as they arrive.
 */

/** Our SETTINGS_HEADER_TABLE_SIZE, and the most of the peer's table our encoder uses. */
const HEADER_TABLE_BYTES = DEFAULT_HEADER_TABLE_SIZE;
/** What we accept: the protocol's default, so we never advertise it. */
const MAX_RECEIVE_FRAME = DEFAULT_MAX_FRAME;
/** A hard stop for a peer that does not read, whatever else happens. */
const MAX_UNSENT_HARD_BYTES = 64 * 1024 * 1024;
/** How long a connection we failed may take to read our GOAWAY before the socket goes. */
const FAILED_LINGER_MS = 1000;
/** Response fields that repeat on every call: worth a place in the peer's HPACK table. */
const INDEXED_RESPONSE_FIELDS = [
  'content-type',
  'grpc-accept-encoding',
  'grpc-encoding',
  'grpc-status',
];
/** Handlers that may run while replies wait for the peer's window (see #mustPark). */
const PARK_AFTER_ANSWERING = 16;
/** How many recently closed streams we remember, to tell late frames from protocol errors. */
const CLOSED_MEMORY = 1024;
/** A closed stream whose peer may still have frames in flight (we ended it first). */
const CLOSED_BY_US = 1;
/** A closed stream the peer ended or reset: any DATA or HEADERS on it is an error. */
const CLOSED_BY_PEER = 2;
const HEADERS_TOO_LARGE: HeaderFields = Object.freeze([[':status', '431']] as const);
/** The pseudo-header fields a request may carry (RFC 9113 8.3.1); the first three are required. */
const REQUEST_PSEUDO = [':method', ':scheme', ':path', ':authority'] as const;

export interface ConnectionOptions {
  readonly limits: Http2Limits;
  /** Our per-stream receive window: room for one whole request message. */
  readonly initialWindowSize: number;
  /** Request bytes buffered across every connection of the server. */
  readonly bufferBudget: BufferBudget;
  /**
   * A client opened a stream; `headers` hold its request headers,
   * pseudo-headers included. Called once the read that opened it is
   * handled, and only if it was not reset meanwhile; the callee sets
   * `stream.handler`, or answers at once and leaves it unset.
   */
  readonly onStream: (stream: H2Stream, headers: Record<string, string>) => void;
  /** The connection was closed for abuse (GOAWAY ENHANCE_YOUR_CALM or FLOW_CONTROL_ERROR). */
  readonly onAbuse?: () => void;
}

/**
 * Frame parsing and the connection's state. Frames are parsed in place from
 * each chunk the socket delivers; a frame cut by a chunk boundary is
 * assembled in a buffer of its own size, so bytes arriving one at a time cost
 * no more than bytes arriving together.
 */
export class Http2Connection {
  readonly #socket: Socket;
  readonly #options: ConnectionOptions;
  readonly #limits: Http2Limits;
  readonly #decoder = new HpackDecoder(HEADER_TABLE_BYTES);
  readonly #encoder = new HpackEncoder(INDEXED_RESPONSE_FIELDS, HEADER_TABLE_BYTES);
  readonly #streams = new OpenStreams<H2Stream>();
  readonly #output: SocketBatch;
  readonly #writer: FrameWriter;
  readonly #reader = new FrameReader(MAX_RECEIVE_FRAME);
  readonly #createdAt = Date.now();

  // --- Reading state ---
  #prefaceMatched = 0;
  #settingsSeen = false;
  /** The rest of a chunk left for the next turn (fairness), while the socket is paused. */
  #deferredInput: Buffer | undefined;
  #readPausedForBacklog = false;
  /** Streams opened or ended in the current read: their handlers hear of it once the read is handled. */
  #ready: H2Stream[] = [];
  /** Complete requests whose handlers wait until the peer takes what we owe it. */
  #parked: H2Stream[] = [];
  /** Streams whose handler has the request and has not ended its reply. */
  #answering = 0;
  #unparking = false;
  /** A header block split over CONTINUATION frames. */
  #continuation: { stream: number; flags: number; parts: Buffer[]; frames: number } | undefined;
  #lastStreamId = 0;
  /** The highest stream id the peer opened after our GOAWAY: those streams are ignored, and so are their frames. */
  #lastIgnoredId = 0;
  /** Recently closed stream ids and who closed them (a ring). */
  readonly #closedIds = new Uint32Array(CLOSED_MEMORY);
  readonly #closedBy = new Uint8Array(CLOSED_MEMORY);
  #closedNext = 0;

  // --- Flow control ---
  #peerInitialWindow = DEFAULT_WINDOW;
  #peerMaxFrame = DEFAULT_MAX_FRAME;
  #sendWindow = DEFAULT_WINDOW;
  /** What the peer may still send on the connection. */
  readonly #receiveWindow: ReceiveWindow;
  /** Request bytes held for handlers that have not taken them. */
  #buffered = 0;
  /** Streams with data waiting for window, in the order they blocked (an array, for the reason OpenStreams gives). */
  #blocked: H2Stream[] = [];
  #pendingBytes = 0;

  // --- Abuse budgets ---
  readonly #resets: RateBudget;
  readonly #settingsFrames = new RateBudget(
    FIXED_LIMITS.settingsBurst,
    FIXED_LIMITS.settingsPerSecond,
  );
  readonly #emptyFrames = new RateBudget(
    FIXED_LIMITS.emptyFrameBurst,
    FIXED_LIMITS.emptyFramesPerSecond,
  );
  /** PINGs that came with nothing sent to the peer since the one before (grpc-go's rule). */
  readonly #idlePings = new RateBudget(FIXED_LIMITS.idlePingBurst, FIXED_LIMITS.idlePingsPerSecond);
  /** We sent HEADERS or DATA since the peer's last PING: a PING now is flow-control or keepalive, not a flood. */
  #sentSincePing = true;
  /** Control frames written since the socket last had nothing unsent. */
  #controlFramesQueued = 0;
  /** Closed streams whose handler still runs: they count against the concurrency limit. */
  #lingering = 0;
  /**
   * Streams we ended whose last frame is still in the batch, not yet written:
   * a stream is closed once its END_STREAM is sent (RFC 9113 5.1), so they
   * count against the concurrency limit too.
   */
  #endedUnsent = 0;
  /** When the connection last had no stream, or 0 while it has one. */
  #idleSince = Date.now();
  /** When the unsent backlog went over the limit, or 0. */
  #backlogSince = 0;

  /** GOAWAY sent: no new streams; the connection ends when the last stream does. */
  #draining = false;
  #destroyed = false;

  constructor(socket: Socket, options: ConnectionOptions) {
    this.#socket = socket;
    this.#options = options;
    this.#limits = options.limits;
    this.#resets = new RateBudget(this.#limits.resetBurst, this.#limits.resetsPerSecond);
    this.#output = new SocketBatch(socket, MAX_UNSENT_HARD_BYTES, () => this.#afterFlush());
    this.#writer = new FrameWriter(this.#output);
    // Window goes back in batches of a quarter, but at once while the peer
    // could not send one whole request: a request is held until it is
    // complete, so window kept back could leave the next one unable to finish.
    this.#receiveWindow = new ReceiveWindow(
      DEFAULT_WINDOW,
      this.#limits.connectionWindowBytes / 4,
      options.initialWindowSize,
    );
    options.bufferBudget.register(this);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('drain', () => this.#afterFlush());
    socket.on('error', () => socket.destroy());
    socket.once('close', () => this.#closed());
    this.#sendSettings();
  }

  /** Request bytes this connection holds for handlers that have not taken them. */
  get bufferedBytes(): number {
    return this.#buffered;
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

  /** Closed by the shared buffer budget: this connection holds the most. */
  shed(): void {
    this.#fail(H2Error.ENHANCE_YOUR_CALM);
    this.#releaseAllBuffered();
  }

  /** Called about once a second by the server: the timeouts. */
  tick(now: number): void {
    if (this.#destroyed) return;
    const limits = this.#limits;
    if (!this.#settingsSeen) {
      if (now - this.#createdAt > limits.handshakeTimeoutMs) this.destroy();
      return;
    }
    if (this.#backlogSince > 0 && now - this.#backlogSince > limits.writeStallTimeoutMs) {
      this.#fail(H2Error.ENHANCE_YOUR_CALM);
      this.destroy();
      return;
    }
    if (this.#idleSince > 0 && now - this.#idleSince > limits.idleTimeoutMs) this.drain();
  }

  sendHeaders(stream: H2Stream, fields: HeaderFields, endStream: boolean): void {
    const block = Object.isFrozen(fields)
      ? this.#encoder.encodeConstant(fields)
      : this.#encoder.encode(fields);
    if (!this.#destroyed) {
      this.#sentSincePing = true;
      this.#writer.headers(stream.id, block, endStream, this.#peerMaxFrame);
    }
    if (endStream) this.#localEnd(stream);
  }

  sendData(stream: H2Stream, data: Buffer): void {
    if (stream.pending.length > 0) {
      this.#queue(stream, data);
      return;
    }
    const sent = this.#sendWithinWindow(stream, data);
    if (sent < data.length) {
      this.#queue(stream, data.subarray(sent));
      this.#blocked.push(stream);
    }
  }

  consume(stream: H2Stream, bytes: number): void {
    const taken = Math.min(bytes, stream.bufferedBytes);
    this.#releaseBuffered(stream, taken);
    if (stream.closed || stream.remoteEnded) return;
    stream.unacknowledged += taken;
    stream.receiveWindow += taken;
    if (stream.unacknowledged >= this.#options.initialWindowSize / 2) {
      this.#windowUpdate(stream.id, stream.unacknowledged);
      stream.unacknowledged = 0;
    }
  }

  release(stream: H2Stream): void {
    if (stream.released) return;
    stream.released = true;
    if (stream.lingering) {
      stream.lingering = false;
      this.#lingering--;
      this.#noteIfIdle();
      this.#endIfIdle();
    }
  }

  #queue(stream: H2Stream, data: Buffer): void {
    stream.pending.push(data);
    this.#pendingBytes += data.length;
    this.#checkBacklog();
  }

  /** Sends as much of `data` as the windows allow; returns how many bytes went. */
  #sendWithinWindow(stream: H2Stream, data: Buffer): number {
    let sent = 0;
    while (sent < data.length) {
      const room = Math.min(stream.sendWindow, this.#sendWindow, this.#peerMaxFrame);
      if (room <= 0) break;
      const size = Math.min(room, data.length - sent);
      this.#frame(FrameType.DATA, 0, stream.id, data.subarray(sent, sent + size));
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
        this.#pendingBytes -= sent;
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
    this.#checkBacklog();
    if (this.#parked.length > 0) this.#unpark();
  }

  /** Our half of the stream is done; a client still sending is asked to stop (RFC 9113 8.1). */
  #localEnd(stream: H2Stream): void {
    this.#endedUnsent++;
    if (!stream.remoteEnded) this.#rstStream(stream.id, H2Error.NO_ERROR);
    this.#close(stream, stream.remoteEnded ? CLOSED_BY_PEER : CLOSED_BY_US);
  }

  /**
   * A stream error: the client gets RST_STREAM, the handler is told. It
   * spends a reset token, as a reset the client sends does: a peer that
   * makes the server reset streams (MadeYouReset) is held to the same budget.
   */
  #resetStream(stream: H2Stream, code: number): boolean {
    if (stream.closed) return true;
    this.#rstStream(stream.id, code);
    this.#close(stream, CLOSED_BY_US);
    stream.handler.streamReset();
    return this.#takeResetToken();
  }

  /** Removes a stream from the open table; it keeps its slot until its handler releases it. */
  #close(stream: H2Stream, closedBy: number): void {
    if (stream.closed) return;
    stream.closed = true;
    this.#releaseBuffered(stream, stream.bufferedBytes);
    if (stream.pending.length > 0) {
      for (const data of stream.pending) this.#pendingBytes -= data.length;
      stream.pending = [];
      const at = this.#blocked.indexOf(stream);
      if (at >= 0) this.#blocked.splice(at, 1);
    }
    this.#closedIds[this.#closedNext] = stream.id;
    this.#closedBy[this.#closedNext] = closedBy;
    this.#closedNext = (this.#closedNext + 1) % CLOSED_MEMORY;
    this.#streams.delete(stream);
    if (stream.parked) {
      stream.parked = false;
      const at = this.#parked.indexOf(stream);
      if (at >= 0) this.#parked.splice(at, 1);
    }
    // One whose handler never heard of it has nothing to wait for.
    if (stream.handler === ignoreStream) stream.released = true;
    if (!stream.released) {
      stream.lingering = true;
      this.#lingering++;
    }
    this.#noteIfIdle();
    this.#endIfIdle();
    if (stream.answering) {
      stream.answering = false;
      this.#answering--;
      if (this.#parked.length > 0) this.#unpark();
    }
  }

  /** Who closed a recently closed stream, or 0 when it is not remembered. */
  #closedByOf(streamId: number): number {
    for (let i = 0; i < CLOSED_MEMORY; i++) {
      if (this.#closedIds[i] === streamId) return this.#closedBy[i] as number;
    }
    return 0;
  }

  #noteIfIdle(): void {
    if (this.#streams.size === 0 && this.#lingering === 0) this.#idleSince = Date.now();
  }

  #endIfIdle(): void {
    if (this.#draining && this.#streams.size === 0 && this.#lingering === 0 && !this.#destroyed) {
      this.#output.flush();
      this.#socket.end();
    }
  }

  #closed(): void {
    this.#destroyed = true;
    this.#options.bufferBudget.unregister(this);
    this.#releaseAllBuffered();
    const streams = this.#streams.takeAll();
    this.#blocked = [];
    this.#ready = [];
    this.#parked = [];
    for (const stream of streams) {
      stream.closed = true;
      stream.handler.streamReset();
    }
  }

  #releaseAllBuffered(): void {
    if (this.#buffered === 0) return;
    this.#options.bufferBudget.release(this.#buffered);
    this.#buffered = 0;
    for (const stream of this.#streams.values()) stream.bufferedBytes = 0;
  }

  // --- Reading ---

  #receive(chunk: Buffer): void {
    if (this.#destroyed) return;
    let at = 0;
    if (this.#prefaceMatched < PREFACE.length) {
      at = this.#matchPreface(chunk);
      if (at < 0 || this.#prefaceMatched < PREFACE.length) return;
    }
    this.#parse(chunk, at);
  }

  /** Matches the client preface across chunks; returns where frames begin, or -1 when it is wrong. */
  #matchPreface(chunk: Buffer): number {
    const take = Math.min(PREFACE.length - this.#prefaceMatched, chunk.length);
    if (PREFACE.compare(chunk, 0, take, this.#prefaceMatched, this.#prefaceMatched + take) !== 0) {
      this.destroy();
      this.#destroyed = true;
      return -1;
    }
    this.#prefaceMatched += take;
    return take;
  }

  /**
   * Handles the frames of a chunk from `at`: a frame cut at the end waits in
   * #partial; past FRAMES_PER_TURN frames the socket pauses and the rest waits
   * for the next turn, so one flooding peer cannot hold the event loop. The
   * handlers of requests the chunk completed start once all of it is handled.
   */
  #parse(chunk: Buffer, start: number): void {
    const stop = this.#reader.read(chunk, start, FIXED_LIMITS.framesPerTurn, this.#onFrame);
    if (stop === STOPPED) return;
    if (stop === OVERSIZE) {
      this.#fail(H2Error.FRAME_SIZE_ERROR);
      return;
    }
    // The handlers wait for the rest of the read too: a reset in it still cancels them.
    if (stop < chunk.length) this.#deferRest(chunk.subarray(stop));
    else this.#startReady();
  }

  readonly #onFrame = (input: Buffer, at: number): boolean =>
    this.#handleFrame(input, at) && !this.#destroyed;

  #deferRest(rest: Buffer): void {
    this.#deferredInput = rest;
    this.#socket.pause();
    setImmediate(() => {
      const input = this.#deferredInput;
      this.#deferredInput = undefined;
      if (input === undefined || this.#destroyed) return;
      if (!this.#readPausedForBacklog) this.#socket.resume();
      this.#parse(input, 0);
    });
  }

  /**
   * Tells the handlers of the streams the read just handled opened or ended,
   * unless they were reset meanwhile: a reset in the same read costs no
   * handler anything.
   */
  #startReady(): void {
    const ready = this.#ready;
    if (ready.length === 0) return;
    this.#ready = [];
    for (const stream of ready) {
      stream.queued = false;
      if (stream.closed) continue;
      const headers = stream.requestHeaders;
      if (headers !== undefined) {
        stream.requestHeaders = undefined;
        this.#options.onStream(stream, headers);
        // A stream answered without a handler (a refused method, say) holds nothing.
        if (stream.handler === ignoreStream) this.release(stream);
        const early = stream.earlyData;
        stream.earlyData = undefined;
        if (early !== undefined) {
          for (const chunk of early) if (!stream.closed) stream.handler.requestData(chunk);
        }
      }
      if (stream.remoteEnded && !stream.closed && !stream.endDelivered && !stream.parked) {
        if (this.#mustPark(stream)) {
          stream.parked = true;
          this.#parked.push(stream);
        } else this.#deliverEnd(stream);
      }
    }
  }

  #deliverEnd(stream: H2Stream): void {
    stream.endDelivered = true;
    stream.answering = true;
    this.#answering++;
    this.#releaseBuffered(stream, stream.bufferedBytes);
    stream.handler.requestEnd();
  }

  /**
   * Whether a complete request must wait before its handler starts: while
   * the peer has window for the reply and takes what we send, never. A
   * stream or connection with no window waits for a WINDOW_UPDATE; once
   * replies wait for window, at most PARK_AFTER_ANSWERING handlers run, and
   * none past maxUnsentBytes. A peer that opens no window (a zero-window
   * attack) thus makes us build no reply at all, not one per stream it opens.
   */
  #mustPark(stream: H2Stream): boolean {
    if (stream.sendWindow <= 0 || this.#sendWindow <= 0) return true;
    const pending = this.#pendingBytes;
    if (pending === 0) return false;
    return pending >= this.#limits.maxUnsentBytes || this.#answering >= PARK_AFTER_ANSWERING;
  }

  /** Starts parked handlers, oldest first, as far as the peer has caught up. */
  #unpark(): void {
    if (this.#unparking) return;
    this.#unparking = true;
    const parked = this.#parked;
    this.#parked = [];
    for (const stream of parked) {
      if (stream.closed) continue;
      if (this.#destroyed || this.#mustPark(stream)) this.#parked.push(stream);
      else {
        stream.parked = false;
        this.#deliverEnd(stream);
      }
    }
    this.#unparking = false;
  }

  #enqueue(stream: H2Stream): void {
    if (stream.queued) return;
    stream.queued = true;
    this.#ready.push(stream);
  }

  /** Handles the frame whose header starts at `at`; false when it ended the connection. */
  #handleFrame(input: Buffer, at: number): boolean {
    const length = input.readUIntBE(at, 3);
    const type = input[at + 3] as number;
    const flags = input[at + 4] as number;
    const streamId = input.readUInt32BE(at + 5) & 0x7fff_ffff;
    const payload = input.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
    if (!this.#settingsSeen && type !== FrameType.SETTINGS)
      return this.#fail(H2Error.PROTOCOL_ERROR);
    if (this.#continuation && type !== FrameType.CONTINUATION) {
      return this.#fail(H2Error.PROTOCOL_ERROR);
    }
    switch (type) {
      case FrameType.DATA:
        return this.#onData(flags, streamId, payload);
      case FrameType.HEADERS:
        return this.#onHeaders(flags, streamId, payload);
      case FrameType.CONTINUATION:
        return this.#onContinuation(flags, streamId, payload);
      case FrameType.PRIORITY:
        return this.#onPriority(streamId, payload);
      case FrameType.RST_STREAM:
        return this.#onRstStream(streamId, payload);
      case FrameType.SETTINGS:
        return this.#onSettings(flags, streamId, payload);
      case FrameType.PUSH_PROMISE:
        return this.#fail(H2Error.PROTOCOL_ERROR);
      case FrameType.PING:
        if (streamId !== 0) return this.#fail(H2Error.PROTOCOL_ERROR);
        if (payload.length !== 8) return this.#fail(H2Error.FRAME_SIZE_ERROR);
        if ((flags & Flag.ACK) === 0) {
          if (!this.#sentSincePing && !this.#idlePings.take()) {
            return this.#fail(H2Error.ENHANCE_YOUR_CALM);
          }
          this.#sentSincePing = false;
          this.#control(FrameType.PING, Flag.ACK, 0, payload);
        }
        return !this.#destroyed;
      case FrameType.GOAWAY:
        if (streamId !== 0) return this.#fail(H2Error.PROTOCOL_ERROR);
        this.drain();
        return true;
      case FrameType.WINDOW_UPDATE:
        return this.#onWindowUpdate(streamId, payload);
      default:
        // Unknown frame types are ignored (RFC 9113 4.1), within the empty-frame budget.
        return this.#spendEmptyFrame();
    }
  }

  #spendEmptyFrame(): boolean {
    return this.#emptyFrames.take() || this.#fail(H2Error.ENHANCE_YOUR_CALM);
  }

  #takeResetToken(): boolean {
    return this.#resets.take() || this.#fail(H2Error.ENHANCE_YOUR_CALM);
  }

  #onData(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId === 0) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (!this.#receiveWindow.take(payload.length)) return this.#fail(H2Error.FLOW_CONTROL_ERROR);
    const body = unpad(flags, payload);
    if (body === undefined) return this.#fail(H2Error.PROTOCOL_ERROR);
    const endStream = (flags & Flag.END_STREAM) !== 0;
    if (body.length === 0 && !endStream && !this.#spendEmptyFrame()) return false;
    const stream = this.#streams.get(streamId);
    if (!stream) {
      // Discarded, so the peer gets its window back at once.
      this.#acknowledge(payload.length);
      return this.#onClosedStreamFrame(streamId, H2Error.STREAM_CLOSED);
    }
    // Padding counts against flow control like the data it pads, and holds nothing.
    this.#acknowledge(payload.length - body.length);
    if (stream.remoteEnded) {
      this.#acknowledge(body.length);
      return this.#resetStream(stream, H2Error.STREAM_CLOSED);
    }
    if (body.length > stream.receiveWindow) {
      this.#acknowledge(body.length);
      return this.#resetStream(stream, H2Error.FLOW_CONTROL_ERROR);
    }
    stream.receiveWindow -= body.length;
    stream.receivedLength += body.length;
    if (stream.expectedLength >= 0 && stream.receivedLength > stream.expectedLength) {
      this.#acknowledge(body.length);
      return this.#resetStream(stream, H2Error.PROTOCOL_ERROR);
    }
    if (body.length > 0) {
      stream.bufferedBytes += body.length;
      this.#buffered += body.length;
      this.#options.bufferBudget.hold(body.length);
      if (this.#destroyed) return false;
      if (stream.requestHeaders === undefined) stream.handler.requestData(body);
      else if (stream.earlyData === undefined) stream.earlyData = [body];
      else stream.earlyData.push(body);
    }
    if (endStream && !stream.closed) return this.#remoteEnd(stream);
    return true;
  }

  /** The client has sent END_STREAM: the request is complete once its length checks out. */
  #remoteEnd(stream: H2Stream): boolean {
    stream.remoteEnded = true;
    if (stream.expectedLength >= 0 && stream.receivedLength !== stream.expectedLength) {
      return this.#resetStream(stream, H2Error.PROTOCOL_ERROR);
    }
    this.#enqueue(stream);
    return true;
  }

  /** Gives the peer back connection window for bytes we no longer hold. */
  #acknowledge(bytes: number): void {
    const increment = this.#receiveWindow.release(bytes);
    if (increment > 0) this.#writer.windowUpdate(0, increment);
  }

  #releaseBuffered(stream: H2Stream, bytes: number): void {
    if (bytes === 0) return;
    stream.bufferedBytes -= bytes;
    this.#buffered -= bytes;
    this.#options.bufferBudget.release(bytes);
    this.#acknowledge(bytes);
  }

  /**
   * DATA or HEADERS on a stream that is not open. Frames the peer sent before
   * it saw our RST_STREAM are ignored (RFC 9113 5.1, "closed"); on a stream
   * the peer itself ended or reset they are a connection error.
   */
  #onClosedStreamFrame(streamId: number, code: number): boolean {
    if (streamId > this.#lastStreamId) {
      return streamId <= this.#lastIgnoredId || this.#fail(H2Error.PROTOCOL_ERROR);
    }
    const closedBy = this.#closedByOf(streamId);
    if (closedBy === CLOSED_BY_US) return true;
    return this.#fail(closedBy === CLOSED_BY_PEER ? H2Error.STREAM_CLOSED : code);
  }

  #onHeaders(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId === 0 || (streamId & 1) === 0) return this.#fail(H2Error.PROTOCOL_ERROR);
    let block = unpad(flags, payload);
    if (block === undefined) return this.#fail(H2Error.PROTOCOL_ERROR);
    let dependsOnItself = false;
    if (flags & Flag.PRIORITY) {
      if (block.length < 5) return this.#fail(H2Error.PROTOCOL_ERROR);
      dependsOnItself = (block.readUInt32BE(0) & 0x7fff_ffff) === streamId;
      block = block.subarray(5);
    }
    if ((flags & Flag.END_HEADERS) === 0) {
      if (block.length === 0 && !this.#spendEmptyFrame()) return false;
      this.#continuation = {
        stream: streamId,
        flags: dependsOnItself ? flags | SELF_DEPENDENT : flags,
        parts: [block],
        frames: 0,
      };
      return true;
    }
    return this.#onHeaderBlock(dependsOnItself ? flags | SELF_DEPENDENT : flags, streamId, block);
  }

  #onContinuation(flags: number, streamId: number, payload: Buffer): boolean {
    const pending = this.#continuation;
    if (!pending || pending.stream !== streamId) return this.#fail(H2Error.PROTOCOL_ERROR);
    // Counted whatever their size: empty ones cost a frame each and hold nothing (CVE-2024-27316).
    if (++pending.frames > FIXED_LIMITS.maxContinuations) {
      return this.#fail(H2Error.ENHANCE_YOUR_CALM);
    }
    pending.parts.push(payload);
    if ((flags & Flag.END_HEADERS) === 0) return true;
    this.#continuation = undefined;
    return this.#onHeaderBlock(pending.flags, streamId, Buffer.concat(pending.parts));
  }

  #onHeaderBlock(flags: number, streamId: number, block: Buffer): boolean {
    // Every block is decoded, even one we then refuse: HPACK state is shared.
    let headers: Record<string, string>;
    try {
      headers = this.#decoder.decode(block, FIXED_LIMITS.maxHeaderListBytes);
    } catch (error) {
      if (error instanceof HeaderListFlood) return this.#fail(H2Error.ENHANCE_YOUR_CALM);
      if (error instanceof HeaderListTooLarge) return this.#refuseHeaders(flags, streamId);
      if (error instanceof MalformedHeaderList) return this.#malformed(streamId);
      if (error instanceof HpackError) return this.#fail(H2Error.COMPRESSION_ERROR);
      throw error;
    }
    const existing = this.#streams.get(streamId);
    if (existing) return this.#onTrailers(existing, flags);
    if (streamId <= this.#lastStreamId) {
      return this.#onClosedStreamFrame(streamId, H2Error.PROTOCOL_ERROR);
    }
    if (this.#draining) {
      // Past our GOAWAY's last stream: the client retries it elsewhere; its frames are ignored.
      this.#lastIgnoredId = Math.max(this.#lastIgnoredId, streamId);
      return true;
    }
    this.#lastStreamId = streamId;
    if (flags & SELF_DEPENDENT) return this.#refuse(streamId, H2Error.PROTOCOL_ERROR);
    if (!isValidRequest(headers, this.#decoder.pseudoCount)) {
      return this.#refuse(streamId, H2Error.PROTOCOL_ERROR);
    }
    const active = this.#streams.size + this.#lingering + this.#endedUnsent;
    if (active >= this.#limits.maxConcurrentStreams) {
      return this.#refuse(streamId, H2Error.REFUSED_STREAM);
    }
    const stream = new H2Stream(
      streamId,
      this,
      this.#peerInitialWindow,
      this.#options.initialWindowSize,
    );
    const contentLength = headers['content-length'];
    if (contentLength !== undefined) {
      if (!/^\d{1,15}$/.test(contentLength)) return this.#refuse(streamId, H2Error.PROTOCOL_ERROR);
      stream.expectedLength = Number(contentLength);
    }
    this.#streams.add(stream);
    this.#idleSince = 0;
    stream.requestHeaders = headers;
    this.#enqueue(stream);
    if ((flags & Flag.END_STREAM) !== 0) return this.#remoteEnd(stream);
    return true;
  }

  /** A header block on an open stream: trailers, which must end it and carry no pseudo-header. */
  #onTrailers(stream: H2Stream, flags: number): boolean {
    if (stream.remoteEnded) return this.#resetStream(stream, H2Error.STREAM_CLOSED);
    if ((flags & Flag.END_STREAM) === 0 || this.#decoder.pseudoCount > 0) {
      return this.#resetStream(stream, H2Error.PROTOCOL_ERROR);
    }
    return this.#remoteEnd(stream);
  }

  /** Refuses a new stream with RST_STREAM; a refusal spends a reset token too. */
  #refuse(streamId: number, code: number): boolean {
    this.#rstStream(streamId, code);
    this.#rememberClosed(streamId);
    return this.#takeResetToken();
  }

  #rememberClosed(streamId: number): void {
    this.#closedIds[this.#closedNext] = streamId;
    this.#closedBy[this.#closedNext] = CLOSED_BY_US;
    this.#closedNext = (this.#closedNext + 1) % CLOSED_MEMORY;
  }

  /** Headers over our limit on a new stream: HTTP 431 (RFC 9113 10.5.1); the connection goes on. */
  #refuseHeaders(flags: number, streamId: number): boolean {
    const existing = this.#streams.get(streamId);
    if (existing) return this.#resetStream(existing, H2Error.PROTOCOL_ERROR);
    if (streamId <= this.#lastStreamId) return this.#fail(H2Error.PROTOCOL_ERROR);
    this.#lastStreamId = streamId;
    this.#frame(
      FrameType.HEADERS,
      Flag.END_HEADERS | Flag.END_STREAM,
      streamId,
      this.#encoder.encodeConstant(HEADERS_TOO_LARGE),
    );
    if ((flags & Flag.END_STREAM) === 0) this.#rstStream(streamId, H2Error.NO_ERROR);
    this.#rememberClosed(streamId);
    return this.#takeResetToken();
  }

  /** A malformed request or trailers (RFC 9113 8.1.1): a stream error; the connection goes on. */
  #malformed(streamId: number): boolean {
    const existing = this.#streams.get(streamId);
    if (existing) return this.#resetStream(existing, H2Error.PROTOCOL_ERROR);
    if (streamId <= this.#lastStreamId) {
      return this.#onClosedStreamFrame(streamId, H2Error.PROTOCOL_ERROR);
    }
    this.#lastStreamId = streamId;
    return this.#refuse(streamId, H2Error.PROTOCOL_ERROR);
  }

  #onPriority(streamId: number, payload: Buffer): boolean {
    if (streamId === 0) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (payload.length !== 5) return this.#fail(H2Error.FRAME_SIZE_ERROR);
    if (!this.#spendEmptyFrame()) return false;
    if ((payload.readUInt32BE(0) & 0x7fff_ffff) !== streamId) return true;
    // A stream that depends on itself: a stream error (RFC 9113 5.3.1), whatever its state.
    const stream = this.#streams.get(streamId);
    if (stream) return this.#resetStream(stream, H2Error.PROTOCOL_ERROR);
    this.#rstStream(streamId, H2Error.PROTOCOL_ERROR);
    return this.#takeResetToken();
  }

  #onRstStream(streamId: number, payload: Buffer): boolean {
    if (streamId === 0) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (payload.length !== 4) return this.#fail(H2Error.FRAME_SIZE_ERROR);
    if (streamId > this.#lastStreamId) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (!this.#takeResetToken()) return false;
    const stream = this.#streams.get(streamId);
    if (!stream) return true;
    this.#close(stream, CLOSED_BY_PEER);
    stream.handler.streamReset();
    return true;
  }

  #onSettings(flags: number, streamId: number, payload: Buffer): boolean {
    if (streamId !== 0) return this.#fail(H2Error.PROTOCOL_ERROR);
    if (flags & Flag.ACK) {
      return payload.length === 0 || this.#fail(H2Error.FRAME_SIZE_ERROR);
    }
    if (payload.length % 6 !== 0) return this.#fail(H2Error.FRAME_SIZE_ERROR);
    if (!this.#settingsFrames.take()) return this.#fail(H2Error.ENHANCE_YOUR_CALM);
    if (payload.length / 6 > FIXED_LIMITS.maxSettingsEntries) {
      return this.#fail(H2Error.ENHANCE_YOUR_CALM);
    }
    this.#settingsSeen = true;
    const settings = readSettings(payload);
    if (typeof settings === 'number') return this.#fail(settings);
    applyHeaderTableSize(settings, this.#encoder);
    if (settings.maxFrameSize >= 0) this.#peerMaxFrame = settings.maxFrameSize;
    // MAX_CONCURRENT_STREAMS limits pushes, which we never make; the rest is advisory.
    const initialWindow = settings.initialWindowSize;
    // Only the last INITIAL_WINDOW_SIZE of a frame matters: the streams are walked once per frame.
    if (initialWindow >= 0 && initialWindow !== this.#peerInitialWindow) {
      const delta = initialWindow - this.#peerInitialWindow;
      this.#peerInitialWindow = initialWindow;
      for (const stream of this.#streams.values()) {
        stream.sendWindow += delta;
        if (stream.sendWindow > MAX_WINDOW) return this.#fail(H2Error.FLOW_CONTROL_ERROR);
      }
    }
    this.#control(FrameType.SETTINGS, Flag.ACK, 0, undefined);
    if (this.#destroyed) return false;
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
      if (!stream) {
        if (streamId > this.#lastStreamId) return this.#fail(H2Error.PROTOCOL_ERROR);
        // Allowed for a while after a stream ends (RFC 9113 5.1), and worth nothing.
        return this.#spendEmptyFrame();
      }
      if (increment === 0) return this.#resetStream(stream, H2Error.PROTOCOL_ERROR);
      if (stream.sendWindow + increment > MAX_WINDOW) {
        return this.#resetStream(stream, H2Error.FLOW_CONTROL_ERROR);
      }
      stream.sendWindow += increment;
    }
    this.#resumeBlocked();
    return true;
  }

  /** A connection error: GOAWAY with the code, then the socket goes. Returns false for the frame handlers. */
  #fail(code: number): false {
    if (this.#destroyed) return false;
    // A flood, or data past the window we gave: either way the peer meant it.
    if (code === H2Error.ENHANCE_YOUR_CALM || code === H2Error.FLOW_CONTROL_ERROR) {
      this.#options.onAbuse?.();
    }
    this.#draining = true;
    this.#goaway(code);
    this.#output.flush();
    this.#destroyed = true;
    this.#deferredInput = undefined;
    this.#reader.reset();
    this.#socket.destroySoon();
    // A peer that does not read would keep the GOAWAY, and the socket, forever.
    setTimeout(() => this.#socket.destroy(), FAILED_LINGER_MS).unref();
    return false;
  }

  // --- Writing ---

  /** After the output went to the socket: what the peer has not read yet decides whether we read on. */
  #afterFlush(): void {
    this.#endedUnsent = 0;
    if (this.#socket.writableLength === 0) this.#controlFramesQueued = 0;
    this.#checkBacklog();
  }

  /**
   * A peer that does not read what we send (or does not open its windows
   * for it) gets no more of our reading: every frame we read could add to
   * what it owes. Past the stall timeout, tick() drops it.
   */
  #checkBacklog(): void {
    if (this.#destroyed) return;
    const unsent = this.#socket.writableLength;
    const over = unsent + this.#pendingBytes > this.#limits.maxUnsentBytes;
    if (over && this.#backlogSince === 0) this.#backlogSince = Date.now();
    if (!over) this.#backlogSince = 0;
    const socketOver = unsent > this.#limits.maxUnsentBytes;
    if (socketOver && !this.#readPausedForBacklog) {
      this.#readPausedForBacklog = true;
      this.#socket.pause();
    } else if (!socketOver && this.#readPausedForBacklog) {
      this.#readPausedForBacklog = false;
      if (this.#deferredInput === undefined) this.#socket.resume();
    }
  }

  #sendSettings(): void {
    const entries: Array<[number, number]> = [
      [Setting.HEADER_TABLE_SIZE, HEADER_TABLE_BYTES],
      [Setting.MAX_CONCURRENT_STREAMS, this.#limits.maxConcurrentStreams],
      [Setting.INITIAL_WINDOW_SIZE, this.#options.initialWindowSize],
      [Setting.MAX_HEADER_LIST_SIZE, FIXED_LIMITS.maxHeaderListBytes],
    ];
    this.#writer.settings(entries);
    const raise = this.#limits.connectionWindowBytes - DEFAULT_WINDOW;
    if (raise > 0) {
      this.#writer.windowUpdate(0, raise);
      this.#receiveWindow.raise(raise);
    }
  }

  #goaway(code: number): void {
    if (!this.#destroyed) this.#writer.goaway(this.#lastStreamId, code);
  }

  #rstStream(streamId: number, code: number): void {
    this.#control(FrameType.RST_STREAM, 0, streamId, uint32(code));
  }

  #windowUpdate(streamId: number, increment: number): void {
    if (!this.#destroyed) this.#writer.windowUpdate(streamId, increment);
  }

  /**
   * A frame the peer's own frames make us send (acks, resets): a peer that
   * does not read them cannot make us queue them without bound (CVE-2019-9512, -9515).
   */
  #control(type: number, flags: number, streamId: number, payload: Buffer | undefined): void {
    if (++this.#controlFramesQueued > FIXED_LIMITS.maxQueuedControlFrames) {
      this.#fail(H2Error.ENHANCE_YOUR_CALM);
      return;
    }
    this.#frame(type, flags, streamId, payload);
  }

  /** Appends one frame to the output; it goes out at the end of this turn of the event loop. */
  #frame(type: number, flags: number, streamId: number, payload: Buffer | undefined): void {
    if (this.#destroyed) return;
    if (type === FrameType.DATA || type === FrameType.HEADERS) this.#sentSincePing = true;
    this.#writer.frame(type, flags, streamId, payload);
  }
}

/**
 * A flag bit no frame defines, carried with a header block's flags: the
 * HEADERS frame's priority named the stream itself.
 */
const SELF_DEPENDENT = 0x100;

/**
 * RFC 9113 8.3.1: a request has :method, :scheme and a non-empty :path, and
 * no other pseudo-header than those and :authority (HpackDecoder already
 * checked order, repetition and the connection-specific fields).
 */
function isValidRequest(headers: Record<string, string>, pseudoCount: number): boolean {
  let known = 0;
  for (const name of REQUEST_PSEUDO) if (headers[name] !== undefined) known++;
  if (known !== pseudoCount) return false;
  const path = headers[':path'];
  return headers[':method'] !== undefined && headers[':scheme'] !== undefined && !!path;
}
