import { createSentinel } from '@redis/client';
import type { Reply } from '../../wire/resp.ts';
import { type CommandOutcome, type LinkEvents, type RedisLink, reconnectDelay } from './link.ts';
import { address, COMMON_OPTIONS, nodeOptions, report } from './node-redis.ts';
import type { RedisConfig, SentinelTopology } from './redis-config.ts';

/** No master is known (yet, or any more): the command is refused before it is sent. */
class NoMasterError extends Error {}

function createSentinelClient(config: RedisConfig, topology: SentinelTopology) {
  const { sentinels, masterName, sentinelUsername, sentinelPassword } = topology;
  return createSentinel({
    ...COMMON_OPTIONS,
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
export class SentinelLink implements RedisLink {
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

  send(
    args: ReadonlyArray<string | Buffer>,
    _key: string | undefined,
    outcome: CommandOutcome,
  ): void {
    const sentinel = this.#sentinel;
    if (!this.#masterKnown || !sentinel) {
      outcome.failed(
        new NoMasterError('Redis Sentinel: no reachable master (failover in progress?)'),
        false,
      );
      return;
    }
    report(sentinel.sendCommand<Reply>(false, [...args]), outcome);
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
