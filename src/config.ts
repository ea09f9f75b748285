import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { createSecureContext } from 'node:tls';
import { z } from 'zod';
import type { TokenGrant } from './auth.ts';
import { parseTokenGrants } from './auth-tokens.ts';
import type { RedisConfig, RedisNode, RedisTopology } from './store/redis/redis-config.ts';
import type { OwnerLimitPolicy } from './store/store.ts';
import type { Http2Limits } from './wire/http2/limits.ts';

/** Everything the service reads from its environment, parsed once at start. */
export interface Config {
  readonly host: string;
  readonly port: number;
  /** The admin and HTTP/JSON port; 0 turns it off. */
  readonly httpPort: number;
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly shutdownGraceMs: number;
  /** `lean`: our gRPC server on its own HTTP/2 layer; `grpc-js`: @grpc/grpc-js. */
  readonly transport: 'lean' | 'grpc-js';
  /** Server processes sharing the port (node:cluster); 1 serves in this process. */
  readonly workers: number;
  readonly session: SessionLimits;
  /** Absent: the embedded in-memory store. */
  readonly redis: RedisConfig | undefined;
  readonly memoryMaxBytes: number;
  /** Bearer tokens every session call must present; absent: calls are not authenticated. */
  readonly auth: AuthConfig | undefined;
  /** TLS on the gRPC and HTTP ports; absent: plaintext. */
  readonly tls: TlsConfig | undefined;
  /** What one HTTP/2 peer may make the lean transport hold or do. */
  readonly http2: Http2Limits;
}

/** Room for keys, attribute names and framing beside a session's own bytes, in one gRPC message. */
export const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

export interface AuthConfig {
  /** Digests only: the tokens themselves are not kept. */
  readonly tokens: readonly TokenGrant[];
}

export interface TlsConfig {
  /** PEM certificate chain and private key the server presents. */
  readonly cert: Buffer;
  readonly key: Buffer;
  /** PEM CA certificates; when set, clients must present a certificate they signed. */
  readonly clientCa: Buffer | undefined;
}

export interface SessionLimits {
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly maxLifetimeMs: number;
  readonly maxBytes: number;
  readonly maxAttributes: number;
  readonly idempotencyTtlMs: number;
  readonly maxPerOwner: number;
  readonly atOwnerLimit: OwnerLimitPolicy;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** The error that stops the start: one line per problem, each naming its variable. */
const invalid = (...problems: string[]) =>
  new ConfigError(`invalid configuration:\n  ${problems.join('\n  ')}`);

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Parses `900s`, `15m`, `1h`, `250ms` or a bare number of seconds into milliseconds. */
export function parseDuration(text: string): number | undefined {
  const match = /^(\d+)(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) return undefined;
  const amount = Number(match[1]);
  const unit = UNIT_MS[match[2] ?? 's'] ?? 1000;
  const ms = amount * unit;
  return Number.isSafeInteger(ms) ? ms : undefined;
}

/** No braces, or a non-empty hash tag at the first "{": the idempotency records' tags rely on it (keys.ts). */
function tagged(prefix: string): boolean {
  const open = prefix.indexOf('{');
  if (open < 0) return !prefix.includes('}');
  return prefix.indexOf('}', open + 1) > open + 1;
}

const duration = (minMs: number) =>
  z.string().transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms === undefined || ms < minMs) {
      ctx.addIssue({
        code: 'custom',
        message: `expected a duration of at least ${minMs} ms such as 900s, 15m or 1h`,
      });
      return z.NEVER;
    }
    return ms;
  });

const integer = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'expected a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** `host:port, host:port`; IPv6 hosts in brackets: `[::1]:26379`. */
const nodeList = z.string().transform((text, ctx) => {
  const nodes: RedisNode[] = [];
  for (const item of text.split(',')) {
    const match = /^(?:\[([^\]]+)\]|([^:\s]+)):(\d{1,5})$/.exec(item.trim());
    const port = Number(match?.[3]);
    const host = match?.[1] ?? match?.[2];
    if (!host || !(port >= 1 && port <= 65535)) {
      ctx.addIssue({ code: 'custom', message: `expected host:port[,host:port...], got "${item}"` });
      return z.NEVER;
    }
    nodes.push(Object.freeze({ host, port }));
  }
  return Object.freeze(nodes);
});

