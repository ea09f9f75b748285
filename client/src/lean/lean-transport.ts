import {
  type GrpcCallError,
  requestFields,
  unaryCall,
} from '../../../src/wire/grpc/client-call.ts';
import { Status } from '../../../src/wire/grpc-status.ts';
import type { HeaderFields } from '../../../src/wire/http2/hpack.ts';
import { TimeoutSweeper } from '../../../src/wire/timeouts.ts';
import { abortedError, fromCallFailure, SessionError } from '../errors.ts';
import type { Transport } from '../transport.ts';
import type { WireMethod } from '../wire.ts';
import { ConnectionPool, NoConnection, type PoolOptions, type Subchannel } from './pool.ts';
import type { TargetGroup } from './targets.ts';

export interface LeanTransportOptions extends PoolOptions {
  /** The largest response message accepted. */
  readonly maxResponseBytes: number;
}

/** Deadlines are checked this often: a call fails at most this late. */
const DEADLINE_RESOLUTION_MS = 10;

/**
 * Calls over the project's own HTTP/2 client (src/wire): one connection per
 * instance, calls multiplexed on it, their frames written once per turn of
 * the event loop, deadlines swept by one timer.
 */
export class LeanTransport implements Transport {
  readonly #pool: ConnectionPool;
  readonly #deadlines = new TimeoutSweeper(DEADLINE_RESOLUTION_MS);
  readonly #scheme: 'http' | 'https';
  readonly #maxResponseBytes: number;
  readonly #target: string;

  constructor(groups: readonly TargetGroup[], options: LeanTransportOptions) {
    this.#pool = new ConnectionPool(groups, options);
    this.#scheme = options.tls === undefined ? 'http' : 'https';
    this.#maxResponseBytes = options.maxResponseBytes;
    this.#target = groups.map((group) => group.authority).join(', ');
  }

  call<Request, Response>(
    method: WireMethod<Request, Response>,
    request: Request,
    metadata: HeaderFields,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    if (signal?.aborted) return Promise.reject(abortedError(signal));
    const message = method.encode(request, true);
    const subchannel = this.#pool.pick();
    if (subchannel !== undefined) {
      return this.#start(subchannel, method, message, metadata, deadline, signal, true);
    }
    return this.#waitThenStart(method, message, metadata, deadline, signal);
  }

  close(): void {
    this.#pool.close();
  }

  async #waitThenStart<Request, Response>(
    method: WireMethod<Request, Response>,
    message: Buffer,
    metadata: HeaderFields,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    const subchannel = await this.#waitForReady(deadline, signal);
    return this.#start(subchannel, method, message, metadata, deadline, signal, true);
  }

  /** A ready subchannel, or a SessionError once the deadline passes, the signal aborts or nothing can connect. */
  #waitForReady(deadline: number, signal: AbortSignal | undefined): Promise<Subchannel> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        finish();
        reject(
          new SessionError(
            'DEADLINE_EXCEEDED',
            `no connection to the session service (${this.#target}) before the deadline`,
          ),
        );
      }, deadline - Date.now());
      const onAbort = () => {
        finish();
        reject(abortedError(signal as AbortSignal));
      };
      const ready = (subchannel: Subchannel) => {
        finish();
        resolve(subchannel);
      };
      const finish = () => {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        this.#pool.forget(ready);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.#pool.waitForReady().then(ready, (error: unknown) => {
        finish();
        reject(
          new SessionError(
            error instanceof NoConnection && error.message === 'the client has been closed'
              ? 'CANCELLED'
              : 'UNAVAILABLE',
            `could not connect to the session service (${this.#target})`,
            { cause: error },
          ),
        );
      });
    });
  }

  #start<Request, Response>(
    subchannel: Subchannel,
    method: WireMethod<Request, Response>,
    message: Buffer,
    metadata: HeaderFields,
    deadline: number,
    signal: AbortSignal | undefined,
    mayResend: boolean,
  ): Promise<Response> {
    return new Promise((resolve, reject) => {
      const remaining = deadline - Date.now();
      if (remaining <= 0) {
        reject(deadlineError());
        return;
      }
      const fields = requestFields(
        this.#scheme,
        subchannel.authority,
        method.path,
        remaining,
        metadata,
      );
      const onAbort = () => call.cancel('the call was aborted by its AbortSignal');
      const call = unaryCall(
        subchannel.connection as NonNullable<Subchannel['connection']>,
        this.#deadlines,
        { fields, message, deadline, maxResponseBytes: this.#maxResponseBytes },
        (error, response) => {
          signal?.removeEventListener('abort', onAbort);
          if (error === undefined) {
            try {
              resolve(method.decode(response as Buffer));
            } catch (cause) {
              reject(
                new SessionError(
                  'INTERNAL',
                  `the server's ${method.path} response could not be read; is ${subchannel.authority} a sessionmanager server of a compatible version?`,
                  { cause },
                ),
              );
            }
            return;
          }
          if (signal?.aborted) {
            reject(abortedError(signal));
            return;
          }
          // A call the server never took is sent again once, whatever the method (as grpc-js does).
          if (error.unprocessed && mayResend) {
            const next = this.#pool.pick();
            const retried =
              next === undefined
                ? this.#waitForReady(deadline, signal).then((ready) =>
                    this.#start(ready, method, message, metadata, deadline, signal, false),
                  )
                : this.#start(next, method, message, metadata, deadline, signal, false);
            retried.then(resolve, reject);
            return;
          }
          reject(this.#sessionError(error, subchannel));
        },
      );
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #sessionError(error: GrpcCallError, subchannel: Subchannel): SessionError {
    if (error.code === Status.DEADLINE_EXCEEDED && !('grpc-status' in error.metadata)) {
      return deadlineError(error);
    }
    return fromCallFailure(
      error,
      'grpc-status' in error.metadata,
      subchannel.authority,
      error.metadata['x-request-id'],
    );
  }
}

function deadlineError(cause?: GrpcCallError): SessionError {
  return new SessionError(
    'DEADLINE_EXCEEDED',
    'the session service did not answer before the deadline',
    cause === undefined ? undefined : { cause },
  );
}
