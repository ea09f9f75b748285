import type { Reply } from './resp.ts';

const MAX_BACKOFF_MS = 2000;
const BASE_BACKOFF_MS = 50;

/** Full-jitter exponential backoff, capped: reconnecting replicas do not stampede Redis. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(attempt, 16));
  return Math.floor(random() * ceiling);
}

/** What a link reports to its owner: only changes of state matter, repeats are filtered there. */
export interface LinkEvents {
  up(detail: Record<string, unknown>): void;
  down(error: unknown, detail: Record<string, unknown>): void;
}

/**
 * One logical connection to the data tier, whatever its topology. The same
 * failure behaviour everywhere: no offline queue, so a command fails at once
 * while the node that owns its key is unknown or unreachable, and the link
 * reconnects (and rediscovers the topology) on its own.
 */
export interface RedisLink {
  /**
   * Sends one command. `key` is the command's only key and routes it on
   * Cluster; a keyless command (PING, the health probe) goes to every master,
   * so it fails while any part of the key space has no reachable master.
   */
  send(args: ReadonlyArray<string | Buffer>, key: string | undefined): Promise<Reply>;
  destroy(): void;
}
