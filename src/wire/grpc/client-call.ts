import { Status, statusName } from '../grpc-status.ts';
import type { ClientConnection, ClientStream, StreamEnd } from '../http2/client-connection.ts';
import { H2Error } from '../http2/frames.ts';
import type { HeaderFields } from '../http2/hpack.ts';
import type { Expiring, TimeoutSweeper } from '../timeouts.ts';
import { DECOMPRESS } from './call.ts';
import { MessageReader } from './message-reader.ts';

/**
 * One unary gRPC call from the client side (PROTOCOL-HTTP2.md): the request
 * headers and one length-prefixed message, then one response message and the
 * status in the trailers (or a trailers-only reply). Everything the server
 * sends is checked: the HTTP status, the content type, the message framing
 * and size, the status code. Whatever goes wrong ends the call with a
 * GrpcCallError that says what happened in the server's or the transport's
 * own words; the application above decides what to tell its users.
 */

/** A failed call: the gRPC status, the server's message (or ours), and the trailers. */
export class GrpcCallError extends Error {
  override readonly name = 'GrpcCallError';
  constructor(
    readonly code: number,
    readonly details: string,
    /** Response headers and trailers, merged (the request id, for one). */
    readonly metadata: Readonly<Record<string, string>>,
    /**
     * The server certainly did no work for it (a GOAWAY below it,
     * REFUSED_STREAM, a connection that never took it): safe to send again
     * whatever the method.
     */
    readonly unprocessed = false,
  ) {
    super(`${statusName(code)}: ${details}`);
  }
}

export interface UnaryRequest {
  /** Request header fields: pseudo-headers, content-type, te, grpc-timeout, metadata. */
  readonly fields: HeaderFields;
  /** The request message with its 5-byte prefix. */
  readonly message: Buffer;
  /** Absolute deadline (Date.now() scale). */
  readonly deadline: number;
  /** The largest response message accepted, decompressed. */
  readonly maxResponseBytes: number;
}

export type UnaryCallback = (
  error: GrpcCallError | undefined,
  response: Buffer | undefined,
) => void;

const NO_METADATA: Readonly<Record<string, string>> = Object.freeze({});

/** The request header fields of a call; `timeoutMs` becomes grpc-timeout. */
export function requestFields(
  scheme: 'http' | 'https',
  authority: string,
  path: string,
  timeoutMs: number,
  metadata: HeaderFields,
): HeaderFields {
  const fields: Array<readonly [string, string]> = [
    [':method', 'POST'],
    [':scheme', scheme],
    [':path', path],
    [':authority', authority],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
    ['grpc-timeout', grpcTimeout(timeoutMs)],
  ];
  for (const field of metadata) fields.push(field);
  return fields;
}

/** grpc-timeout: at most 8 digits and a unit; milliseconds, rounded up, or seconds past 8 digits. */
export function grpcTimeout(ms: number): string {
  const millis = Math.max(1, Math.ceil(ms));
  return millis < 100_000_000 ? `${millis}m` : `${Math.min(99_999_999, Math.ceil(millis / 1000))}S`;
}

/** Starts a unary call on `connection`; `done` is called exactly once. */
export function unaryCall(
  connection: ClientConnection,
  deadlines: TimeoutSweeper,
  request: UnaryRequest,
  done: UnaryCallback,
): UnaryCall {
  const call = new UnaryCall(request, deadlines, done);
  call.start(connection);
  return call;
}

export class UnaryCall implements Expiring {
  readonly expiresAtMs: number;
  sweeperSlot = -1;
  readonly #request: UnaryRequest;
  readonly #deadlines: TimeoutSweeper;
  readonly #done: UnaryCallback;
  readonly #reader: MessageReader;
  #connection: ClientConnection | undefined;
  #stream: ClientStream | undefined;
  #metadata: Record<string, string> | undefined;
  #response: Buffer | undefined;
  #compression: string | undefined;
  #headersSeen = false;
  #settled = false;

  constructor(request: UnaryRequest, deadlines: TimeoutSweeper, done: UnaryCallback) {
    this.#request = request;
    this.#deadlines = deadlines;
    this.#done = done;
    this.expiresAtMs = request.deadline;
    this.#reader = new MessageReader(request.maxResponseBytes);
  }

