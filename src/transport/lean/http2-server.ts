import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { gunzipSync, inflateSync } from 'node:zlib';
import type { CallScope } from '../../call-scope.ts';
import { givenRequestId, requestId } from '../../request-id.ts';
import { type Expiring, TimeoutSweeper } from '../../timeouts.ts';
import type { HeaderFields } from './hpack.ts';
import {
  BufferBudget,
  type H2Stream,
  Http2Connection,
  type StreamHandler,
} from './http2-connection.ts';
import { DEFAULT_LIMITS, type Http2Limits } from './http2-limits.ts';
import { MessageReader } from './message-reader.ts';
import { PenaltyBox } from './penalty-box.ts';

/**
 * A small gRPC server on our own HTTP/2 connection layer (http2-connection.ts): unary calls first, and the few streaming
 * calls health Watch and reflection need. It implements the parts of the gRPC
 * over HTTP/2 protocol a conformant server needs (PROTOCOL-HTTP2.md):
 * grpc-timeout deadlines, trailers-only errors, percent-encoded grpc-message,
 * message size limits checked on the 5-byte prefix before a message is
 * buffered, gzip/deflate requests, UNIMPLEMENTED for unknown methods and
 * encodings, and a graceful drain. It skips what grpc-js spends most of its
 * time on: interceptors, metadata objects, channelz and per-call promise chains.
 */

/** gRPC status codes this file sends itself. */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  DEADLINE_EXCEEDED: 4,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
} as const;

/** A failure with its own status code, for handlers outside the session service. */
export class CallError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/**
 * Takes one request message (unframed), the call's request headers and the
 * call itself as a CallScope (its deadline, and whether the client is gone),
 * and resolves to one framed response message.
 */
export type UnaryHandler = (
  request: Buffer,
  headers: RequestHeaders,
  scope: CallScope,
) => Promise<Buffer>;

/** A call's request headers by lowercase name; pseudo-headers (":path") included. */
export type RequestHeaders = Readonly<Record<string, string | undefined>>;

/** A streaming call as its handler sees it. Messages are unframed protobuf. */
export interface StreamCall {
  onMessage: ((message: Buffer) => void) | undefined;
  /** The client has sent its last message. */
  onEnd: (() => void) | undefined;
  /** The client went away, the deadline passed or the server is stopping. */
  onCancel: (() => void) | undefined;
  write(message: Buffer): void;
  end(code?: number, details?: string): void;
}

export type Method =
  | {
      readonly unary: UnaryHandler;
      /**
       * Runs on the request headers before any of the body is read (e.g. to
       * check credentials); a throw ends the call with `statusOf(error)`.
       */
      readonly admit?: (headers: RequestHeaders) => void;
    }
  | { readonly stream: (call: StreamCall) => void };

export interface LeanServerOptions {
  readonly maxReceiveBytes: number;
  readonly maxSendBytes: number;
  /** Maps a handler's rejection to a status; the place where unexpected errors get logged. */
  readonly statusOf: (
    error: unknown,
    path: string,
    requestId: string,
  ) => { code: number; details: string };
  /** Told of every call that ends: its method name ("unknown" for unknown paths), status and duration. */
  readonly observe?: (method: string, code: number, seconds: number) => void;
  /**
   * Serve TLS (ALPN h2 only) with this PEM certificate and key; with `ca`,
   * clients must present a certificate it signed, or the handshake fails.
   */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly ca?: Buffer | undefined };
  /** What one peer may make the server hold or do (http2-limits.ts); the defaults when absent. */
  readonly limits?: Http2Limits;
}

const ACCEPT_ENCODING = 'identity,deflate,gzip';
const DECOMPRESS: Record<string, typeof gunzipSync> = { gzip: gunzipSync, deflate: inflateSync };
type Fields = Array<readonly [string, string]>;
/** Frozen lists are constants to the connection: their encoded blocks are reused. */
const constant = (fields: Fields): HeaderFields =>
  Object.freeze(fields.map((f) => Object.freeze(f)));
