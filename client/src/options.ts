import { isIPv4, isIPv6 } from 'node:net';
import type { ChannelCredentials, ChannelOptions } from '@grpc/grpc-js';
import type { HeaderFields } from '../../src/wire/http2/hpack.ts';
import { type Codec, jsonCodec } from './codec.ts';
import type { TlsMaterial } from './lean/pool.ts';
import type { Codecs } from './messages.ts';
import type { RetryPolicy } from './retry.ts';

/**
 * Where the server is: one host, one raw gRPC target, or several instances
 * (`'host:port'` each) to balance calls between, round robin.
 */
export type TargetOptions =
  | { host: string; port?: number; address?: never; addresses?: never }
  | { address: string; host?: never; port?: never; addresses?: never }
  | { addresses: readonly string[]; host?: never; port?: never; address?: never };

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

/** `'lean'` (the default): the package's own HTTP/2 client. `'grpc-js'`: @grpc/grpc-js. */
export type TransportName = 'lean' | 'grpc-js';

export type ClientOptions<Req = unknown, Res = unknown, Attr = unknown> = TargetOptions & {
  /** Default deadline of every call, retries included. Never infinite. */
  deadlineMs?: number;
  /** Retry policy for calls that are safe to repeat; false disables retries. */
  retries?: Partial<RetryPolicy> | false;
  /**
   * Give every write an idempotency key (a random UUID per call, unless the
   * call passes its own), which makes every method safe to retry. `false`
   * sends keys only when a call passes one, and retries writes only where
   * they are safe without (get, touch, delete, set with a key, update with
   * expectedVersion). Default true.
   */
  idempotencyKeys?: boolean;
  /** TLS material; a grpc-js ChannelCredentials with transport 'grpc-js'; insecure when omitted. */
  credentials?: ChannelCredentials | TlsOptions;
  metadata?: MetadataOption;
  keepalive?: KeepaliveOptions;
  /** Codecs for the opaque payloads; JSON for each one omitted. */
  codec?: {
    fleetListRequest?: Codec<Req>;
    fleetListResponse?: Codec<Res>;
    attributes?: Codec<Attr>;
  };
  /** Which implementation of gRPC carries the calls. */
  transport?: TransportName;
  /** The largest response accepted, in bytes; a larger one fails with RESOURCE_EXHAUSTED. */
  maxResponseBytes?: number;
  /** How often DNS names are resolved again (also after a connection fails). Lean transport only. */
  dnsRefreshMs?: number;
};

export const defaults = Object.freeze({
  port: 6027,
  deadlineMs: 5000,
  retries: Object.freeze({ maxAttempts: 3, initialBackoffMs: 50, maxBackoffMs: 1000 }),
  transport: 'lean' as TransportName,
  maxResponseBytes: 4 * 1024 * 1024,
  dnsRefreshMs: 30_000,
  keepaliveTimeoutMs: 20_000,
});

export interface ResolvedOptions<Req, Res, Attr> {
  transport: TransportName;
  /**
   * One gRPC target per channel. Several only for `addresses` that one
   * grpc-js target cannot express (several hostnames, or IPv4 and IPv6
   * literals mixed); the client then balances between the channels itself.
   */
  targets: string[];
  deadlineMs: number;
  retry: RetryPolicy | undefined;
  idempotencyKeys: boolean;
  /** Reconnect backoff, the retry policy's (its defaults when retries are off). */
  backoff: RetryPolicy;
  /** TLS material, or grpc-js credentials (transport 'grpc-js' only); undefined for plaintext. */
  credentials: ChannelCredentials | TlsMaterial | undefined;
  keepalive: { timeMs: number; timeoutMs: number } | undefined;
  maxResponseBytes: number;
  dnsRefreshMs: number;
  channelOptions: ChannelOptions;
  metadata: () => Promise<HeaderFields>;
  codecs: Codecs<Req, Res, Attr>;
}

