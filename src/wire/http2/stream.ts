import type { Http2Connection } from './connection.ts';
import type { HeaderFields } from './hpack.ts';

/** What a stream reports to the code serving it. */
export interface StreamHandler {
  /** A chunk of the request body. */
  requestData(chunk: Buffer): void;
  /** The client has sent all of its request; called once the read that ended it is handled. */
  requestEnd(): void;
  /**
   * The stream ended before the server finished its reply: reset by either
   * side or the connection was lost. The stream keeps its concurrency slot
   * until the handler calls `release()`.
   */
  streamReset(): void;
}

export const ignoreStream: StreamHandler = { requestData() {}, requestEnd() {}, streamReset() {} };

/** One request/response exchange on a connection, as the server sees it. */
export class H2Stream {
  handler: StreamHandler = ignoreStream;
  headersSent = false;
  /** No more frames go out on it: the reply is complete or the stream was reset. */
  closed = false;
  remoteEnded = false;
  /** The handler's work is over; until then a closed stream still holds its slot. */
  released = false;
  /** Closed but not released: it counts against the concurrency limit. */
  lingering = false;
  sendWindow: number;
  /** What the peer may still send on this stream. */
  receiveWindow: number;
  /** Request bytes received that no handler has taken yet (they hold connection window). */
  bufferedBytes = 0;
  /** Bytes the handler consumed that have not been given back to the peer's stream window. */
  unacknowledged = 0;
  /** The request's content-length, or -1; and the DATA bytes received so far. */
  expectedLength = -1;
  receivedLength = 0;
  /** Data waiting for flow-control window, and the trailers to send after it. */
  pending: Buffer[] = [];
  pendingTrailers: HeaderFields | undefined;
  /** The request headers, until the stream's handler is told of it at the end of the read. */
  requestHeaders: Record<string, string> | undefined;
  /** Body chunks that arrived before the handler was told of the stream. */
  earlyData: Buffer[] | undefined;
  /** In the list of streams the end of the current read attends to. */
  queued = false;
  /** The handler has been told the request ended. */
  endDelivered = false;
  /** Its request is complete and waits for the peer to take what we owe it (see #mustPark). */
  parked = false;
  /** Its handler has the request and has not ended its reply. */
  answering = false;

  constructor(
    readonly id: number,
    readonly connection: Http2Connection,
    sendWindow: number,
    receiveWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.receiveWindow = receiveWindow;
  }

  /**
   * Sends the response headers; `endStream` makes it a trailers-only reply. A
   * frozen field list is taken for a constant, whose encoding is reused.
   */
  respond(fields: HeaderFields, endStream: boolean): void {
    if (this.closed) return;
    this.headersSent = true;
    this.connection.sendHeaders(this, fields, endStream);
  }

  /** Sends body bytes, within the flow-control windows; the rest waits for WINDOW_UPDATE. */
  write(data: Buffer): void {
    if (this.closed) return;
    this.connection.sendData(this, data);
  }

  /** Sends the trailers after any data still waiting for window. */
  end(trailers: HeaderFields): void {
    if (this.closed) return;
    if (this.pending.length > 0) this.pendingTrailers = trailers;
    else this.connection.sendHeaders(this, trailers, true);
  }

  /** The handler has taken `bytes` of a streaming request: the peer may send that much more. */
  consume(bytes: number): void {
    this.connection.consume(this, bytes);
  }

  /** The handler's work is over: the stream no longer holds a concurrency slot. */
  release(): void {
    this.connection.release(this);
  }
}