const flag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const ENV = z.object({
  HOST: z.string().min(1).default('0.0.0.0'),
  PORT: integer(0, 65535).default(6027),
  HTTP_PORT: integer(0, 65535).default(8080),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SHUTDOWN_GRACE: duration(0).default(10_000),
  GRPC_TRANSPORT: z.enum(['lean', 'grpc-js']).default('lean'),
  // 1 by default: on a 2-core box shared with Redis and the clients, 2 workers
  // measured no faster than 1 (docs/performance.md). `auto` uses every core.
  WORKERS: z.union([z.literal('auto'), integer(1, 256)]).default(1),
  SESSION_TTL: duration(1000).default(15 * 60_000),
  SESSION_MAX_TTL: duration(1000).default(24 * 3_600_000),
  SESSION_MAX_LIFETIME: duration(1000).default(24 * 3_600_000),
  SESSION_MAX_BYTES: integer(1024, 64 * 1024 * 1024).default(1024 * 1024),
  SESSION_MAX_ATTRIBUTES: integer(1, 100_000).default(1000),
  // Ten minutes: far past any one call's retries (seconds, within its
  // deadline), long enough for a caller that crashed mid-booking to restart
  // and repeat its step with the same key, and short enough that the copies
  // of consumed sessions the records hold stay a small multiple of the
  // sessions themselves (docs/guarantees.md).
  IDEMPOTENCY_TTL: duration(1000).default(10 * 60_000),
  // A rider holds a few live quotes; a hundred leaves room for a busy flow and
  // bounds what one owner costs to list, revoke and keep exact.
  SESSION_MAX_PER_OWNER: integer(1, 10_000).default(100),
  // Evicting the oldest by default, as Spring Security's session concurrency
  // control does: a rider who asks for a new quote gets it, and the quote
  // they are least likely to book goes. `refuse` suits flows where a new
  // session must not end an older one (RESOURCE_EXHAUSTED on owner).
  SESSION_OWNER_LIMIT: z.enum(['evict-oldest', 'refuse']).default('evict-oldest'),
  MEMORY_MAX_BYTES: integer(1024 * 1024, Number.MAX_SAFE_INTEGER).default(256 * 1024 * 1024),
  REDIS_HOST: z.string().min(1).optional(),
  REDIS_PORT: integer(1, 65535).default(6379),
  REDIS_DATABASE: integer(0, 15).default(5),
  REDIS_USERNAME: z.string().min(1).optional(),
  REDIS_PASSWORD: z.string().min(1).optional(),
  REDIS_TLS: flag.default(false),
  REDIS_SENTINELS: nodeList.optional(),
  REDIS_SENTINEL_MASTER: z.string().min(1).optional(),
  REDIS_SENTINEL_USERNAME: z.string().min(1).optional(),
  REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  REDIS_CLUSTER_NODES: nodeList.optional(),
  REDIS_KEY_PREFIX: z
    .string()
    .max(64)
    .refine(tagged, {
      message:
        'a prefix with "{" or "}" must hold a Redis Cluster hash tag: "{", then at least one character, then "}" (keys.ts)',
    })
    .default('sessionmanager:'),
  // The layout new sessions are written in (docs/redis-layout.md). `compact`
  // and `legacy` read both; `legacy` is for the rollout from a version before
  // the compact layout, while replicas that know only the legacy one still
  // run. `compact-only` saves a second look on a miss once no session in the
  // legacy layout can be left (SESSION_MAX_LIFETIME after the last was written).
  REDIS_SESSION_LAYOUT: z.enum(['compact', 'legacy', 'compact-only']).default('compact'),
  // On: payloads of up to 1 KB in 64-byte pieces, so that a small session
  // stays a listpack (docs/redis-layout.md: 546 against 754 bytes at 100-byte
  // payloads). Off: whole, for a little less CPU per call.
  REDIS_PAYLOAD_PIECES: flag.default(true),
  REDIS_COMMAND_TIMEOUT: duration(1).default(1000),
  REDIS_CONNECT_TIMEOUT: duration(1).default(2000),
  AUTH_TOKENS: z.string().optional(),
  AUTH_TOKENS_FILE: z.string().min(1).optional(),
  TLS_CERT_FILE: z.string().min(1).optional(),
  TLS_KEY_FILE: z.string().min(1).optional(),
  TLS_CLIENT_CA_FILE: z.string().min(1).optional(),
  H2_MAX_CONCURRENT_STREAMS: integer(1, 1_000_000).default(1000),
  H2_CONNECTION_WINDOW: integer(65_535, 2 ** 31 - 1).optional(),
  H2_MAX_BUFFERED_BYTES: integer(65_535, Number.MAX_SAFE_INTEGER).default(32 * 1024 * 1024),
  H2_MAX_UNSENT_BYTES: integer(16 * 1024, Number.MAX_SAFE_INTEGER).default(1024 * 1024),
  H2_WRITE_STALL_TIMEOUT: duration(100).default(10_000),
  H2_IDLE_TIMEOUT: duration(1000).default(300_000),
  H2_HANDSHAKE_TIMEOUT: duration(100).default(10_000),
  H2_MAX_CONNECTIONS: integer(1, 1_000_000).default(4096),
  H2_RESET_BURST: integer(1, 1_000_000).default(1000),
  H2_RESETS_PER_SECOND: integer(1, 1_000_000).default(33),
  H2_ABUSE_PENALTY: duration(0).default(2000),
});

