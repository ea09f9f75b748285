import { type CallScope, UNSCOPED } from '../../call-scope.ts';
import { ErrorCode, SessionError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import { ErrorReply, type Reply } from '../../wire/resp.ts';
import { type Expiring, TimeoutSweeper } from '../../wire/timeouts.ts';
import { ClusterLink } from './cluster-link.ts';
import type { CommandOutcome, LinkEvents, RedisLink } from './link.ts';
import type { RedisConfig } from './redis-config.ts';
import type { Script } from './scripts.ts';
import { SentinelLink } from './sentinel-link.ts';
import { StandaloneLink } from './standalone-link.ts';

/** Redis errors that mean "this node cannot serve now", not a bug in the request. */
const TRANSIENT_REPLY =
  /^(READONLY|LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|BUSY|NOREPLICAS|FENCED)\b/;

/**
 * When Redis stops accepting a write, measured from its send: the earlier of
 * TIMEOUT_SHARE of the command timeout (the service reports a timeout at the
 * whole of it) and DEADLINE_SHARE of the time left before the caller's
 * deadline. The rest is the margin within which the service's and Redis's
 * clocks must agree and a request must reach the service after its caller
 * sent it: the service reads the deadline from a relative timeout, so its
 * view of the deadline is late by that delay (docs/guarantees.md).
 */
const TIMEOUT_SHARE = 3 / 4;
const DEADLINE_SHARE = 1 / 2;

/** The fence of a command that is not a write: a failure is reported at once. */
const UNFENCED = Number.NEGATIVE_INFINITY;

/**
 * One multiplexed Redis connection with the failure behaviour the service
 * needs: no offline queue (calls fail at once while disconnected), a timeout
 * on every command, reconnection with jittered backoff, and one log line per
 * change of state rather than one per failed attempt.
 *
 * A command that times out leaves its link suspect (Redis paused, or a
 * half-open socket), so the link is replaced: the replies still owed on it
 * are dropped instead of queueing up without bound.
 *
 * Writes run as fenced scripts (runScript): Redis refuses a write whose fence
 * has closed, and a write whose link fails before Redis answers is reported
 * failed only once its fence has closed, or at once when the link knows it
 * never left. So no write applies after its caller was told it failed.
 */
export class RedisConnection {
  readonly #config: RedisConfig;
  readonly #logger: Logger;
  readonly #commands: CommandContext;
  #state: 'connecting' | 'up' | 'down' = 'connecting';
  #closed = false;

  constructor(config: RedisConfig, logger: Logger) {
    this.#config = config;
    this.#logger = logger;
    this.#commands = {
      commandTimeoutMs: config.commandTimeoutMs,
      // A timeout fires up to a tenth of itself late, and never more than 50 ms.
      timeouts: new TimeoutSweeper(
        Math.max(1, Math.min(50, Math.floor(config.commandTimeoutMs / 10))),
      ),
      link: this.#open(),
      replace: (suspect) => this.#replace(suspect),
    };
  }

  /**
   * Sends a command that writes nothing (a read, PING); every string in the
   * reply is a Buffer. `key` routes it on Cluster; keyless commands go to
   * every master. It fails at once when its link fails.
   */
  send(
    args: ReadonlyArray<string | Buffer>,
    key: string | undefined,
    scope: CallScope = UNSCOPED,
  ): Promise<Reply> {
    const nowMs = Date.now();
    const refused = refusal(scope, nowMs);
    if (refused) return Promise.reject(refused);
    return new Promise<Reply>((resolve, reject) =>
      dispatch(
        this.#commands,
        new Command(this.#commands, args, key, undefined, resolve, reject, nowMs, UNFENCED),
      ),
    );
  }

  /**
   * Runs a write script on `keys` (Redis keys, one Cluster slot) with `args`.
   * One clock reading gives the command's deadline and its fence, the first
   * argument every script takes (lua/fence.lua; TIMEOUT_SHARE and
   * DEADLINE_SHARE above). The script goes by its SHA1 (EVALSHA), and by its
   * source (EVAL) only when Redis lacks it, with the same fence and deadline.
   */
  runScript(
    script: Script,
    keys: readonly string[],
    args: ReadonlyArray<string | Buffer>,
    scope: CallScope = UNSCOPED,
  ): Promise<Reply> {
    const nowMs = Date.now();
    const refused = refusal(scope, nowMs);
    if (refused) return Promise.reject(refused);
    const fenceAtMs =
      nowMs +
      Math.floor(
        Math.min(
          this.#config.commandTimeoutMs * TIMEOUT_SHARE,
          (scope.deadlineMs - nowMs) * DEADLINE_SHARE,
        ),
      );
    if (fenceAtMs <= nowMs) return Promise.reject(deadlineTooClose());
    const command: Array<string | Buffer> = ['EVALSHA', script.sha1, String(keys.length)];
    for (const key of keys) command.push(key);
    command.push(String(fenceAtMs));
    for (const arg of args) command.push(arg);
    return new Promise<Reply>((resolve, reject) =>
      dispatch(
        this.#commands,
        new Command(this.#commands, command, keys[0], script, resolve, reject, nowMs, fenceAtMs),
      ),
    );
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#commands.link.destroy();
  }

  #open(): RedisLink {
    const events: LinkEvents = {
      up: (detail) => this.#transition('up', detail),
      down: (error, detail) => this.#transition('down', detail, error),
    };
    const config = this.#config;
    const { topology } = config;
    switch (topology.kind) {
      case 'standalone':
        return new StandaloneLink(config, events);
      case 'sentinel':
        return new SentinelLink(config, topology, events);
      case 'cluster':
        return new ClusterLink(config, topology.nodes, events);
    }
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

  #replace(suspect: RedisLink): void {
    if (this.#closed || suspect !== this.#commands.link) return;
    this.#logger.warn('redis command timed out; replacing the connection');
    this.#state = 'connecting';
    this.#commands.link = this.#open();
    suspect.destroy();
  }
}

/** What the commands of one connection share; allocated once per connection. */
interface CommandContext {
  readonly commandTimeoutMs: number;
  readonly timeouts: TimeoutSweeper;
  /** The link new commands go to. */
  link: RedisLink;
  /** Replaces `suspect` if it is still the current link. */
  replace(suspect: RedisLink): void;
}

function dispatch(context: CommandContext, command: Command): void {
  if (command.sweeperSlot < 0) context.timeouts.add(command);
  command.link = context.link;
  context.link.send(command.args, command.key, command);
}

/**
 * One command from its send to its outcome, and its entry in the timeout
 * sweeper: the only object a command allocates beyond its promise.
 */
class Command implements CommandOutcome, Expiring {
  expiresAtMs: number;
  sweeperSlot = -1;
  /** The link it was last sent on: the one to replace if it times out. */
  link: RedisLink | undefined;
  readonly args: Array<string | Buffer> | ReadonlyArray<string | Buffer>;
  readonly key: string | undefined;
  readonly #context: CommandContext;
  /** The script to send by its source if Redis answers NOSCRIPT; cleared once it has been. */
  #script: Script | undefined;
  readonly #resolve: (reply: Reply) => void;
  readonly #reject: (error: SessionError) => void;
  /** Unix ms after which Redis refuses to run it; UNFENCED for a command that writes nothing. */
  readonly #fenceAtMs: number;
  /** A link failure kept from the caller until the fence has closed. */
  #held: { readonly error: unknown } | undefined;

  constructor(
    context: CommandContext,
    args: Array<string | Buffer> | ReadonlyArray<string | Buffer>,
    key: string | undefined,
    script: Script | undefined,
    resolve: (reply: Reply) => void,
    reject: (error: SessionError) => void,
    sentAtMs: number,
    fenceAtMs: number,
  ) {
    this.#context = context;
    this.args = args;
    this.key = key;
    this.#script = script;
    this.#resolve = resolve;
    this.#reject = reject;
    this.expiresAtMs = sentAtMs + context.commandTimeoutMs;
    this.#fenceAtMs = fenceAtMs;
  }

  answered(reply: Reply | ErrorReply): void {
    if (this.sweeperSlot < 0) return;
    if (reply instanceof ErrorReply && this.#script && reply.message.startsWith('NOSCRIPT')) {
      // Redis lost its scripts (a restart): the same command with the source.
      const command = this.args as Array<string | Buffer>;
      command[0] = 'EVAL';
      command[1] = this.#script.source;
      this.#script = undefined;
      dispatch(this.#context, this);
      return;
    }
    this.#context.timeouts.delete(this);
    if (reply instanceof ErrorReply) this.#reject(storeError(reply));
    else this.#resolve(reply);
  }

  failed(error: unknown, sent: boolean): void {
    if (this.sweeperSlot < 0) return;
    if (sent && Date.now() < this.#fenceAtMs) {
      // Its bytes may still reach Redis: the caller learns of the failure
      // when the sweeper passes the fence, after which Redis refuses it.
      this.#held = { error };
      this.expiresAtMs = this.#fenceAtMs;
      return;
    }
    this.#context.timeouts.delete(this);
    this.#reject(storeError(error));
  }

  expire(): void {
    if (this.#held) {
      this.#reject(storeError(this.#held.error));
      return;
    }
    const { commandTimeoutMs } = this.#context;
    this.#reject(
      new SessionError(
        ErrorCode.StoreTimeout,
        `store: Redis did not answer within ${commandTimeoutMs} ms`,
      ),
    );
    if (this.link) this.#context.replace(this.link);
  }
}

/** Why no command is sent for this call, if it is already over. */
function refusal(scope: CallScope, nowMs: number): SessionError | undefined {
  if (scope.cancelled)
    return new SessionError(
      ErrorCode.Cancelled,
      'store: the caller went away before Redis was asked',
    );
  if (scope.deadlineMs <= nowMs)
    return new SessionError(
      ErrorCode.DeadlineExceeded,
      'store: the deadline passed before Redis was asked',
    );
  return undefined;
}

const deadlineTooClose = () =>
  new SessionError(
    ErrorCode.DeadlineExceeded,
    'store: the deadline left no time for a write to reach Redis',
  );

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
