import { createCluster } from '@redis/client';
import type { Reply } from '../../wire/resp.ts';
import { type CommandOutcome, type LinkEvents, type RedisLink, reconnectDelay } from './link.ts';
import { address, COMMON_OPTIONS, nodeOptions, report } from './node-redis.ts';
import type { RedisConfig, RedisNode } from './redis-config.ts';

/** How soon a Cluster client looks for a new slot map once a node stops answering. */
const CLUSTER_REFRESH_AFTER_MS = 250;

/** The slot map is not known (yet, or any more): the command is refused before it is sent. */
class SlotMapUnknownError extends Error {}

/**
 * Redis Cluster through node-redis: commands go to the master of their key's
 * slot, MOVED and ASK are followed, and a node that stops answering makes the
 * client rediscover the slot map from the other nodes (after
 * CLUSTER_REFRESH_AFTER_MS), which is how a promoted replica is found. Scripts
 * are loaded per node: EVALSHA → NOSCRIPT → EVAL on the node that owns the key.
 * A command redirected by MOVED or ASK is sent again with the same arguments,
 * so the fence a write carries holds on whichever node runs it.
 */
export class ClusterLink implements RedisLink {
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

  send(
    args: ReadonlyArray<string | Buffer>,
    key: string | undefined,
    outcome: CommandOutcome,
  ): void {
    const cluster = this.#cluster;
    if (!cluster?.isReady) {
      outcome.failed(
        new SlotMapUnknownError('Redis Cluster: the slot map is not known yet'),
        false,
      );
      return;
    }
    if (key !== undefined) {
      report(cluster.sendCommand<Reply>(key, false, [...args]), outcome);
      return;
    }
    report(
      Promise.all(
        cluster.masters.map(async (master) =>
          (await cluster.nodeClient(master)).sendCommand<Reply>(args),
        ),
      ).then((replies) => replies[0] ?? null),
      outcome,
    );
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
    ...COMMON_OPTIONS,
    rootNodes: seeds.map((node) => ({ socket: { host: node.host, port: node.port } })),
    defaults: nodeOptions(config),
    useReplicas: false,
    topologyRefreshOnReconnectionAttemptStrategy: CLUSTER_REFRESH_AFTER_MS,
  });
}
