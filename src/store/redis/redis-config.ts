/** How the Redis store reaches Redis: parsed from the environment by config.ts. */
export interface RedisConfig {
  /** Which kind of Redis deployment; `host` and `port` apply to standalone only. */
  readonly topology: RedisTopology;
  readonly host: string;
  readonly port: number;
  /** Always 0 on Cluster, which has no other database. */
  readonly database: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
  readonly keyPrefix: string;
  /**
   * The layout new sessions without an owner are written in (keys.ts); the
   * other is read too, except with `compact-only`.
   */
  readonly layout: 'compact' | 'legacy' | 'compact-only';
  /** Payloads of the compact layout in 64-byte pieces while a session stays small (keys.ts). */
  readonly payloadPieces: boolean;
  readonly commandTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

export interface RedisNode {
  readonly host: string;
  readonly port: number;
}

/**
 * Standalone: one Redis at REDIS_HOST. Sentinel: the master the sentinels name
 * REDIS_SENTINEL_MASTER, followed across failovers. Cluster: the slot map
 * discovered from the REDIS_CLUSTER_NODES seeds.
 */
export type RedisTopology =
  | { readonly kind: 'standalone' }
  | SentinelTopology
  | { readonly kind: 'cluster'; readonly nodes: readonly RedisNode[] };

export interface SentinelTopology {
  readonly kind: 'sentinel';
  readonly sentinels: readonly RedisNode[];
  readonly masterName: string;
  readonly sentinelUsername: string | undefined;
  readonly sentinelPassword: string | undefined;
}
