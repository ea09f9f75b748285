import type { ErrorReply, Reply } from '../../wire/resp.ts';

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
 * Where a link reports the outcome of one command, exactly once. The owner
 * must tell a write that failed before Redis answered from one that never
 * reached Redis: only the second may be reported failed at once, since the
 * first may still run (its bytes may be in the network, or in Redis's input
 * buffer).
 */
export interface CommandOutcome {
  /** Redis answered: with a reply, or with an error reply (a refusal is an answer). */
  answered(reply: Reply | ErrorReply): void;
  /**
   * The link failed before Redis answered. `sent` is false only when the link
   * knows the command never left this process: it was refused before being
   * queued (the link was not ready, or its socket already closed).
   */
  failed(error: unknown, sent: boolean): void;
}

/**
 * One logical connection to the data tier, whatever its topology. The same
 * failure behaviour everywhere: no offline queue, so a command fails at once
 * while the node that owns its key is unknown or unreachable, and the link
 * reconnects (and rediscovers the topology) on its own.
 */
export interface RedisLink {
  /**
   * Sends one command and reports its outcome to `outcome`. `key` is the
   * command's only key and routes it on Cluster; a keyless command (PING,
   * the health probe) goes to every master, so it fails while any part of
   * the key space has no reachable master.
   */
  send(
    args: ReadonlyArray<string | Buffer>,
    key: string | undefined,
    outcome: CommandOutcome,
  ): void;
  /** Closes the link; the commands it still owes are reported failed (as sent, if they were). */
  destroy(): void;
}
