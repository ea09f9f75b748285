import {
  ClientClosedError,
  ClientOfflineError,
  ErrorReply as NodeRedisErrorReply,
  RESP_TYPES,
} from '@redis/client';
import { ErrorReply, type Reply } from '../../wire/resp.ts';
import { type CommandOutcome, reconnectDelay } from './link.ts';
import type { RedisConfig, RedisNode } from './redis-config.ts';

/**
 * What the Sentinel and Cluster links share: they reach Redis through
 * node-redis, with these options and this reading of its outcomes.
 */

/** RESP2, every string reply as a Buffer, no offline queue. */
export const COMMON_OPTIONS = {
  RESP: 2,
  // timeout 0: node-redis would otherwise arm an AbortSignal.timeout (5 s) per
  // command; RedisConnection enforces REDIS_COMMAND_TIMEOUT itself.
  commandOptions: { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer }, timeout: 0 },
} as const;

/** Options of every connection to a data node. */
export function nodeOptions(config: RedisConfig) {
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

export const address = (node: RedisNode) => `${node.host}:${node.port}`;

/**
 * Reports what node-redis made of a command. An error reply is an answer.
 * Only a refusal before the command was queued (the client was offline or
 * closed) proves it never left: node-redis rejects the commands it had
 * queued and those it had written with one and the same error when a
 * connection fails.
 */
export function report(sent: Promise<Reply>, outcome: CommandOutcome): void {
  sent.then(
    (reply) => outcome.answered(reply),
    (error: unknown) => {
      if (error instanceof NodeRedisErrorReply) outcome.answered(new ErrorReply(error.message));
      else outcome.failed(error, !neverSent(error));
    },
  );
}

const neverSent = (error: unknown) =>
  error instanceof ClientOfflineError || error instanceof ClientClosedError;
