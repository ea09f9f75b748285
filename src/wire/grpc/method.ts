/** What a gRPC method is to the server (server.ts), and what a handler sees of its call. */

/** A failure with its own status code, for handlers outside the session service. */
export class CallError extends Error {
  constructor(
    readonly code: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a handler may know of its call while it runs. */
export interface CallState {
  /** Unix ms at which the caller's deadline passes; Infinity when it set none. */
  readonly deadlineMs: number;
  /** The call has ended: replied, failed, past its deadline or reset by the client. */
  readonly cancelled: boolean;
}

/**
 * Takes one request message (unframed), the call's request headers and the
 * call's state, and resolves to one framed response message.
 */
export type UnaryHandler = (
  request: Buffer,
  headers: RequestHeaders,
  call: CallState,
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

/** A call that has ended, as the server reports it once to `ended`. */
export interface EndedCall {
  /** Its :path, /package.Service/Method. */
  readonly path: string;
  readonly code: number;
  readonly seconds: number;
  /** The request id the reply carried, if any. */
  readonly requestId: string | undefined;
  /** The handler's rejection when the call ended with it (for the log). */
  readonly error: unknown;
}
