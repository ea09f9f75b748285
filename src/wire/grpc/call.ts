import { gunzipSync, inflateSync } from 'node:zlib';
import { Status } from '../grpc-status.ts';
import type { HeaderFields } from '../http2/hpack.ts';
import type { H2Stream, StreamHandler } from '../http2/stream.ts';
import type { Expiring, TimeoutSweeper } from '../timeouts.ts';
import { MessageReader } from './message-reader.ts';
import {
  CallError,
  type CallState,
  type Method,
  type RequestHeaders,
  type StreamCall,
} from './method.ts';
import type { LeanServerOptions } from './server.ts';
import { type Fields, OK_TRAILERS, RESPONSE_FIELDS, statusFields } from './status-fields.ts';

export const DECOMPRESS: Record<string, typeof gunzipSync> = {
  gzip: gunzipSync,
  deflate: inflateSync,
};
const NO_DEADLINE = Number.POSITIVE_INFINITY;

/** What a call needs of the server that runs it. */
export interface CallHost {
  readonly options: LeanServerOptions;
  readonly deadlines: TimeoutSweeper;
  readonly streamCalls: Set<Call>;
}

/**
 * A request that is not a gRPC call: its body is read and dropped, and the
 * HTTP status goes out once the request is complete, as for any request.
 */
export class NotGrpc implements StreamHandler {
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
export class Call implements CallState, Expiring, StreamCall, StreamHandler {
  expiresAtMs = NO_DEADLINE;
  sweeperSlot = -1;
  onMessage: ((message: Buffer) => void) | undefined;
  onEnd: (() => void) | undefined;
  onCancel: (() => void) | undefined;
  readonly #server: CallHost;
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
  /** The handler's rejection the call is ending with. */
  #error: unknown;
  /** A unary handler has started and not yet settled: the stream keeps its slot until it does. */
  #running = false;
  readonly #reader: MessageReader;
  #request: Buffer | undefined;

  constructor(server: CallHost, stream: H2Stream, path: string, headers: RequestHeaders) {
    this.#server = server;
    this.#stream = stream;
    this.#path = path;
    this.#headers = headers;
    this.#givenRequestId = server.options.requestIds.echo(headers['x-request-id']);
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
    this.end(Status.DEADLINE_EXCEEDED, 'deadline exceeded');
  }

  write(message: Buffer): void {
    if (this.#done || this.#stream.closed) return;
    if (message.length > this.#server.options.maxSendBytes) {
      this.end(Status.RESOURCE_EXHAUSTED, 'response larger than the server sends');
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
  end(code: number = Status.OK, details = ''): void {
    if (this.#done) return;
    const cancelled = code !== Status.OK && this.onCancel !== undefined;
    this.#finish(code);
    if (cancelled) this.onCancel?.();
    const stream = this.#stream;
    if (stream.closed) return;
    if (stream.headersSent) {
      stream.end(code === Status.OK ? OK_TRAILERS : statusFields(code, details));
      return;
    }
    // A failure always carries the id its log lines would use, generated
    // when the caller sent none; see #respond for success.
    const id = code === Status.OK ? this.#givenRequestId : this.#id();
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
    if (problem?.kind === 'flag') this.end(Status.INTERNAL, `invalid message flag ${problem.flag}`);
    else if (problem?.kind === 'size') {
      this.end(
        Status.RESOURCE_EXHAUSTED,
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
    this.#requestId ??= this.#server.options.requestIds.forFailure(this.#givenRequestId);
    return this.#requestId;
  }

  #finish(code: number): void {
    this.#done = true;
    this.#server.options.ended({
      path: this.#path,
      code,
      seconds: (performance.now() - this.#startedAt) / 1000,
      requestId: code === Status.OK ? this.#givenRequestId : this.#id(),
      error: this.#error,
    });
    this.#request = undefined;
    this.#server.deadlines.delete(this);
    this.#server.streamCalls.delete(this);
    if (!this.#running) this.#stream.release();
  }

  #cancel(): void {
    this.#finish(Status.CANCELLED);
    this.onCancel?.();
  }

  #onMessage(raw: Buffer, compressed: boolean): void {
    let message = raw;
    if (compressed) {
      if (!this.#decompress) {
        this.end(Status.INTERNAL, 'compressed message without a grpc-encoding');
        return;
      }
      const { maxReceiveBytes } = this.#server.options;
      try {
        message = this.#decompress(raw, { maxOutputLength: maxReceiveBytes });
      } catch (error) {
        if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
          this.end(
            Status.RESOURCE_EXHAUSTED,
            `decompressed request is larger than the limit of ${maxReceiveBytes}`,
          );
        } else this.end(Status.INTERNAL, 'cannot decompress the request');
        return;
      }
    }
    if (this.onMessage) {
      this.onMessage(message);
      return;
    }
    if (this.#request !== undefined) {
      this.end(Status.INTERNAL, 'more than one request message for a unary method');
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
      this.end(Status.INTERNAL, 'no request message');
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
      this.end(Status.RESOURCE_EXHAUSTED, 'response larger than the server sends');
      return;
    }
    this.#finish(Status.OK);
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
    this.#error = error;
    const { code, details } = this.#server.options.statusOf(error);
    this.end(code, details);
  }
}
