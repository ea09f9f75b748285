import { connect, type Socket } from 'node:net';
import { encodeHeaders, HpackDecoder } from '../../src/wire/http2/hpack.ts';
import { SERVICE_NAME } from './proto.ts';
import { h2Frame as frame } from './wire.ts';

// A hand-written HTTP/2 client for tests of the server's HTTP/2 layer. Its
// frame constants are written out here rather than imported, so that a wrong
// constant in the server cannot pass the server's own tests.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const DATA = 0x0;
export const HEADERS = 0x1;
export const PRIORITY = 0x2;
export const RST_STREAM = 0x3;
export const SETTINGS = 0x4;
export const PING = 0x6;
export const GOAWAY = 0x7;
export const WINDOW_UPDATE = 0x8;
export const CONTINUATION = 0x9;
export const END_STREAM = 0x1;
export const ACK = 0x1;
export const END_HEADERS = 0x4;

export const NO_ERROR = 0x0;
export const PROTOCOL_ERROR = 0x1;
export const FLOW_CONTROL_ERROR = 0x3;
export const STREAM_CLOSED = 0x5;
export const FRAME_SIZE_ERROR = 0x6;
export const REFUSED_STREAM = 0x7;
export const CANCEL = 0x8;
export const COMPRESSION_ERROR = 0x9;
export const ENHANCE_YOUR_CALM = 0xb;

export interface Frame {
  type: number;
  flags: number;
  stream: number;
  payload: Buffer;
  /** For HEADERS: the decoded fields (blocks are decoded in order, as a client must). */
  headers?: Record<string, string>;
}

export const requestBlock = (method: string) =>
  encodeHeaders([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', `/${SERVICE_NAME}/${method}`],
    [':authority', 'localhost'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ]);

/** A client that writes raw frames and records every frame the server sends. */
export class RawPeer {
  readonly frames: Frame[] = [];
  readonly closed: Promise<void>;
  readonly #socket: Socket;
  readonly #decoder = new HpackDecoder();
  #input = Buffer.alloc(0);
  #waiters: Array<() => void> = [];

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#input = Buffer.concat([this.#input, chunk]);
      while (this.#input.length >= 9) {
        const length = this.#input.readUIntBE(0, 3);
        if (this.#input.length < 9 + length) break;
        const received: Frame = {
          type: this.#input[3] as number,
          flags: this.#input[4] as number,
          stream: this.#input.readUInt32BE(5) & 0x7fff_ffff,
          payload: this.#input.subarray(9, 9 + length),
        };
        // The server sends no CONTINUATION for the small blocks these tests see.
        if (received.type === HEADERS) {
          received.headers = this.#decoder.decode(received.payload, Number.POSITIVE_INFINITY);
        }
        this.frames.push(received);
        this.#input = this.#input.subarray(9 + length);
      }
      for (const wake of this.#waiters.splice(0)) wake();
    });
    socket.on('error', () => {});
    this.closed = new Promise((resolve) =>
      socket.once('close', () => {
        for (const wake of this.#waiters.splice(0)) wake();
        resolve();
      }),
    );
  }

  /** Connects, sends the preface and empty SETTINGS, and acknowledges the server's. */
  static async open(port: number, preface = true): Promise<RawPeer> {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const peer = new RawPeer(socket);
    if (preface) {
      peer.send(Buffer.concat([PREFACE, frame(SETTINGS, 0, 0), frame(SETTINGS, ACK, 0)]));
    }
    return peer;
  }

  send(bytes: Buffer): void {
    this.#socket.write(bytes);
  }

  /** The first frame (old or new) that matches, or a failure after `timeoutMs`. */
  async next(match: (frame: Frame) => boolean, timeoutMs = 5000): Promise<Frame> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(match);
      if (found) return found;
      if (this.#socket.destroyed) throw new Error('connection closed before the frame came');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('timed out waiting for a frame');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The grpc-status the server ended `stream` with. */
  async grpcStatus(stream: number): Promise<string | undefined> {
    const last = await this.next(
      (f) => f.type === HEADERS && f.stream === stream && (f.flags & END_STREAM) !== 0,
    );
    return last.headers?.['grpc-status'];
  }

  /** The error code of the server's GOAWAY. */
  async goaway(): Promise<number> {
    const away = await this.next((f) => f.type === GOAWAY);
    return away.payload.readUInt32BE(4);
  }

  /** Stops reading: what the server sends piles up in its socket buffers. */
  stopReading(): void {
    this.#socket.pause();
  }

  /** Reads again: a connection the server closed meanwhile is seen closing only now. */
  resumeReading(): void {
    this.#socket.resume();
  }

  /** Resolves true if the connection closes within `timeoutMs`, false otherwise. */
  async closesWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const closed = await Promise.race([this.closed.then(() => true as const), timedOut]);
    clearTimeout(timer);
    return closed;
  }

  /** True once the server has closed the connection (or we did). */
  get isClosed(): boolean {
    return this.#socket.destroyed;
  }

  destroy(): void {
    this.#socket.destroy();
  }
}

export const resetCode = (f: Frame) => f.payload.readUInt32BE(0);

/** A gRPC length-prefixed message around `body`. */
export function grpcMessage(body: Buffer): Buffer {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

/** A 4-byte payload holding an error code or a window increment. */
export function u32(value: number): Buffer {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
}