  start(connection: ClientConnection): void {
    this.#connection = connection;
    this.#deadlines.add(this);
    this.#stream = connection.request(this.#request.fields, this.#request.message, this);
  }

  /** The caller gave up (an AbortSignal, a closed client): RST_STREAM CANCEL. */
  cancel(reason: string): void {
    this.#abandon(Status.CANCELLED, reason);
  }

  expire(): void {
    this.#abandon(Status.DEADLINE_EXCEEDED, 'the deadline passed before the server answered');
  }

  // --- ResponseHandler ---

  headers(headers: Record<string, string>, endStream: boolean): void {
    if (this.#settled) return;
    if (!this.#headersSeen) {
      this.#headersSeen = true;
      this.#metadata = headers;
      const problem = responseProblem(headers);
      if (problem !== undefined) {
        this.#fail(problem.code, problem.details, endStream);
        return;
      }
      this.#compression = headers['grpc-encoding'];
      if (endStream) this.#finish(headers);
      return;
    }
    if (!endStream) {
      this.#fail(
        Status.INTERNAL,
        'the server sent a second header block before its trailers',
        false,
      );
      return;
    }
    this.#metadata = { ...this.#metadata, ...headers };
    this.#finish(headers);
  }

  data(chunk: Buffer, endStream: boolean): void {
    if (this.#settled) return;
    if (!this.#headersSeen) {
      this.#fail(Status.INTERNAL, 'the server sent data before its response headers', endStream);
      return;
    }
    const problem = this.#reader.read(chunk, this.#onMessage);
    if (problem !== undefined) {
      const details =
        problem.kind === 'size'
          ? `the response message of ${problem.length} bytes is over the limit of ${this.#request.maxResponseBytes}`
          : `the response message has an unknown flag ${problem.flag}`;
      this.#fail(
        problem.kind === 'size' ? Status.RESOURCE_EXHAUSTED : Status.INTERNAL,
        details,
        endStream,
      );
      return;
    }
    if (endStream && !this.#settled) {
      this.#settle(
        new GrpcCallError(
          Status.INTERNAL,
          'the server ended the response without a status',
          this.#metadata ?? NO_METADATA,
        ),
      );
    }
  }

  failed(end: StreamEnd): void {
    if (this.#settled) return;
    this.#stream = undefined;
    this.#settle(streamEndError(end, this.#metadata ?? NO_METADATA));
  }

  readonly #onMessage = (message: Buffer, compressed: boolean): boolean => {
    if (this.#response !== undefined) {
      this.#fail(Status.INTERNAL, 'the server sent more than one response message', false);
      return false;
    }
    if (!compressed) {
      // A view of the chunk, which the connection may reuse: keep a copy.
      this.#response = Buffer.from(message);
      return true;
    }
    const decompress = DECOMPRESS[this.#compression ?? ''];
    if (decompress === undefined) {
      this.#fail(
        Status.INTERNAL,
        `the server compressed its response with "${this.#compression ?? 'nothing'}", which was not offered`,
        false,
      );
      return false;
    }
    try {
      this.#response = decompress(message, { maxOutputLength: this.#request.maxResponseBytes });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      this.#fail(
        Status.RESOURCE_EXHAUSTED,
        `the compressed response did not inflate within the limit: ${reason}`,
        false,
      );
      return false;
    }
    return true;
  };

  #finish(trailers: Record<string, string>): void {
    const metadata = this.#metadata ?? NO_METADATA;
    const statusText = trailers['grpc-status'];
    if (statusText === undefined || !/^\d{1,2}$/.test(statusText)) {
      this.#settle(
        new GrpcCallError(
          Status.INTERNAL,
          `the server sent no valid grpc-status (${statusText ?? 'none'})`,
          metadata,
        ),
      );
      return;
    }
    const code = Number(statusText);
    if (code !== Status.OK) {
      this.#settle(
        new GrpcCallError(code, decodeGrpcMessage(trailers['grpc-message'] ?? ''), metadata),
      );
      return;
    }
    if (this.#response === undefined) {
      this.#settle(
        new GrpcCallError(
          Status.INTERNAL,
          'the server answered OK without a response message',
          metadata,
        ),
      );
      return;
    }
    this.#settle(undefined);
  }

  /** A response we refuse: the stream is reset unless the server already ended it. */
  #fail(code: number, details: string, ended: boolean): void {
    if (!ended) this.#resetStream();
    this.#settle(new GrpcCallError(code, details, this.#metadata ?? NO_METADATA));
  }

  #abandon(code: number, details: string): void {
    if (this.#settled) return;
    this.#resetStream();
    this.#settle(new GrpcCallError(code, details, this.#metadata ?? NO_METADATA));
  }

  #resetStream(): void {
    const stream = this.#stream;
    this.#stream = undefined;
    if (stream !== undefined && this.#connection !== undefined) this.#connection.cancel(stream);
  }

  #settle(error: GrpcCallError | undefined): void {
    if (this.#settled) return;
    this.#settled = true;
    this.#deadlines.delete(this);
    const response = this.#response;
    this.#response = undefined;
    if (error === undefined) this.#done(undefined, response);
    else this.#done(error, undefined);
  }
}

