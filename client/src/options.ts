import { type ChannelCredentials, type ChannelOptions, credentials, Metadata } from '@grpc/grpc-js';
import { type Codec, jsonCodec } from './codec.ts';
import type { Codecs } from './messages.ts';
import type { RetryPolicy } from './retry.ts';

/**
 * Where the server is. A union so that `{ addresses: string[] }` can join it
 * later without changing the other options.
 */
export type TargetOptions =
  | { host: string; port?: number; address?: never }
  | { address: string; host?: never; port?: never };

export interface TlsOptions {
  tls: {
    /** PEM root certificates; the system roots when omitted. */
    ca?: string | Buffer;
    /** PEM client certificate and key, for mutual TLS. */
    cert?: string | Buffer;
    key?: string | Buffer;
  };
}

export type Headers = Readonly<Record<string, string>>;

/** Static headers, or a function called before every attempt (e.g. to refresh a token). */
export type MetadataOption = Headers | (() => Headers | Promise<Headers>);

export interface KeepaliveOptions {
  /** Interval between HTTP/2 pings on an open connection. */
  timeMs: number;
  /** How long to wait for a ping's ack before closing the connection. */
  timeoutMs?: number;
}

export type ClientOptions<Req = unknown, Res = unknown, Attr = unknown> = TargetOptions & {
  /** Default deadline of every call, retries included. Never infinite. */
  deadlineMs?: number;
  /** Retry policy for calls that are safe to repeat; false disables retries. */
  retries?: Partial<RetryPolicy> | false;
  /** grpc-js channel credentials, or TLS material; insecure when omitted. */
  credentials?: ChannelCredentials | TlsOptions;
  metadata?: MetadataOption;
  keepalive?: KeepaliveOptions;
  /** Codecs for the opaque payloads; JSON for each one omitted. */
  codec?: {
    fleetListRequest?: Codec<Req>;
    fleetListResponse?: Codec<Res>;
    attributes?: Codec<Attr>;
  };
};

export const defaults = Object.freeze({
  port: 6027,
  deadlineMs: 5000,
  retries: Object.freeze({ maxAttempts: 3, initialBackoffMs: 50, maxBackoffMs: 1000 }),
});

export interface ResolvedOptions<Req, Res, Attr> {
  target: string;
  deadlineMs: number;
  retry: RetryPolicy | undefined;
  credentials: ChannelCredentials;
  channelOptions: ChannelOptions;
  metadata: () => Promise<Metadata>;
  codecs: Codecs<Req, Res, Attr>;
}

export function resolveOptions<Req, Res, Attr>(
  options: ClientOptions<Req, Res, Attr>,
): ResolvedOptions<Req, Res, Attr> {
  const retry = resolveRetry(options.retries);
  // grpc-js waits 1 s (growing to 120 s) before reconnecting to a server that
  // went away, and fails calls fast meanwhile: retries would find no
  // connection. Reconnecting on the retry schedule gives them one to use.
  const backoff = retry ?? defaults.retries;
  const channelOptions: ChannelOptions = {
    'grpc.initial_reconnect_backoff_ms': backoff.initialBackoffMs,
    'grpc.max_reconnect_backoff_ms': backoff.maxBackoffMs,
  };
  if (options.keepalive !== undefined) {
    channelOptions['grpc.keepalive_time_ms'] = positive(
      'keepalive.timeMs',
      options.keepalive.timeMs,
    );
    if (options.keepalive.timeoutMs !== undefined) {
      channelOptions['grpc.keepalive_timeout_ms'] = positive(
        'keepalive.timeoutMs',
        options.keepalive.timeoutMs,
      );
    }
  }
  return {
    target: resolveTarget(options),
    deadlineMs: positive('deadlineMs', options.deadlineMs ?? defaults.deadlineMs),
    retry,
    credentials: resolveCredentials(options.credentials),
    channelOptions,
    metadata: resolveMetadata(options.metadata),
    codecs: {
      fleetListRequest: options.codec?.fleetListRequest ?? jsonCodec,
      fleetListResponse: options.codec?.fleetListResponse ?? jsonCodec,
      attributes: options.codec?.attributes ?? jsonCodec,
    },
  };
}

/** Validates a deadline or duration; the error names the option to fix. */
export function positive(name: string, value: number): number {
  if (!(Number.isFinite(value) && value > 0)) {
    throw new RangeError(`sessionmanager client: ${name} must be a positive number, got ${value}`);
  }
  return value;
}

function resolveTarget(options: TargetOptions): string {
  if (options.address !== undefined) {
    if (options.address === '') {
      throw new TypeError('sessionmanager client: address must not be empty');
    }
    return options.address;
  }
  if (typeof options.host !== 'string' || options.host === '') {
    throw new TypeError('sessionmanager client: give either host (and port) or address');
  }
  const port = options.port ?? defaults.port;
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw new RangeError(`sessionmanager client: port must be 1-65535, got ${port}`);
  }
  // An IPv6 literal needs brackets to be told apart from the port.
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return `${host}:${port}`;
}

function resolveRetry(retries: Partial<RetryPolicy> | false | undefined): RetryPolicy | undefined {
  if (retries === false) {
    return undefined;
  }
  const policy = { ...defaults.retries, ...retries };
  if (!(Number.isInteger(policy.maxAttempts) && policy.maxAttempts >= 1)) {
    throw new RangeError(
      `sessionmanager client: retries.maxAttempts must be an integer >= 1, got ${policy.maxAttempts}`,
    );
  }
  positive('retries.initialBackoffMs', policy.initialBackoffMs);
  positive('retries.maxBackoffMs', policy.maxBackoffMs);
  if (policy.maxBackoffMs < policy.initialBackoffMs) {
    throw new RangeError(
      'sessionmanager client: retries.maxBackoffMs must be >= retries.initialBackoffMs',
    );
  }
  return policy;
}

function resolveCredentials(
  option: ChannelCredentials | TlsOptions | undefined,
): ChannelCredentials {
  if (option === undefined) {
    return credentials.createInsecure();
  }
  if ('tls' in option) {
    const { ca, cert, key } = option.tls;
    if ((cert === undefined) !== (key === undefined)) {
      throw new TypeError(
        'sessionmanager client: credentials.tls needs both cert and key, or neither',
      );
    }
    return credentials.createSsl(asBuffer(ca), asBuffer(key), asBuffer(cert));
  }
  return option;
}

function asBuffer(pem: string | Buffer | undefined): Buffer | null {
  return pem === undefined ? null : Buffer.from(pem);
}

function resolveMetadata(option: MetadataOption | undefined): () => Promise<Metadata> {
  return async () => {
    const headers = typeof option === 'function' ? await option() : option;
    const metadata = new Metadata();
    for (const [name, value] of Object.entries(headers ?? {})) {
      metadata.set(name, value);
    }
    return metadata;
  };
}
