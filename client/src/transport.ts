import type { HeaderFields } from '../../src/wire/http2/hpack.ts';
import type { WireMethod } from './wire.ts';

/** How one attempt of a call reaches a server: the lean HTTP/2 client or grpc-js. */
export interface Transport {
  /**
   * One attempt of a unary call. `metadata` holds lowercase header names
   * and their values; `deadline` is absolute (Date.now() scale). Rejects
   * with a SessionError.
   */
  call<Request, Response>(
    method: WireMethod<Request, Response>,
    request: Request,
    metadata: HeaderFields,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<Response>;
  /** Releases connections; calls in flight finish on them. */
  close(): void;
}