const RESPONSE_FIELDS = constant([
  [':status', '200'],
  ['content-type', 'application/grpc'],
  ['grpc-accept-encoding', ACCEPT_ENCODING],
]);
const OK_TRAILERS = constant([['grpc-status', '0']]);
const METHOD_NOT_ALLOWED = constant([[':status', '405']]);
const UNSUPPORTED_MEDIA_TYPE = constant([[':status', '415']]);
/** How often connections check their timeouts (handshake, idle, write stall). */
const TICK_MS = 1000;
const TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};
/** Deadlines fire up to this late; a call's own timeout is typically seconds. */
const DEADLINE_RESOLUTION_MS = 5;
const NO_DEADLINE = Number.POSITIVE_INFINITY;

/** grpc-timeout: at most 8 digits and a unit. Undefined when absent, NaN when malformed. */
function parseTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return Number.NaN;
  return Number(match[1]) * (TIMEOUT_UNIT_MS[match[2] as string] ?? Number.NaN);
}

/** grpc-message is percent-encoded UTF-8: printable ASCII except '%' passes as it is. */
function encodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message)) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function statusFields(code: number, details: string): Fields {
  return code === Code.OK
    ? [['grpc-status', '0']]
    : [
        ['grpc-status', String(code)],
        ['grpc-message', encodeGrpcMessage(details)],
      ];
}

export class LeanServer {
  readonly #server: Server;
  readonly #methods = new Map<string, Method>();
  readonly #options: LeanServerOptions;
  readonly #deadlines = new TimeoutSweeper(DEADLINE_RESOLUTION_MS);
  readonly #connections = new Set<Http2Connection>();
  readonly #streamCalls = new Set<Call>();
  readonly #limits: Http2Limits;
  readonly #bufferBudget: BufferBudget;
  readonly #penalties: PenaltyBox;
  readonly #ticker: NodeJS.Timeout;

  constructor(options: LeanServerOptions) {
    this.#options = options;
    this.#limits = options.limits ?? DEFAULT_LIMITS;
    this.#bufferBudget = new BufferBudget(this.#limits.maxBufferedRequestBytes);
    this.#penalties = new PenaltyBox(this.#limits.abusePenaltyMaxMs);
    const { tls } = options;
    this.#server = tls
      ? createTlsServer(
          {
            cert: tls.cert,
            key: tls.key,
            ...(tls.ca && { ca: tls.ca, requestCert: true, rejectUnauthorized: true }),
            ALPNProtocols: ['h2'],
            minVersion: 'TLSv1.2',
            noDelay: true,
          },
          (socket: TLSSocket) => {
            // gRPC is HTTP/2 only: a client that did not negotiate h2 cannot be served.
            if (socket.alpnProtocol === 'h2') this.#connect(socket);
            else socket.destroy();
          },
        )
      : createServer({ noDelay: true }, (socket) => this.#connect(socket));
    this.#server.maxConnections = this.#limits.maxConnections;
    this.#ticker = setInterval(() => {
      const now = Date.now();
      for (const connection of this.#connections) connection.tick(now);
    }, TICK_MS);
    this.#ticker.unref();
  }