/** Variables whose values never appear in an error message. */
const SECRET = new Set(['AUTH_TOKENS', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD']);

function readSetting(variable: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    throw invalid(
      `${variable}=${JSON.stringify(path)}: cannot read it (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
    );
  }
}

function authConfig(e: z.infer<typeof ENV>): AuthConfig | undefined {
  if (e.AUTH_TOKENS !== undefined && e.AUTH_TOKENS_FILE !== undefined)
    throw invalid('AUTH_TOKENS and AUTH_TOKENS_FILE are both set: use one');
  let parsed: ReturnType<typeof parseTokenGrants> | undefined;
  if (e.AUTH_TOKENS !== undefined)
    parsed = parseTokenGrants(
      'AUTH_TOKENS',
      e.AUTH_TOKENS.split(',').map((t) => t.trim()),
    );
  else if (e.AUTH_TOKENS_FILE !== undefined) {
    const lines = readSetting('AUTH_TOKENS_FILE', e.AUTH_TOKENS_FILE)
      .toString('utf8')
      .split(/\r?\n/)
      .map((line) => line.trim())
      .filter((line) => line !== '' && !line.startsWith('#'));
    parsed = parseTokenGrants('AUTH_TOKENS_FILE', lines);
  }
  if (parsed === undefined) return undefined;
  if (parsed.problems.length > 0) throw invalid(...parsed.problems);
  return { tokens: parsed.grants };
}

function tlsConfig(e: z.infer<typeof ENV>): TlsConfig | undefined {
  const { TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, TLS_CLIENT_CA_FILE: caFile } = e;
  if (certFile === undefined && keyFile === undefined) {
    if (caFile !== undefined)
      throw invalid(
        'TLS_CLIENT_CA_FILE is set without TLS_CERT_FILE and TLS_KEY_FILE: mutual TLS needs the server certificate too',
      );
    return undefined;
  }
  if (certFile === undefined || keyFile === undefined)
    throw invalid(
      `${certFile === undefined ? 'TLS_KEY_FILE is set without TLS_CERT_FILE' : 'TLS_CERT_FILE is set without TLS_KEY_FILE'}: set both`,
    );
  const cert = readSetting('TLS_CERT_FILE', certFile);
  const key = readSetting('TLS_KEY_FILE', keyFile);
  const clientCa = caFile === undefined ? undefined : readSetting('TLS_CLIENT_CA_FILE', caFile);
  try {
    createSecureContext({ cert, key, ...(clientCa && { ca: clientCa }) });
  } catch (error) {
    throw invalid(
      `TLS_CERT_FILE, TLS_KEY_FILE${caFile === undefined ? '' : ', TLS_CLIENT_CA_FILE'}: not a usable PEM certificate, key${caFile === undefined ? '' : ' and CA'} (${(error as Error).message})`,
    );
  }
  return Object.freeze({ cert, key, clientCa });
}

type Env = Record<string, string | undefined>;

/**
 * Which Redis deployment the variables select, if any. Settings that belong
 * to another deployment, or that it cannot honour, stop the start with a
 * message saying why rather than being ignored.
 */
function redisTopology(e: z.infer<typeof ENV>, present: Env): RedisTopology | undefined {
  const problems: string[] = [];
  const conflict = (a: string, b: string, why: string) => {
    if (present[a] !== undefined && present[b] !== undefined)
      problems.push(`${a} and ${b} are both set: ${why}`);
  };
  conflict(
    'REDIS_HOST',
    'REDIS_SENTINELS',
    'with Sentinel the master address comes from the sentinels; unset REDIS_HOST',
  );
  conflict(
    'REDIS_HOST',
    'REDIS_CLUSTER_NODES',
    'with Cluster the nodes come from REDIS_CLUSTER_NODES; unset REDIS_HOST',
  );
  conflict('REDIS_SENTINELS', 'REDIS_CLUSTER_NODES', 'choose Sentinel or Cluster, not both');
  if ((e.REDIS_SENTINELS || e.REDIS_CLUSTER_NODES) && present.REDIS_PORT !== undefined)
    problems.push(
      'REDIS_PORT is set with REDIS_SENTINELS or REDIS_CLUSTER_NODES: it applies to standalone Redis only; give ports in the node list',
    );
  if (e.REDIS_SENTINELS && !e.REDIS_SENTINEL_MASTER)
    problems.push(
      'REDIS_SENTINELS is set without REDIS_SENTINEL_MASTER: name the master the sentinels monitor',
    );
  if (!e.REDIS_SENTINELS) {
    for (const name of [
      'REDIS_SENTINEL_MASTER',
      'REDIS_SENTINEL_USERNAME',
      'REDIS_SENTINEL_PASSWORD',
    ])
      if (present[name] !== undefined) problems.push(`${name} is set without REDIS_SENTINELS`);
  }
  if (e.REDIS_CLUSTER_NODES && present.REDIS_DATABASE !== undefined && e.REDIS_DATABASE !== 0)
    problems.push(
      `REDIS_DATABASE=${JSON.stringify(present.REDIS_DATABASE)}: Redis Cluster has only database 0; unset REDIS_DATABASE or set it to 0`,
    );
  if (problems.length > 0) throw invalid(...problems);

  if (e.REDIS_SENTINELS && e.REDIS_SENTINEL_MASTER)
    return Object.freeze({
      kind: 'sentinel',
      sentinels: e.REDIS_SENTINELS,
      masterName: e.REDIS_SENTINEL_MASTER,
      sentinelUsername: e.REDIS_SENTINEL_USERNAME,
      sentinelPassword: e.REDIS_SENTINEL_PASSWORD,
    });
  if (e.REDIS_CLUSTER_NODES)
    return Object.freeze({ kind: 'cluster', nodes: e.REDIS_CLUSTER_NODES });
  if (e.REDIS_HOST) return Object.freeze({ kind: 'standalone' });
  return undefined;
}

/** Builds the Config from an environment; throws a ConfigError naming every bad variable. */
export function loadConfig(env: Env = process.env): Config {
  // An empty variable means "not set", as in most twelve-factor services.
  const present = Object.fromEntries(
    Object.entries(env).filter(([name, value]) => name in ENV.shape && value !== ''),
  );
  const parsed = ENV.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0]);
      const value = SECRET.has(name) ? '<redacted>' : JSON.stringify(env[name]);
      return `${name}=${value}: ${issue.message}`;
    });
    throw invalid(...lines);
  }
  const e = parsed.data;
  const session: SessionLimits = {
    defaultTtlSeconds: Math.ceil(e.SESSION_TTL / 1000),
    maxTtlSeconds: Math.floor(e.SESSION_MAX_TTL / 1000),
    maxLifetimeMs: e.SESSION_MAX_LIFETIME,
    maxBytes: e.SESSION_MAX_BYTES,
    maxAttributes: e.SESSION_MAX_ATTRIBUTES,
    idempotencyTtlMs: e.IDEMPOTENCY_TTL,
    maxPerOwner: e.SESSION_MAX_PER_OWNER,
    atOwnerLimit: e.SESSION_OWNER_LIMIT,
  };
  if (session.defaultTtlSeconds > session.maxTtlSeconds) {
    throw invalid(
      `SESSION_TTL=${JSON.stringify(env.SESSION_TTL)}: must not exceed SESSION_MAX_TTL (${session.maxTtlSeconds}s)`,
    );
  }
  const topology = redisTopology(e, present);
  const redis: RedisConfig | undefined = topology
    ? {
        topology,
        host: e.REDIS_HOST ?? '',
        port: e.REDIS_PORT,
        database: topology.kind === 'cluster' ? 0 : e.REDIS_DATABASE,
        username: e.REDIS_USERNAME,
        password: e.REDIS_PASSWORD,
        tls: e.REDIS_TLS,
        keyPrefix: e.REDIS_KEY_PREFIX,
        layout: e.REDIS_SESSION_LAYOUT,
        payloadPieces: e.REDIS_PAYLOAD_PIECES,
        commandTimeoutMs: e.REDIS_COMMAND_TIMEOUT,
        connectTimeoutMs: e.REDIS_CONNECT_TIMEOUT,
      }
    : undefined;
  // The in-memory store lives in one process, so it cannot be shared by workers.
  if (!redis && typeof e.WORKERS === 'number' && e.WORKERS > 1) {
    throw invalid(
      `WORKERS=${JSON.stringify(env.WORKERS)}: more than one worker needs REDIS_HOST (the in-memory store lives in one process)`,
    );
  }
  const auth = authConfig(e);
  const http2 = http2Limits(e, session);
  const workers = e.WORKERS === 'auto' ? (redis ? availableParallelism() : 1) : e.WORKERS;
  return Object.freeze({
    host: e.HOST,
    port: e.PORT,
    httpPort: e.HTTP_PORT,
    logLevel: e.LOG_LEVEL,
    shutdownGraceMs: e.SHUTDOWN_GRACE,
    transport: e.GRPC_TRANSPORT,
    workers,
    session: Object.freeze(session),
    redis: redis && Object.freeze(redis),
    memoryMaxBytes: e.MEMORY_MAX_BYTES,
    auth: auth && Object.freeze({ tokens: Object.freeze(auth.tokens) }),
    tls: tlsConfig(e),
    http2,
  });
}

function http2Limits(e: z.infer<typeof ENV>, session: SessionLimits): Http2Limits {
  // A unary request is held whole until it ends, so the largest must fit in a connection's window.
  const largestRequest = session.maxBytes + MESSAGE_OVERHEAD_BYTES + 5;
  // By default a connection may hold one largest request and no more: a
  // client parking bodies (or many at once) holds that much, not megabytes.
  const connectionWindow = e.H2_CONNECTION_WINDOW ?? Math.ceil(largestRequest / 65_536) * 65_536;
  if (connectionWindow < largestRequest)
    throw invalid(
      `H2_CONNECTION_WINDOW=${connectionWindow}: must hold the largest request (${largestRequest} bytes with SESSION_MAX_BYTES=${session.maxBytes})`,
    );
  if (e.H2_MAX_BUFFERED_BYTES < connectionWindow)
    throw invalid(
      `H2_MAX_BUFFERED_BYTES=${e.H2_MAX_BUFFERED_BYTES}: must be at least H2_CONNECTION_WINDOW (${connectionWindow})`,
    );
  return Object.freeze({
    maxConcurrentStreams: e.H2_MAX_CONCURRENT_STREAMS,
    connectionWindowBytes: connectionWindow,
    maxBufferedRequestBytes: e.H2_MAX_BUFFERED_BYTES,
    maxUnsentBytes: e.H2_MAX_UNSENT_BYTES,
    writeStallTimeoutMs: e.H2_WRITE_STALL_TIMEOUT,
    idleTimeoutMs: e.H2_IDLE_TIMEOUT,
    handshakeTimeoutMs: e.H2_HANDSHAKE_TIMEOUT,
    maxConnections: e.H2_MAX_CONNECTIONS,
    resetBurst: e.H2_RESET_BURST,
    resetsPerSecond: e.H2_RESETS_PER_SECOND,
    abusePenaltyMaxMs: e.H2_ABUSE_PENALTY,
  });
}

/**
 * True when the server listens beyond loopback with neither TLS nor tokens:
 * fine for a trusted network in development, worth a warning at start.
 */
export function insecureExposure(config: Pick<Config, 'host' | 'tls' | 'auth'>): boolean {
  const loopback =
    config.host === 'localhost' || config.host === '::1' || config.host.startsWith('127.');
  return !loopback && config.tls === undefined && config.auth === undefined;
}
