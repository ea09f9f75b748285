import { createClient, ErrorReply, RESP_TYPES } from '@redis/client';
import type { RedisConfig } from '../../config.ts';
import { ErrorCode, SessionError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { type Expiring, TimeoutSweeper } from '../../timeouts.ts';
import type { Script } from './scripts.ts';

export type Reply = Buffer | number | null | Reply[];

const MAX_BACKOFF_MS = 2000;
const BASE_BACKOFF_MS = 50;

/** Redis errors that mean "this node cannot serve now", not a bug in the request. */
const TRANSIENT_REPLY = /^(READONLY|LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|FENCED)\b/;

/** Full-jitter exponential backoff, capped: reconnecting replicas do not stampede Redis. */
export function reconnectDelay(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_BACKOFF_MS, BASE_BACKOFF_MS * 2 ** Math.min(attempt, 16));
  return Math.floor(random() * ceiling);
}

function connect(config: RedisConfig) {
  const { host, port, tls, database, username, password, connectTimeoutMs } = config;
  return createClient({
    RESP: 2,
    database,
    ...(username === undefined ? {} : { username }),
    ...(password === undefined ? {} : { password }),
    disableOfflineQueue: true,
    // timeout 0: node-redis would otherwise arm an AbortSignal.timeout (5 s)
    // per command; RedisConnection.send enforces REDIS_COMMAND_TIMEOUT itself.
    commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer }, timeout: 0 },
    socket: {
      host,
      port,
      ...(tls ? { tls: true as const } : {}),
      connectTimeout: connectTimeoutMs,
      reconnectStrategy: (attempt: number) => reconnectDelay(attempt),
    },
  });
}

type Client = ReturnType<typeof connect>;

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
   * Sends one command; every string in the reply is a Buffer. The timeout is
   * an entry in one shared sweeper, not a timer and a Promise.race per command.
   */
  send(args: ReadonlyArray<string | Buffer>): Promise<Reply> {
    const client = this.#client;
    return new Promise<Reply>((resolve, reject) => {
      const pending: Expiring = {
        expiresAtMs: Date.now() + this.#config.commandTimeoutMs,
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
      client.sendCommand<Reply>(args).then(
        (reply) => {
          if (this.#timeouts.delete(pending)) resolve(reply);
        },
        (error: unknown) => {
          if (this.#timeouts.delete(pending)) reject(storeError(error));
        },
      );
    });
  }

  /** Runs a script by its SHA1, sending the source only when Redis lacks it (after a restart). */
  async runScript(
    script: Script,
    keys: readonly string[],
    args: ReadonlyArray<string | Buffer>,
  ): Promise<Reply> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.send(['EVALSHA', script.sha1, ...tail]);
    } catch (error) {
      if (!isNoScript(error)) throw error;
      return this.send(['EVAL', script.source, ...tail]);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#client.destroy();
  }

  #open(): Client {
    const client = connect(this.#config);
    client.on('ready', () => this.#transition('up'));
    client.on('error', (error: Error) => this.#transition('down', error));
    client.connect().catch((error: unknown) => this.#transition('down', error));
    return client;
  }

  #transition(state: 'up' | 'down', error?: unknown): void {
    if (this.#closed || this.#state === state) return;
    this.#state = state;
    const { host, port, database } = this.#config;
    if (state === 'up') this.#logger.info({ host, port, database }, 'redis connected');
    else
      this.#logger.error(
        { host, port, err: error },
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