  /** `path` is /package.Service/Method. */
  register(path: string, method: Method): void {
    this.#methods.set(path, method);
  }

  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(port, host, () => {
        this.#server.off('error', reject);
        resolve((this.#server.address() as AddressInfo).port);
      });
    });
  }

  /**
   * Stops accepting connections, sends GOAWAY so clients open no new streams,
   * ends streaming calls (health Watch) with UNAVAILABLE, and lets unary calls
   * finish for up to `graceMs` before cutting the connections.
   */
  async close(graceMs: number): Promise<void> {
    clearInterval(this.#ticker);
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    for (const call of this.#streamCalls) call.end(Code.UNAVAILABLE, 'the server is shutting down');
    for (const connection of this.#connections) connection.drain();
    let force: NodeJS.Timeout | undefined;
    const graceOver = new Promise<boolean>((resolve) => {
      force = setTimeout(() => resolve(true), graceMs);
    });
    const forced = await Promise.race([closed.then(() => false), graceOver]);
    clearTimeout(force);
    if (forced) {
      for (const connection of this.#connections) connection.destroy();
      await closed;
    }
  }

  #connect(socket: Socket): void {
    const address = socket.remoteAddress ?? '';
    const delay = this.#penalties.delayFor(address, Date.now());
    if (delay === 0) {
      this.#serve(socket, address);
      return;
    }
    socket.pause();
    const timer = setTimeout(() => {
      if (!socket.destroyed) this.#serve(socket, address);
    }, delay);
    socket.once('close', () => clearTimeout(timer));
  }

  #serve(socket: Socket, address: string): void {
    socket.resume();
    const connection = new Http2Connection(socket, {
      limits: this.#limits,
      // Room for a whole maximum-size message in flight on a stream.
      initialWindowSize: Math.min(this.#options.maxReceiveBytes + 5, 2 ** 31 - 1),
      bufferBudget: this.#bufferBudget,
      onStream: (stream, headers) => this.#onStream(stream, headers),
      onAbuse: () => this.#penalties.strike(address, Date.now()),
    });
    this.#connections.add(connection);
    socket.once('close', () => this.#connections.delete(connection));
  }

  #onStream(stream: H2Stream, headers: RequestHeaders): void {
    if (headers[':method'] !== 'POST') {
      stream.handler = new NotGrpc(stream, METHOD_NOT_ALLOWED);
      return;
    }
    const contentType = headers['content-type'];
    if (contentType === undefined || !contentType.startsWith('application/grpc')) {
      stream.handler = new NotGrpc(stream, UNSUPPORTED_MEDIA_TYPE);
      return;
    }
    const path = headers[':path'] ?? '';
    const call = new Call(this, stream, path, headers);
    stream.handler = call;
    const method = this.#methods.get(path);
    if (!method) {
      call.end(Code.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity' && !DECOMPRESS[encoding]) {
      call.end(
        Code.UNIMPLEMENTED,
        `unsupported grpc-encoding "${encoding}"; this server accepts ${ACCEPT_ENCODING}`,
      );
      return;
    }
    const timeoutMs = parseTimeout(headers['grpc-timeout']);
    if (Number.isNaN(timeoutMs)) {
      call.end(Code.INTERNAL, 'malformed grpc-timeout');
      return;
    }
    if ('admit' in method && method.admit) {
      try {
        method.admit(headers);
      } catch (error) {
        call.refuse(method, error);
        return;
      }
    }
    call.start(method, encoding, timeoutMs);
  }

  /** Internal to Call. */
  get options(): LeanServerOptions {
    return this.#options;
  }
  get deadlines(): TimeoutSweeper {
    return this.#deadlines;
  }
  get streamCalls(): Set<Call> {
    return this.#streamCalls;
  }
}

/**
 * A request that is not a gRPC call: its body is read and dropped, and the
 * HTTP status goes out once the request is complete, as for any request.
 */
class NotGrpc implements StreamHandler {
  readonly #stream: H2Stream;
  readonly #status: HeaderFields;

  constructor(stream: H2Stream, status: HeaderFields) {
    this.#stream = stream;
    this.#status = status;
  }

  requestData(): void {}

  requestEnd(): void {
    this.#stream.respond(this.#status, true);
    this.#stream.release();
  }

  streamReset(): void {
    this.#stream.release();
  }
}

/** One RPC: reads length-prefixed messages, enforces the deadline, writes the reply. */
class Call implements CallScope, Expiring, StreamCall, StreamHandler {
  expiresAtMs = NO_DEADLINE;
  sweeperSlot = -1;
  onMessage: ((message: Buffer) => void) | undefined;
  onEnd: (() => void) | undefined;
  onCancel: (() => void) | undefined;
  readonly #server: LeanServer;
  readonly #stream: H2Stream;
  readonly #path: string;
  readonly #headers: RequestHeaders;
  /** The caller's x-request-id, echoed on every response. */
  readonly #givenRequestId: string | undefined;
  #requestId: string | undefined;
  readonly #startedAt = performance.now();
  #method: Method | undefined;
  #decompress: typeof gunzipSync | undefined;
  #done = false;
  /** A unary handler has started and not yet settled: the stream keeps its slot until it does. */
  #running = false;
  readonly #reader: MessageReader;
  #request: Buffer | undefined;

  constructor(server: LeanServer, stream: H2Stream, path: string, headers: RequestHeaders) {
    this.#server = server;
    this.#stream = stream;
    this.#path = path;
    this.#headers = headers;
    this.#givenRequestId = givenRequestId(headers['x-request-id']);
    this.#reader = new MessageReader(server.options.maxReceiveBytes);
  }

  get deadlineMs(): number {
    return this.expiresAtMs;
  }

  /** The call has ended: replied, failed, past its deadline or reset by the client. */
  get cancelled(): boolean {
    return this.#done;
  }

  /** Ends a call its method's `admit` refused, before reading its body. */
  refuse(method: Method, error: unknown): void {
    this.#method = method;
    this.#fail(error);
  }

  start(method: Method, encoding: string | undefined, timeoutMs: number | undefined): void {
    this.#method = method;
    this.#decompress = encoding === undefined ? undefined : DECOMPRESS[encoding];
    if (timeoutMs !== undefined) {
      this.expiresAtMs = Date.now() + timeoutMs;
      this.#server.deadlines.add(this);
    }
    if ('stream' in method) {
      this.#server.streamCalls.add(this);
      method.stream(this);
    }
  }

  expire(): void {
    this.end(Code.DEADLINE_EXCEEDED, 'deadline exceeded');
  }

  write(message: Buffer): void {
    if (this.#done || this.#stream.closed) return;
    if (message.length > this.#server.options.maxSendBytes) {
      this.end(Code.RESOURCE_EXHAUSTED, 'response larger than the server sends');
      return;
    }
    this.#respond();
    const prefix = Buffer.allocUnsafe(5);
    prefix[0] = 0;
    prefix.writeUInt32BE(message.length, 1);
    this.#stream.write(prefix);
    this.#stream.write(message);
  }

  /** Ends the call with a status: trailers-only when nothing was sent yet. */
  end(code: number = Code.OK, details = ''): void {
    if (this.#done) return;
    const cancelled = code !== Code.OK && this.onCancel !== undefined;
    this.#finish(code);
    if (cancelled) this.onCancel?.();
    const stream = this.#stream;
    if (stream.closed) return;
    if (stream.headersSent) {
      stream.end(code === Code.OK ? OK_TRAILERS : statusFields(code, details));
      return;
    }
    // A failure always carries the id its log lines would use, generated
    // when the caller sent none; see #respond for success.
    const id = code === Code.OK ? this.#givenRequestId : this.#id();
    const fields: Fields = [...RESPONSE_FIELDS, ...statusFields(code, details)];
    if (id) fields.push(['x-request-id', id]);
    stream.respond(fields, true);
  }

  requestData(chunk: Buffer): void {
    if (this.#done) return;
    const problem = this.#reader.read(chunk, (message, compressed) => {
      if (this.onMessage) this.#stream.consume(message.length + 5);
      this.#onMessage(message, compressed);
      return !this.#done;
    });
    if (problem?.kind === 'flag') this.end(Code.INTERNAL, `invalid message flag ${problem.flag}`);
    else if (problem?.kind === 'size') {
      this.end(
        Code.RESOURCE_EXHAUSTED,
        `request of ${problem.length} bytes is larger than the limit of ${this.#server.options.maxReceiveBytes}`,
      );
    }
  }

  streamReset(): void {
    if (!this.#done) this.#cancel();
  }

  #respond(): void {
    if (this.#stream.headersSent) return;
    // A success echoes the caller's id only: generating and sending a fresh
    // one on every reply measured 10-15 % of the server's CPU per call, and
    // nothing is logged for a success that a generated id would point to.
    const id = this.#givenRequestId;
    this.#stream.respond(id ? [...RESPONSE_FIELDS, ['x-request-id', id]] : RESPONSE_FIELDS, false);
  }

  #id(): string {
    this.#requestId ??= requestId(this.#givenRequestId);
    return this.#requestId;
  }

  #finish(code: number): void {
    this.#done = true;
    const method = this.#method ? this.#path.slice(this.#path.lastIndexOf('/') + 1) : 'unknown';
    this.#server.options.observe?.(method, code, (performance.now() - this.#startedAt) / 1000);
    this.#request = undefined;
    this.#server.deadlines.delete(this);
    this.#server.streamCalls.delete(this);
    if (!this.#running) this.#stream.release();
  }

  #cancel(): void {
    this.#finish(Code.CANCELLED);
    this.onCancel?.();
  }

  #onMessage(raw: Buffer, compressed: boolean): void {
    let message = raw;
    if (compressed) {
      if (!this.#decompress) {
        this.end(Code.INTERNAL, 'compressed message without a grpc-encoding');
        return;
      }
      const { maxReceiveBytes } = this.#server.options;
      try {
        message = this.#decompress(raw, { maxOutputLength: maxReceiveBytes });
      } catch (error) {
        if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
          this.end(
            Code.RESOURCE_EXHAUSTED,
            `decompressed request is larger than the limit of ${maxReceiveBytes}`,
          );
        } else this.end(Code.INTERNAL, 'cannot decompress the request');
        return;
      }
    }
    if (this.onMessage) {
      this.onMessage(message);
      return;
    }
    if (this.#request !== undefined) {
      this.end(Code.INTERNAL, 'more than one request message for a unary method');
      return;
    }
    this.#request = message;
  }

  requestEnd(): void {
    if (this.#done) return;
    if (this.onEnd) {
      this.onEnd();
      return;
    }
    const method = this.#method;
    if (!method || !('unary' in method)) return;
    const request = this.#request;
    if (request === undefined) {
      this.end(Code.INTERNAL, 'no request message');
      return;
    }
    this.#request = undefined;
    let reply: Promise<Buffer>;
    this.#running = true;
    try {
      reply = method.unary(request, this.#headers, this);
    } catch (error) {
      reply = Promise.reject(error);
    }
    reply.then(
      (frame) => this.#settled(frame, undefined),
      (error: unknown) => this.#settled(undefined, error),
    );
  }

  /** The unary handler is done, whatever became of the call meanwhile. */
  #settled(frame: Buffer | undefined, error: unknown): void {
    this.#running = false;
    if (frame !== undefined) this.#reply(frame);
    else this.#fail(error);
    this.#stream.release();
  }

  #reply(frame: Buffer): void {
    if (this.#done) return;
    if (frame.length - 5 > this.#server.options.maxSendBytes) {
      this.end(Code.RESOURCE_EXHAUSTED, 'response larger than the server sends');
      return;
    }
    this.#finish(Code.OK);
    const stream = this.#stream;
    if (stream.closed) return;
    this.#respond();
    stream.write(frame);
    stream.end(OK_TRAILERS);
  }

  #fail(error: unknown): void {
    if (error instanceof CallError) {
      this.end(error.code, error.message);
      return;
    }
    const { code, details } = this.#server.options.statusOf(error, this.#path, this.#id());
    this.end(code, details);
  }
}
