import { connect as connectTcp, isIP, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import {
  ErrorReply,
  ProtocolError,
  type Reply,
  ReplyParser,
  writeCommand,
} from '../../wire/resp.ts';
import { SocketBatch } from '../../wire/socket-batch.ts';
import { type CommandOutcome, type LinkEvents, type RedisLink, reconnectDelay } from './link.ts';
import type { RedisConfig } from './redis-config.ts';

/** Redis never lags this far behind in reading our commands unless it is stuck. */
const MAX_UNSENT_BYTES = 256 * 1024 * 1024;

/** The connection is not usable: no offline queue, the command fails at once. */
class LinkDownError extends Error {}

/**
 * One pipelined connection to a standalone Redis, written for the hot path:
 * every command of a turn of the event loop goes out in one write, replies
 * are parsed in place and matched to commands in order. It logs in (AUTH),
 * selects the database, and after any failure reconnects with jittered
 * backoff. While it is not ready, commands fail at once; RedisConnection adds
 * the per-command timeout and replaces a link that stops answering.
 *
 * A command refused because the link is not ready, or queued after its
 * socket was destroyed (SocketBatch never writes to one), is reported as
 * never sent; every command queued while the socket was open may have
 * reached Redis, and is reported as sent when the connection is lost.
 *
 * node-redis remains the client for Sentinel and Cluster, where discovery,
 * slot maps and redirections are its job; for one standalone node it spent
 * more per command (option objects, a generator, a string per argument and a
 * write per string) than the rest of a call's store path.
 */
export class StandaloneLink implements RedisLink {
  readonly #config: RedisConfig;
  readonly #events: LinkEvents;
  #socket: Socket | undefined;
  #output: SocketBatch | undefined;
  /** Commands awaiting replies, oldest first from #head. */
  #pending: Array<CommandOutcome | undefined> = [];
  #head = 0;
  #ready = false;
  #attempt = 0;
  #retry: NodeJS.Timeout | undefined;
  #destroyed = false;

  constructor(config: RedisConfig, events: LinkEvents) {
    this.#config = config;
    this.#events = events;
    this.#connect();
  }

  send(
    args: ReadonlyArray<string | Buffer>,
    _key: string | undefined,
    outcome: CommandOutcome,
  ): void {
    // A destroyed socket is never written to: what is queued on it never leaves.
    if (this.#ready && !this.#socket?.destroyed) this.#command(args, outcome);
    else outcome.failed(new LinkDownError('the Redis connection is not ready'), false);
  }

  destroy(): void {
    this.#destroyed = true;
    clearTimeout(this.#retry);
    this.#socket?.destroy();
  }

  #command(args: ReadonlyArray<string | Buffer>, outcome: CommandOutcome): void {
    writeCommand(this.#output as SocketBatch, args);
    this.#pending.push(outcome);
  }

  #connect(): void {
    const { host, port, tls, connectTimeoutMs } = this.#config;
    const socket = tls
      ? connectTls({ host, port, ...(isIP(host) === 0 && { servername: host }) })
      : connectTcp({ host, port });
    this.#socket = socket;
    this.#output = new SocketBatch(socket, MAX_UNSENT_BYTES);
    const parser = new ReplyParser(this.#reply);
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 5000);
    socket.setTimeout(connectTimeoutMs, () =>
      socket.destroy(new LinkDownError(`no answer within ${connectTimeoutMs} ms of connecting`)),
    );
    let failure: unknown;
    socket.once(tls ? 'secureConnect' : 'connect', () => {
      // The timeout stays armed through the handshake: a Redis that accepts
      // and then never answers must not leave the link waiting forever.
      this.#handshake().then(
        () => {
          if (socket !== this.#socket || socket.destroyed) return;
          socket.setTimeout(0);
          this.#ready = true;
          this.#attempt = 0;
          this.#events.up({ host, port, database: this.#config.database });
        },
        (error: unknown) => socket.destroy(error as Error),
      );
    });
    socket.on('data', (chunk: Buffer) => {
      try {
        parser.feed(chunk);
      } catch (error) {
        socket.destroy(error as Error);
      }
    });
    socket.on('error', (error) => {
      failure = error;
    });
    socket.once('close', () =>
      this.#lost(failure ?? new LinkDownError('Redis closed the connection')),
    );
  }

  /** AUTH and SELECT, pipelined: the link is ready when both are acknowledged. */
  #handshake(): Promise<unknown> {
    const { username, password, database } = this.#config;
    const steps: Promise<unknown>[] = [];
    if (password !== undefined)
      steps.push(
        this.#internal(username === undefined ? ['AUTH', password] : ['AUTH', username, password]),
      );
    if (database !== 0) steps.push(this.#internal(['SELECT', String(database)]));
    return Promise.all(steps);
  }

  #internal(args: string[]): Promise<unknown> {
    return new Promise((resolve, reject) =>
      this.#command(args, {
        answered: (reply) => (reply instanceof ErrorReply ? reject(reply) : resolve(reply)),
        failed: reject,
      }),
    );
  }

  /** Hands each reply to the oldest command waiting for one. */
  readonly #reply = (reply: Reply | ErrorReply): void => {
    const outcome = this.#pending[this.#head];
    if (!outcome) throw new ProtocolError('a reply to no command');
    // Cleared at once, so an answered command (and its reply) is not kept
    // alive until the next compaction.
    this.#pending[this.#head++] = undefined;
    // Under steady load the queue never empties: drop the answered
    // commands once they are the larger part of it.
    if (this.#head === this.#pending.length) {
      this.#pending = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#pending.length) {
      this.#pending = this.#pending.slice(this.#head);
      this.#head = 0;
    }
    outcome.answered(reply);
  };

  #lost(error: unknown): void {
    this.#ready = false;
    const pending = this.#pending;
    const head = this.#head;
    this.#pending = [];
    this.#head = 0;
    const lost = new LinkDownError('the Redis connection was lost', { cause: error });
    for (let i = head; i < pending.length; i++) pending[i]?.failed(lost, true);
    if (this.#destroyed) return;
    const { host, port } = this.#config;
    this.#events.down(error, { host, port });
    this.#retry = setTimeout(() => this.#connect(), reconnectDelay(this.#attempt++));
  }
}
