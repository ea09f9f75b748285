import { createCluster, createSentinel, RESP_TYPES } from '@redis/client';
import { type LinkEvents, type RedisLink, reconnectDelay } from './link.ts';
import type { RedisConfig, RedisNode } from './redis-config.ts';
import type { Reply } from './resp.ts';
import { StandaloneLink } from './standalone-link.ts';

/** How soon a Cluster client looks for a new slot map once a node stops answering. */
const CLUSTER_REFRESH_AFTER_MS = 250;

/** RESP2, every string reply as a Buffer, no offline queue. */
const COMMON = {
  RESP: 2,
  // timeout 0: node-redis would otherwise arm an AbortSignal.timeout (5 s) per
  // command; RedisConnection.send enforces REDIS_COMMAND_TIMEOUT itself.
  commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer }, timeout: 0 },
} as const;

function nodeOptions(config: RedisConfig) {
  const { username, password, tls, connectTimeoutMs } = config;
  return {
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    disableOfflineQueue: true,
    socket: {
      ...(tls ? { tls: true as const } : {}),
      connectTimeout: connectTimeoutMs,
      reconnectStrategy: (attempt: number) => reconnectDelay(attempt),
    },
  };
}

export function openLink(config: RedisConfig, events: LinkEvents): RedisLink {
  switch (config.topology.kind) {
    case 'standalone':
      return new StandaloneLink(config, events);
    case 'sentinel':
      return new SentinelLink(config, config.topology, events);
    case 'cluster':
      return new ClusterLink(config, config.topology.nodes, events);
  }
}

const address = (node: RedisNode) => `${node.host}:${node.port}`;

/**
 * Redis Cluster through node-redis: commands go to the master of their key's
 * slot, MOVED and ASK are followed, and a node that stops answering makes the
 * client rediscover the slot map from the other nodes (after
 * CLUSTER_REFRESH_AFTER_MS), which is how a promoted replica is found. Scripts
 * are loaded per node: EVALSHA → NOSCRIPT → EVAL on the node that owns the key.
 */
class ClusterLink implements RedisLink {
  readonly #config: RedisConfig;
  readonly #seeds: readonly RedisNode[];
  readonly #events: LinkEvents;
  #cluster: ReturnType<typeof createClusterClient> | undefined;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  #destroyed = false;

  constructor(config: RedisConfig, seeds: readonly RedisNode[], events: LinkEvents) {
    this.#config = config;
    this.#seeds = seeds;
    this.#events = events;
    this.#connect();
  }

  async send(args: ReadonlyArray<string | Buffer>, key: string | undefined): Promise<Reply> {
    const cluster = this.#cluster;
    if (!cluster?.isReady) throw new Error('Redis Cluster: the slot map is not known yet');
    if (key !== undefined) return cluster.sendCommand<Reply>(key, false, [...args]);
    const replies = await Promise.all(
      cluster.masters.map(async (master) =>
        (await cluster.nodeClient(master)).sendCommand<Reply>(args),
      ),
    );
    return replies[0] ?? null;
  }

