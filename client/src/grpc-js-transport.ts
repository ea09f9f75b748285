import type * as GrpcJs from '@grpc/grpc-js';
import type { ChannelCredentials, ChannelOptions, Client, ServiceError } from '@grpc/grpc-js';
import type { HeaderFields } from '../../src/wire/http2/hpack.ts';
import { abortedError, fromCallFailure, SessionError } from './errors.ts';
import type { TlsMaterial } from './lean/pool.ts';
import type { Transport } from './transport.ts';
import type { WireMethod } from './wire.ts';

/**
 * Calls over grpc-js, for those who need its resolvers and balancers. The
 * module is loaded on first use, so clients on the default transport never
 * load it.
 */
export class GrpcJsTransport implements Transport {
  readonly #channels: Promise<ChannelPool>;
  readonly #target: string;
  #pool: ChannelPool | undefined;
  #closed = false;

  constructor(
    targets: readonly string[],
    credentials: ChannelCredentials | TlsMaterial | undefined,
    options: ChannelOptions,
  ) {
    this.#target = targets.join(', ');
    this.#channels = import('@grpc/grpc-js').then((grpc) => {
      const pool = channelPool(grpc, targets, channelCredentials(grpc, credentials), options);
      this.#pool = pool;
      if (this.#closed) pool.close();
      return pool;
    });
  }

  async call<Request, Response>(
    method: WireMethod<Request, Response>,
    request: Request,
    metadata: HeaderFields,
    deadline: number,
    signal: AbortSignal | undefined,
  ): Promise<Response> {
    const pool = this.#pool ?? (await this.#channels);
    const grpc = pool.grpc;
    const grpcMetadata = new grpc.Metadata();
    for (const [name, value] of metadata) grpcMetadata.add(name, value);
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortedError(signal));
        return;
      }
      const call = pool.pick().makeUnaryRequest(
        method.path,
        (value: Request) => method.encode(value, false),
        (bytes: Buffer) => method.decode(bytes),
        request,
        grpcMetadata,
        { deadline },
        (error: ServiceError | null, response?: Response) => {
          signal?.removeEventListener('abort', cancel);
          if (error) {
            reject(signal?.aborted ? abortedError(signal) : this.#sessionError(grpc, error));
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

  close(): void {
    this.#closed = true;
    this.#pool?.close();
  }

  /**
   * grpc-js reports the server's status and its own failures alike; a status
   * that came with trailing metadata (our server always sends x-request-id
   * with a failure) or that only a server produces is the server's.
   */
  #sessionError(grpc: typeof GrpcJs, error: ServiceError): SessionError {
    const requestId = error.metadata?.get('x-request-id')[0];
    const fromServer =
      (error.metadata !== undefined && Object.keys(error.metadata.getMap()).length > 0) ||
      !LOCAL_STATUSES.has(error.code);
    const failure = Object.assign(error, { details: error.details ?? '' });
    return fromCallFailure(
      failure,
      fromServer && grpc.status[error.code] !== undefined,
      this.#target,
      typeof requestId === 'string' ? requestId : undefined,
    );
  }
}

/** Statuses grpc-js produces itself (connection failures, deadlines, cancellation, limits, bad replies). */
const LOCAL_STATUSES = new Set([1, 2, 4, 8, 13, 14]);

function channelCredentials(
  grpc: typeof GrpcJs,
  credentials: ChannelCredentials | TlsMaterial | undefined,
): ChannelCredentials {
  if (credentials === undefined) return grpc.credentials.createInsecure();
  if (credentials instanceof grpc.ChannelCredentials) return credentials;
  const tls = credentials as TlsMaterial;
  return grpc.credentials.createSsl(tls.ca ?? null, tls.key ?? null, tls.cert ?? null);
}

/** The channels of one client; `pick` gives the one for the next attempt. */
interface ChannelPool {
  readonly grpc: typeof GrpcJs;
  pick(): Client;
  close(): void;
}

/**
 * One grpc-js channel per target. With a single target, grpc-js does all the
 * balancing (round robin within the target when the options ask for it).
 * With several, attempts rotate over the channels, skipping those that have
 * no connection: a READY channel first; failing that one still connecting
 * (the call waits for it); failing that the next in turn, whose call fails
 * fast with UNAVAILABLE and is retried where that is safe.
 */
function channelPool(
  grpc: typeof GrpcJs,
  targets: readonly string[],
  credentials: ChannelCredentials,
  options: ChannelOptions,
): ChannelPool {
  const { READY, CONNECTING, IDLE } = grpc.connectivityState;
  const channels = targets.map((target) => new grpc.Client(target, credentials, options));
  const close = () => {
    for (const channel of channels) channel.close();
  };
  const [first] = channels;
  if (first === undefined) {
    throw new TypeError('sessionmanager client: no target to connect to');
  }
  if (channels.length === 1) {
    return { grpc, pick: () => first, close };
  }
  // Connect to every instance now: a channel that never had a call would
  // otherwise stay IDLE and never be READY to take its share.
  for (const channel of channels) channel.getChannel().getConnectivityState(true);
  let next = 0;
  const take = (index: number): Client => {
    next = (index + 1) % channels.length;
    return channels[index] as Client;
  };
  /** The channel's state; an IDLE one (e.g. after its server went away) starts reconnecting. */
  const stateOf = (channel: Client) => {
    const state = channel.getChannel().getConnectivityState(false);
    return state === IDLE ? channel.getChannel().getConnectivityState(true) : state;
  };
  return {
    grpc,
    pick() {
      let waiting = -1;
      for (let step = 0; step < channels.length; step++) {
        const index = (next + step) % channels.length;
        const state = stateOf(channels[index] as Client);
        if (state === READY) return take(index);
        if (waiting === -1 && (state === CONNECTING || state === IDLE)) waiting = index;
      }
      return take(waiting === -1 ? next : waiting);
    },
    close,
  };
}
