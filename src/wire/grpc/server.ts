import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Status } from '../grpc-status.ts';
import { BufferBudget } from '../http2/buffer-budget.ts';
import { Http2Connection } from '../http2/connection.ts';
import { DEFAULT_LIMITS, type Http2Limits } from '../http2/limits.ts';
import { PenaltyBox } from '../http2/penalty-box.ts';
import type { H2Stream } from '../http2/stream.ts';
import { TimeoutSweeper } from '../timeouts.ts';
import { Call, DECOMPRESS, NotGrpc } from './call.ts';
import type { EndedCall, Method, RequestHeaders } from './method.ts';
import { ACCEPT_ENCODING, METHOD_NOT_ALLOWED, UNSUPPORTED_MEDIA_TYPE } from './status-fields.ts';
import { parseTimeout } from './timeout.ts';

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

/** How often connections check their timeouts (handshake, idle, write stall). */
const TICK_MS = 1000;
/** Deadlines fire up to this late; a call's own timeout is typically seconds. */
const DEADLINE_RESOLUTION_MS = 5;

export interface LeanServerOptions {
  readonly maxReceiveBytes: number;
  readonly maxSendBytes: number;
  /** Maps a handler's rejection to the status the call ends with. */
  readonly statusOf: (error: unknown) => { code: number; details: string };
  /** Told of every call of a registered method as it starts, by its path. */
  readonly started?: (path: string) => void;
  /** Told of every call once, when it ends, however it ended. */
  readonly ended: (call: EndedCall) => void;
  /**
   * The request id of a call: what its replies echo when the caller sent an
   * acceptable `x-request-id` (undefined otherwise), and what a failure
   * carries, the echoed one or a new one.
   */
  readonly requestIds: {
    readonly echo: (header: string | undefined) => string | undefined;
    readonly forFailure: (echoed: string | undefined) => string;
  };
  /**
   * Serve TLS (ALPN h2 only) with this PEM certificate and key; with `ca`,
   * clients must present a certificate it signed, or the handshake fails.
   */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer; readonly ca?: Buffer | undefined };
  /** What one peer may make the server hold or do (http2/limits.ts); the defaults when absent. */
  readonly limits?: Http2Limits;
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
    for (const call of this.#streamCalls)
      call.end(Status.UNAVAILABLE, 'the server is shutting down');
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
      call.end(Status.UNIMPLEMENTED, `unknown method ${path}`);
      return;
    }
    this.#options.started?.(path);
    const encoding = headers['grpc-encoding'];
    if (encoding !== undefined && encoding !== 'identity' && !DECOMPRESS[encoding]) {
      call.end(
        Status.UNIMPLEMENTED,
        `unsupported grpc-encoding "${encoding}"; this server accepts ${ACCEPT_ENCODING}`,
      );
      return;
    }
    const timeoutMs = parseTimeout(headers['grpc-timeout']);
    if (Number.isNaN(timeoutMs)) {
      call.end(Status.INTERNAL, 'malformed grpc-timeout');
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

  /** For the calls it runs (call.ts). */
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
