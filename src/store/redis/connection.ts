import { ErrorReply } from '@redis/client';
import { ErrorCode, SessionError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { type Expiring, TimeoutSweeper } from '../../timeouts.ts';
import { openLink } from './clients.ts';
import type { RedisLink } from './link.ts';
import type { RedisConfig } from './redis-config.ts';
import type { Reply } from './resp.ts';
import type { Script } from './scripts.ts';

export type { Reply } from './resp.ts';

/** Redis errors that mean "this node cannot serve now", not a bug in the request. */
const TRANSIENT_REPLY =
  /^(READONLY|LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|FENCED)\b/;

type Client = RedisLink;

/**
 * One multiplexed Redis connection with the failure behaviour the service
 * needs: no offline queue (calls fail at once while disconnected), a timeout
 * on every command, reconnection with jittered backoff, and one log line per
 * change of state rather than one per failed attempt.
 *
 * A command that times out leaves its connection suspect (Redis paused, or a
 * half-open socket), so the connection is replaced: the replies still owed on
 * it are dropped instead of queueing up without bound.
 */
export class RedisConnection {
  readonly #config: RedisConfig;
  readonly #logger: Logger;
  readonly #timeouts: TimeoutSweeper;
  #client: Client;
  #state: 'connecting' | 'up' | 'down' = 'connecting';
  #closed = false;

  constructor(config: RedisConfig, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
    // A timeout fires up to a tenth of itself late, and never more than 50 ms.
    this.#timeouts = new TimeoutSweeper(
      Math.max(1, Math.min(50, Math.floor(config.commandTimeoutMs / 10))),
    );
    this.#client = this.#open();
  }

  /**
   * Sends one command; every string in the reply is a Buffer. `key` is the
   * command's key, which routes it on Cluster; keyless commands go to every
   * master. The timeout is an entry in one shared sweeper, not a timer and a
   * Promise.race per command.
   */
  send(args: ReadonlyArray<string | Buffer>, key?: string): Promise<Reply> {
    const client = this.#client;
    return new Promise<Reply>((resolve, reject) => {
      const pending: Expiring = {
        expiresAtMs: Date.now() + this.#config.commandTimeoutMs,
        sweeperSlot: -1,
        expire: () => {
          reject(
            new SessionError(
              ErrorCode.StoreTimeout,
              `store: Redis did not answer within ${this.#config.commandTimeoutMs} ms`,
            ),
          );
          this.#replace(client);
        },
      };
      this.#timeouts.add(pending);
      client.send(args, key).then(
        (reply) => {
          if (this.#timeouts.delete(pending)) resolve(reply);
        },
        (error: unknown) => {
          if (this.#timeouts.delete(pending)) reject(storeError(error));
        },
      );
    });
  }

  /**
   * Runs `command` (EVALSHA sha numkeys key... arg...), sending the script's
   * source instead only when Redis lacks it (after a restart).
   */
  async runScript(script: Script, command: Array<string | Buffer>): Promise<Reply> {
    const key = command[3] as string;
    try {
      return await this.send(command, key);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      const evaluate = command.slice();
      evaluate[0] = 'EVAL';
      evaluate[1] = script.source;
      return this.send(evaluate, key);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#client.destroy();
  }

  #open(): Client {
    return openLink(this.#config, {
      up: (detail) => this.#transition('up', detail),
      down: (error, detail) => this.#transition('down', detail, error),
    });
  }

  #transition(state: 'up' | 'down', detail: Record<string, unknown>, error?: unknown): void {
    if (this.#closed || this.#state === state) return;
    this.#state = state;
    const topology = this.#config.topology.kind;
    if (state === 'up') this.#logger.info({ topology, ...detail }, 'redis connected');
    else
      this.#logger.error(
        { topology, ...detail, err: error },
        'redis unreachable; calls fail with UNAVAILABLE until it returns',
      );
  }

  #replace(suspect: Client): void {
    if (this.#closed || suspect !== this.#client) return;
    this.#logger.warn('redis command timed out; replacing the connection');
    this.#state = 'connecting';
    this.#client = this.#open();
    suspect.destroy();
  }
}

function isNoScript(error: unknown): boolean {
  return (
    error instanceof SessionError &&
    error.cause instanceof ErrorReply &&
    error.cause.message.startsWith('NOSCRIPT')
  );
}

function storeError(error: unknown): SessionError {
  if (error instanceof SessionError) return error;
  if (error instanceof ErrorReply && !TRANSIENT_REPLY.test(error.message)) {
    return new SessionError(ErrorCode.Internal, 'store: Redis refused the command', {
      cause: error,
    });
  }
  return new SessionError(ErrorCode.StoreUnavailable, 'store: Redis is unavailable', {
    cause: error,
  });
}
