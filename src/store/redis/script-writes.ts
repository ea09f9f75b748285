import type { CallScope } from '../../call-scope.ts';
import { ErrorCode, SessionError } from '../../errors.ts';
import { idempotencyKeyReused } from '../../idempotency.ts';
import type { Logger } from '../../logger.ts';
import type { Reply } from '../../wire/resp.ts';
import type { RedisConnection } from './connection.ts';
import { recordKey } from './keys.ts';
import type { Script } from './scripts.ts';

/** Codes the Lua scripts return; see the header of each script. */
export const ScriptStatus = {
  ok: 0,
  absent: -1,
  versionConflict: -2,
  tooLarge: -3,
  tooManyAttributes: -4,
  keyTaken: -5,
  idempotencyKeyReused: -6,
  ownerFull: -7,
} as const;

/** The idempotency wrapper's first element (lua/idempotency.lua): the reply is a recorded one. */
const REPLAYED = 1;

/** A write's reply, and the time to read it as of: now, or for a repeat, the first call's now. */
export interface Outcome {
  readonly reply: Reply;
  readonly atMs: number;
}

/**
 * Runs the scripts that write (each loaded with lua/idempotency.lua). With
 * the call's idempotency claim, the record joins the keys, in the first
 * key's slot (keys.ts); a repeat gets the recorded reply, and a repeat with
 * another request IDEMPOTENCY_KEY_REUSED.
 */
export class ScriptWrites {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #recordTtl: string;
  readonly #logger: Logger;

  constructor(redis: RedisConnection, prefix: string, idempotencyTtlMs: number, logger: Logger) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#recordTtl = String(idempotencyTtlMs);
    this.#logger = logger;
  }

  async run(
    script: Script,
    keys: readonly string[],
    args: ReadonlyArray<string | Buffer>,
    nowMs: number,
    scope: CallScope | undefined,
  ): Promise<Outcome> {
    const claim = scope?.idempotency;
    if (claim === undefined) {
      const reply = await this.#redis.runScript(script, keys, ['', '', '', ...args], scope);
      return { reply, atMs: nowMs };
    }
    const record = recordKey(this.#prefix, keys[0] as string, claim.id);
    const reply = await this.#redis.runScript(
      script,
      [...keys, record],
      [this.#recordTtl, claim.fingerprint, String(nowMs), ...args],
      scope,
    );
    const [status, atMs, outcome] = asArray(reply);
    if (status === ScriptStatus.idempotencyKeyReused) throw idempotencyKeyReused();
    if (status === REPLAYED && this.#logger.isLevelEnabled('debug'))
      this.#logger.debug({ script: script.name }, 'replayed a recorded outcome');
    return { reply: outcome ?? null, atMs: Number(atMs) };
  }
}

export function internal(problem: string): never {
  throw new SessionError(ErrorCode.Internal, `store: ${problem}`);
}

export function asArray(reply: Reply): Reply[] {
  return Array.isArray(reply) ? reply : internal('unexpected reply shape');
}

/** An expected version as the scripts take it: "" for none. */
export const versionArgument = (expectedVersion: number | undefined) =>
  expectedVersion === undefined ? '' : String(expectedVersion);

export const decimal = (bytes: Buffer) =>
  bytes.length === 0 ? Number.NaN : Number(bytes.toString('latin1'));

/** What a layout's read found in place of a session. */
export const TORN = Symbol('torn');
export const EXPIRED = Symbol('expired');
export type ReadSession<S> = S | null | typeof TORN | typeof EXPIRED;