/**
 * The status of a response whose headers say it is not a gRPC reply: the
 * HTTP status mapped as gRPC specifies (http-grpc-status-mapping.md), or a
 * content type that is not application/grpc. Undefined when it is one.
 */
function responseProblem(
  headers: Record<string, string>,
): { code: number; details: string } | undefined {
  const status = headers[':status'];
  if (status !== '200') {
    const code = HTTP_TO_GRPC[status ?? ''] ?? Status.UNKNOWN;
    return {
      code,
      details: `the server answered HTTP ${status ?? 'without a status'}, not a gRPC response`,
    };
  }
  const contentType = headers['content-type'] ?? '';
  if (!/^application\/grpc($|[+;])/.test(contentType)) {
    return {
      code: Status.UNKNOWN,
      details: `the server answered with content-type "${contentType}", not gRPC`,
    };
  }
  return undefined;
}

const HTTP_TO_GRPC: Record<string, number> = {
  '400': Status.INTERNAL,
  '401': Status.UNAUTHENTICATED,
  '403': Status.PERMISSION_DENIED,
  '404': Status.UNIMPLEMENTED,
  '429': Status.UNAVAILABLE,
  '502': Status.UNAVAILABLE,
  '503': Status.UNAVAILABLE,
  '504': Status.UNAVAILABLE,
};

function streamEndError(end: StreamEnd, metadata: Readonly<Record<string, string>>): GrpcCallError {
  switch (end.kind) {
    case 'refused':
      return new GrpcCallError(
        Status.UNAVAILABLE,
        'the server closed the connection before taking the call',
        metadata,
        true,
      );
    case 'reset':
      if (end.code === H2Error.REFUSED_STREAM) {
        return new GrpcCallError(
          Status.UNAVAILABLE,
          'the server refused the stream',
          metadata,
          true,
        );
      }
      return new GrpcCallError(
        RESET_TO_GRPC[end.code] ?? Status.INTERNAL,
        `the server reset the stream (HTTP/2 error ${end.code})`,
        metadata,
      );
    case 'lost':
      return new GrpcCallError(Status.UNAVAILABLE, end.reason, metadata);
    case 'protocol':
      return new GrpcCallError(Status.INTERNAL, end.reason, metadata);
  }
}

/** RST_STREAM codes as gRPC maps them (PROTOCOL-HTTP2.md, Errors). */
const RESET_TO_GRPC: Record<number, number> = {
  [H2Error.NO_ERROR]: Status.INTERNAL,
  [H2Error.CANCEL]: Status.CANCELLED,
  [H2Error.ENHANCE_YOUR_CALM]: Status.RESOURCE_EXHAUSTED,
  [H2Error.INADEQUATE_SECURITY]: Status.PERMISSION_DENIED,
};

/** grpc-message is percent-encoded UTF-8; a malformed escape is kept as it is. */
export function decodeGrpcMessage(value: string): string {
  if (!value.includes('%')) return value;
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