  destroy(): void {
    this.#destroyed = true;
    clearTimeout(this.#retry);
    this.#cluster?.destroy();
  }

  #connect(): void {
    const cluster = createClusterClient(this.#config, this.#seeds);
    this.#cluster = cluster;
    const seeds = this.#seeds.map(address).join(',');
    const current = () => this.#cluster === cluster && !this.#destroyed;
    cluster.on('error', (error: unknown) => {
      if (current()) this.#events.down(error, { seeds });
    });
    cluster.on('node-error', (error: unknown, node: RedisNode) => {
      if (current()) this.#events.down(error, { node: address(node) });
    });
    cluster.on('node-ready', () => {
      if (current()) this.#events.up({ seeds, masters: cluster.masters.length });
    });
    cluster.connect().then(
      () => {
        this.#attempt = 0;
        if (current()) this.#events.up({ seeds, masters: cluster.masters.length });
      },
      (error: unknown) => {
        // No seed answered: node-redis does not retry discovery, so try again with a new client.
        cluster.destroy();
        if (!current()) return;
        this.#events.down(error, { seeds });
        this.#retry = setTimeout(() => this.#connect(), reconnectDelay(this.#attempt++));
      },
    );
  }
}

function createClusterClient(config: RedisConfig, seeds: readonly RedisNode[]) {
  return createCluster({
    ...COMMON,
    rootNodes: seeds.map((node) => ({ socket: { host: node.host, port: node.port } })),
    defaults: nodeOptions(config),
    useReplicas: false,
    topologyRefreshOnReconnectionAttemptStrategy: CLUSTER_REFRESH_AFTER_MS,
  });
}

type SentinelTopology = Extract<RedisConfig['topology'], { kind: 'sentinel' }>;

function createSentinelClient(config: RedisConfig, topology: SentinelTopology) {
  const { sentinels, masterName, sentinelUsername, sentinelPassword } = topology;
  return createSentinel({
    ...COMMON,
    name: masterName,
    sentinelRootNodes: sentinels.map((s) => ({ host: s.host, port: s.port })),
    nodeClientOptions: { ...nodeOptions(config), database: config.database },
    sentinelClientOptions: {
      ...(sentinelUsername === undefined ? {} : { username: sentinelUsername }),
      ...(sentinelPassword === undefined ? {} : { password: sentinelPassword }),
      socket: {
        ...(config.tls ? { tls: true as const } : {}),
        connectTimeout: config.connectTimeoutMs,
      },
    },
    masterPoolSize: 1,
    // Errors of the master connection reach us only through `error` events.
    passthroughClientErrorEvents: true,
    // A safety net beside the sentinels' +switch-master messages.
    scanInterval: 10_000,
  });
}

/**
 * Redis Sentinel through node-redis: the master is asked of the sentinels and
 * followed across failovers (node-redis listens for +switch-master).
 *
 * When the connection to the master fails, node-redis would keep the
 * commands in flight and retry them on whichever master it finds next, after
 * the caller has been told they failed. This link instead drops that client
 * (rejecting what was in flight) and starts a new one, which asks the
 * sentinels again until they name a reachable master: the same one back, or
 * a promoted replica. Until then commands are refused at once, which the
 * store reports as UNAVAILABLE.
 */
class SentinelLink implements RedisLink {
  readonly #config: RedisConfig;
  readonly #topology: SentinelTopology;
  readonly #events: LinkEvents;
  readonly #detail: Record<string, unknown>;
  #sentinel: ReturnType<typeof createSentinelClient> | undefined;
  #masterKnown = false;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  #destroyed = false;

  constructor(config: RedisConfig, topology: SentinelTopology, events: LinkEvents) {
    this.#config = config;
    this.#topology = topology;
    this.#events = events;
    this.#detail = {
      sentinels: topology.sentinels.map(address).join(','),
      master: topology.masterName,
    };
    this.#open();
  }

  async send(args: ReadonlyArray<string | Buffer>): Promise<Reply> {
    const sentinel = this.#sentinel;
    if (!this.#masterKnown || !sentinel)
      throw new Error('Redis Sentinel: no reachable master (failover in progress?)');
    return sentinel.sendCommand<Reply>(false, [...args]);
  }

  destroy(): void {
    this.#destroyed = true;
    clearTimeout(this.#retry);
    this.#drop();
  }

  #open(): void {
    const sentinel = createSentinelClient(this.#config, this.#topology);
    this.#sentinel = sentinel;
    const current = () => this.#sentinel === sentinel && !this.#destroyed;
    sentinel.on('error', (error: unknown) => {
      if (!current()) return;
      if (this.#masterKnown && error instanceof Error && error.message.startsWith('Master Client '))
        this.#lost(error);
      else if (!this.#masterKnown) this.#events.down(error, this.#detail);
    });
    // A failover node-redis learnt of: it connects to the new master, then says `ready`.
    sentinel.on('reconnecting', () => {
      if (current()) this.#masterKnown = false;
    });
    sentinel.on('ready', () => {
      if (current()) this.#found();
    });
    sentinel.connect().then(
      () => {
        if (current()) this.#found();
      },
      (error: unknown) => {
        if (!current()) return;
        this.#events.down(error, this.#detail);
        this.#drop();
        this.#retry = setTimeout(() => this.#open(), reconnectDelay(this.#attempt++));
      },
    );
  }

  #found(): void {
    if (this.#masterKnown || !this.#sentinel?.isReady) return;
    this.#masterKnown = true;
    this.#attempt = 0;
    this.#events.up({ ...this.#detail, node: this.#sentinel.getMasterNode() });
  }

  #lost(error: unknown): void {
    this.#masterKnown = false;
    this.#events.down(error, this.#detail);
    this.#drop();
    this.#open();
  }

  #drop(): void {
    const sentinel = this.#sentinel;
    this.#sentinel = undefined;
    this.#masterKnown = false;
    void sentinel?.destroy().catch(() => undefined);
  }
}