export function resolveOptions<Req, Res, Attr>(
  options: ClientOptions<Req, Res, Attr>,
): ResolvedOptions<Req, Res, Attr> {
  const transport = options.transport ?? defaults.transport;
  if (transport !== 'lean' && transport !== 'grpc-js') {
    throw new TypeError(
      `sessionmanager client: transport must be 'lean' or 'grpc-js', got ${JSON.stringify(transport)}`,
    );
  }
  const retry = resolveRetry(options.retries);
  // grpc-js waits 1 s (growing to 120 s) before reconnecting to a server that
  // went away, and fails calls fast meanwhile: retries would find no
  // connection. Reconnecting on the retry schedule gives them one to use.
  const backoff = retry ?? defaults.retries;
  const channelOptions: ChannelOptions = {
    'grpc.initial_reconnect_backoff_ms': backoff.initialBackoffMs,
    'grpc.max_reconnect_backoff_ms': backoff.maxBackoffMs,
  };
  let keepalive: ResolvedOptions<Req, Res, Attr>['keepalive'];
  if (options.keepalive !== undefined) {
    keepalive = {
      timeMs: positive('keepalive.timeMs', options.keepalive.timeMs),
      timeoutMs: positive(
        'keepalive.timeoutMs',
        options.keepalive.timeoutMs ?? defaults.keepaliveTimeoutMs,
      ),
    };
    channelOptions['grpc.keepalive_time_ms'] = keepalive.timeMs;
    channelOptions['grpc.keepalive_timeout_ms'] = keepalive.timeoutMs;
  }
  const targets = resolveTargets(options);
  if (options.addresses !== undefined) {
    // Every instance a target resolves to gets a connection and a share of the
    // calls; grpc-js's default (pick_first) would send them all to one.
    channelOptions['grpc.service_config'] = ROUND_ROBIN;
  }
  return {
    transport,
    targets,
    deadlineMs: positive('deadlineMs', options.deadlineMs ?? defaults.deadlineMs),
    retry,
    idempotencyKeys: options.idempotencyKeys ?? true,
    backoff,
    credentials: resolveCredentials(options.credentials, transport),
    keepalive,
    maxResponseBytes: positive(
      'maxResponseBytes',
      options.maxResponseBytes ?? defaults.maxResponseBytes,
    ),
    dnsRefreshMs: positive('dnsRefreshMs', options.dnsRefreshMs ?? defaults.dnsRefreshMs),
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

const ROUND_ROBIN = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

function resolveTargets(options: TargetOptions): string[] {
  if (options.addresses !== undefined) {
    if (options.host !== undefined || options.port !== undefined || options.address !== undefined) {
      throw new TypeError(
        'sessionmanager client: give addresses alone, without host, port or address',
      );
    }
    return addressTargets(options.addresses);
  }
  return [resolveTarget(options)];
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

interface Endpoint {
  kind: 'ipv4' | 'ipv6' | 'dns';
  /** `host:port`, the IPv6 literal in brackets. */
  hostPort: string;
}

/**
 * IP literals of one family make one grpc-js target (`ipv4:a:p,b:p`) that
 * grpc-js balances itself; a single hostname makes one `dns:///` target,
 * balanced over every address the name resolves to. Anything else (several
 * hostnames, mixed families) makes one target per entry.
 */
function addressTargets(addresses: readonly string[]): string[] {
  if (!Array.isArray(addresses) || addresses.length === 0) {
    throw new TypeError(
      'sessionmanager client: addresses must be a non-empty array of "host:port" strings',
    );
  }
  const endpoints = addresses.map((entry, index) => parseAddress(entry, index));
  endpoints.forEach((endpoint, index) => {
    const first = endpoints.findIndex((other) => other.hostPort === endpoint.hostPort);
    if (first !== index) {
      throw new TypeError(
        `sessionmanager client: addresses[${index}] repeats addresses[${first}] (${endpoint.hostPort})`,
      );
    }
  });
  const kinds = new Set(endpoints.map((endpoint) => endpoint.kind));
  const [kind] = kinds;
  if (kinds.size === 1 && (kind === 'ipv4' || kind === 'ipv6')) {
    return [`${kind}:${endpoints.map((endpoint) => endpoint.hostPort).join(',')}`];
  }
  return endpoints.map(({ kind, hostPort }) =>
    kind === 'dns' ? `dns:///${hostPort}` : `${kind}:${hostPort}`,
  );
}

const HOSTNAME = /^[A-Za-z0-9_]([A-Za-z0-9_.-]*[A-Za-z0-9_.])?$/;

function parseAddress(entry: unknown, index: number): Endpoint {
  const invalid = (why: string) =>
    new TypeError(
      `sessionmanager client: addresses[${index}] must be "host:port" or "[ipv6]:port" (${why}), got ${JSON.stringify(entry)}`,
    );
  if (typeof entry !== 'string') {
    throw invalid('not a string');
  }
  const match = /^(?:\[([^\]]*)\]|([^:[\]]*))(?::(\d+))?$/.exec(entry);
  if (match === null) {
    throw invalid(
      entry.includes('/')
        ? 'no scheme or path; use `address` for a raw gRPC target'
        : entry.split(':').length > 2
          ? 'an IPv6 literal needs brackets'
          : 'not a host and port',
    );
  }
  const [, bracketed, plain, portText] = match;
  const port = portText === undefined ? defaults.port : Number(portText);
  if (!(Number.isInteger(port) && port > 0 && port < 65536)) {
    throw invalid('the port must be 1-65535');
  }
  if (bracketed !== undefined) {
    if (!isIPv6(bracketed)) {
      throw invalid('not an IPv6 literal in the brackets');
    }
    return { kind: 'ipv6', hostPort: `[${bracketed}]:${port}` };
  }
  const host = plain ?? '';
  if (isIPv4(host)) {
    return { kind: 'ipv4', hostPort: `${host}:${port}` };
  }
  if (!HOSTNAME.test(host)) {
    throw invalid(host === '' ? 'no host' : 'not a valid hostname');
  }
  return { kind: 'dns', hostPort: `${host.toLowerCase()}:${port}` };
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
  transport: TransportName,
): ChannelCredentials | TlsMaterial | undefined {
  if (option === undefined) {
    return undefined;
  }
  if ('tls' in option) {
    const { ca, cert, key } = option.tls;
    if ((cert === undefined) !== (key === undefined)) {
      throw new TypeError(
        'sessionmanager client: credentials.tls needs both cert and key, or neither',
      );
    }
    return { ca: asBuffer(ca), cert: asBuffer(cert), key: asBuffer(key) };
  }
  if (transport !== 'grpc-js') {
    throw new TypeError(
      "sessionmanager client: grpc-js ChannelCredentials need transport: 'grpc-js'; give credentials: { tls: { ca, cert, key } } instead",
    );
  }
  return option;
}

function asBuffer(pem: string | Buffer | undefined): Buffer | undefined {
  return pem === undefined ? undefined : Buffer.from(pem);
}

/** Header names a caller may not set: HTTP/2 and gRPC use them. */
const RESERVED =
  /^(:|grpc-)|^(content-type|te|user-agent|connection|host|transfer-encoding|keep-alive|upgrade)$/;
const HEADER_NAME = /^[0-9a-z_.-]+$/;
const HEADER_VALUE = /^[\x20-\x7e]*$/;

/** The metadata as header fields, checked: lowercase names, printable ASCII values. */
function resolveMetadata(option: MetadataOption | undefined): () => Promise<HeaderFields> {
  if (option === undefined) return async () => [];
  if (typeof option !== 'function') {
    const fields = toFields(option);
    return async () => fields;
  }
  return async () => toFields(await option());
}

export function toFields(headers: Headers | undefined): HeaderFields {
  const fields: Array<readonly [string, string]> = [];
  for (const [given, value] of Object.entries(headers ?? {})) {
    const name = given.toLowerCase();
    if (!HEADER_NAME.test(name) || RESERVED.test(name)) {
      throw new TypeError(`sessionmanager client: metadata cannot carry the header "${given}"`);
    }
    if (typeof value !== 'string' || !HEADER_VALUE.test(value)) {
      throw new TypeError(
        `sessionmanager client: the value of metadata "${given}" must be a string of printable ASCII`,
      );
    }
    fields.push([name, value]);
  }
  return fields;
}
