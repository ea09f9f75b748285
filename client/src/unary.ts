import type { Client, Metadata } from '@grpc/grpc-js';
import { abortedError, fromServiceError, SessionError } from './errors.ts';
import type { WireMethod } from './wire.ts';

/** One attempt of a unary call, as a promise that rejects with a SessionError. */
export function unaryCall<Request, Response>(
  client: Client,
  method: WireMethod<Request, Response>,
  request: Request,
  metadata: Metadata,
  deadline: number,
  signal: AbortSignal | undefined,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortedError(signal));
      return;
    }
    const call = client.makeUnaryRequest(
      method.path,
      method.requestSerialize,
      method.responseDeserialize,
      request,
      metadata,
      { deadline },
      (error, response) => {
        signal?.removeEventListener('abort', cancel);
        if (error) {
          reject(signal?.aborted ? abortedError(signal) : fromServiceError(error));
        } else if (response === undefined) {
          reject(new SessionError('INTERNAL', `${method.path} returned no response`));
        } else {
          resolve(response);
        }
      },
    );
    // grpc-js then completes the call with CANCELLED, which the callback reports.
    const cancel = () => call.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
  });
}
