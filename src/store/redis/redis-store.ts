import { randomBytes } from 'node:crypto';
import type { CallScope } from '../../call-scope.ts';
import { ErrorCode, notFound, SessionError, tooLarge, versionConflict } from '../../errors.ts';
import { idempotencyKeyReused } from '../../idempotency.ts';
import type { Logger } from '../../logger.ts';
import type { Session, SessionChange, SessionDraft } from '../../session.ts';
import { contentSize } from '../../session.ts';
import type { Reply } from '../../wire/resp.ts';
import type { SessionStore, StoredVersion, StoreLimits } from '../store.ts';
import { RedisConnection } from './connection.ts';
import {
  ATTRIBUTE_PREFIX,
  attributeField,
  Field,
  recordKey,
  redisKey,
  sameSlotKey,
  secretKey,
} from './keys.ts';
import type { RedisConfig } from './redis-config.ts';
import { type Script, Scripts } from './scripts.ts';

const EMPTY = Buffer.alloc(0);

/** Codes the Lua scripts return; see the header of each script. */
const ScriptStatus = {
  ok: 0,
  absent: -1,
  versionConflict: -2,
  tooLarge: -3,
  tooManyAttributes: -4,
  keyTaken: -5,
  idempotencyKeyReused: -6,
} as const;

/** The idempotency wrapper's first element (lua/idempotency.lua): the reply is a recorded one. */
const REPLAYED = 1;

/** Bytes of a fresh secret for keys derived from idempotency keys. */
const SECRET_BYTES = 32;

/** A write's reply, and the time to read it as of: now, or for a repeat, the first call's now. */
interface Outcome {
  readonly reply: Reply;
  readonly atMs: number;
}

/** RotateSessionKey draws another key when the new one is taken (never seen with 256-bit keys). */
const ROTATE_ATTEMPTS = 3;

/** A hash that lacks a fixed field or whose content does not add up to its size field. */
const TORN = Symbol('torn');
/** A whole hash past its expiry (Redis has not removed it yet, or it has no TTL). */
const EXPIRED = Symbol('expired');

/**
 * Sessions as Redis hashes (layout in keys.ts). Every method is one round
 * trip: a single command, or a Lua script that checks and writes in one
 * atomic step and sets the expiry with the data. Writes are fenced
 * (connection.ts): none applies after its caller was told it failed.
 *
 * A hash that lacks a fixed field, or whose content does not add up to its
 * size field, is torn (a Redis whose AOF loader applied part of a write can
 * leave one; docs/guarantees.md). No method returns one: each treats it as
 * absent and deletes it in the same call.
 */
export class RedisStore implements SessionStore {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #limits: StoreLimits;
  readonly #cluster: boolean;
  readonly #logger: Logger;

  constructor(config: RedisConfig, limits: StoreLimits, logger: Logger) {
    this.#redis = new RedisConnection(config, logger);
    this.#prefix = config.keyPrefix;
    this.#cluster = config.topology.kind === 'cluster';
    this.#limits = limits;
    this.#logger = logger;
  }

  async put(
    sessionKey: string,
    draft: SessionDraft,
    nowMs: number,
    scope?: CallScope,
  ): Promise<StoredVersion> {
    const args: Array<string | Buffer> = [
      String(nowMs),
      String(draft.ttlSeconds),
      String(this.#limits.maxLifetimeMs),
      String(contentSize(draft)),
      draft.fleetListRequest,
      draft.fleetListResponse,
    ];
    for (const [name, value] of draft.attributes) args.push(attributeField(name), value);
    const { reply, atMs } = await this.#write(
      Scripts.put,
      [this.#redisKey(sessionKey)],
      args,
      nowMs,
      scope,
    );
    const [version, expiresAtMs] = asArray(reply);
    return { version: Number(version), expiresAtMs: Number(expiresAtMs), createdAtMs: atMs };
  }

  async get(
    sessionKey: string,
    nowMs: number,
    touch: boolean,
    scope?: CallScope,
  ): Promise<Session | null> {
    const key = this.#redisKey(sessionKey);
    const reply = touch
      ? (await this.#touch(key, 0, nowMs, true, scope)).reply
      : await this.#redis.send(['HGETALL', key], key, scope);
    return this.#readable(reply, key, nowMs, scope);
  }

  async update(
    sessionKey: string,
    change: SessionChange,
    nowMs: number,
    scope?: CallScope,
  ): Promise<Session> {
    const { maxLifetimeMs, maxBytes, maxAttributes } = this.#limits;
    const args: Array<string | Buffer> = [
      String(nowMs),
      String(maxLifetimeMs),
      String(maxBytes),
      String(maxAttributes),
      versionArgument(change.expectedVersion),
      String(change.ttlSeconds),
      change.fleetListRequest ? '1' : '0',
      change.fleetListRequest ?? EMPTY,
      change.fleetListResponse ? '1' : '0',
      change.fleetListResponse ?? EMPTY,
      String(change.setAttributes.size),
    ];
    for (const [name, value] of change.setAttributes) args.push(attributeField(name), value);
    for (const name of change.removeAttributes) args.push(attributeField(name));
    const key = this.#redisKey(sessionKey);
    const { reply, atMs } = await this.#write(Scripts.update, [key], args, nowMs, scope);
    const [status, detail] = asArray(reply);
    switch (status) {
      case ScriptStatus.ok:
        return (await this.#readable(detail ?? null, key, atMs, scope)) ?? throwNotFound();
      case ScriptStatus.absent:
        throw notFound();
      case ScriptStatus.versionConflict:
        throw versionConflict(change.expectedVersion ?? 0, Number(detail));
      case ScriptStatus.tooLarge:
        throw tooLarge(
          'session',
          `the session would hold ${detail} bytes; the limit is ${maxBytes}`,
        );
      case ScriptStatus.tooManyAttributes:
        throw tooLarge(
          'set_attributes',
          `the session would hold ${detail} attributes; the limit is ${maxAttributes}`,
        );
      default:
        return internal(`update returned status ${String(status)}`);
    }
  }

  async touch(
    sessionKey: string,
    ttlSeconds: number,
    nowMs: number,
    scope?: CallScope,
  ): Promise<number | null> {
    const { reply } = await this.#touch(
      this.#redisKey(sessionKey),
      ttlSeconds,
      nowMs,
      false,
      scope,
    );
    return reply === ScriptStatus.absent ? null : Number(reply);
  }

  async consume(
    sessionKey: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<Session | null> {
    const key = this.#redisKey(sessionKey);
    const { reply, atMs } = await this.#write(
      Scripts.consume,
      [key],
      [versionArgument(expectedVersion)],
      nowMs,
      scope,
    );
    const [status, detail] = asArray(reply);
    if (status === ScriptStatus.versionConflict)
      throw versionConflict(expectedVersion ?? 0, Number(detail));
    // The script deleted the hash whatever it held: a torn one needs no repair.
    const session = sessionFrom(detail ?? null, atMs);
    return session === TORN || session === EXPIRED ? null : session;
  }

  async delete(
    sessionKey: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<boolean> {
    const key = this.#redisKey(sessionKey);
    const { reply } = await this.#write(
      Scripts.delete,
      [key],
      [versionArgument(expectedVersion)],
      nowMs,
      scope,
    );
    const [status, detail] = asArray(reply);
    if (status === ScriptStatus.versionConflict)
      throw versionConflict(expectedVersion ?? 0, Number(detail));
    return status === 1;
  }

  /**
   * RENAMENX in a script. On Cluster both keys must share a slot, so the new
   * key is drawn until its Redis key lands in the old one's slot (keys.ts).
   */
  async rotate(sessionKey: string, nextKey: () => string, nowMs: number, scope?: CallScope) {
    const key = this.#redisKey(sessionKey);
    for (let attempt = 0; attempt < ROTATE_ATTEMPTS; attempt++) {
      const nextSessionKey = this.#cluster
        ? (await sameSlotKey(this.#prefix, sessionKey, nextKey)).key
        : nextKey();
      if (nextSessionKey === sessionKey) continue;
      const { reply } = await this.#write(
        Scripts.rotate,
        [key, this.#redisKey(nextSessionKey)],
        [],
        nowMs,
        scope,
      );
      if (reply === ScriptStatus.absent) return null;
      if (reply === ScriptStatus.keyTaken) continue;
      const [version, expiresAtMs, createdAtMs] = asArray(reply);
      return {
        sessionKey: nextSessionKey,
        version: Number(version),
        expiresAtMs: Number(expiresAtMs),
        createdAtMs: Number(createdAtMs),
      };
    }
    return internal(`rotate found no free key in ${ROTATE_ATTEMPTS} attempts`);
  }

  async idempotencySecret(): Promise<Buffer> {
    const reply = await this.#redis.runScript(
      Scripts.secret,
      [secretKey(this.#prefix)],
      [randomBytes(SECRET_BYTES)],
    );
    return Buffer.isBuffer(reply) ? reply : internal('unexpected secret reply');
  }

  async ping(): Promise<void> {
    await this.#redis.send(['PING'], undefined);
  }

  async close(): Promise<void> {
    await this.#redis.close();
  }

  #touch(
    key: string,
    ttlSeconds: number,
    nowMs: number,
    returnSession: boolean,
    scope: CallScope | undefined,
  ): Promise<Outcome> {
    const args = [
      String(nowMs),
      String(ttlSeconds),
      String(this.#limits.maxLifetimeMs),
      returnSession ? '1' : '0',
    ];
    return this.#write(Scripts.touch, [key], args, nowMs, scope);
  }

  /**
   * Runs a write's script (one loaded with lua/idempotency.lua). With the
   * call's idempotency claim, the record joins the keys, in the first key's
   * slot (keys.ts); a repeat gets the recorded reply, and a repeat with
   * another request IDEMPOTENCY_KEY_REUSED.
   */
  async #write(
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
    const ttl = String(this.#limits.idempotencyTtlMs);
    const reply = await this.#redis.runScript(
      script,
      [...keys, record],
      [ttl, claim.fingerprint, String(nowMs), ...args],
      scope,
    );
    const [status, atMs, outcome] = asArray(reply);
    if (status === ScriptStatus.idempotencyKeyReused) throw idempotencyKeyReused();
    if (status === REPLAYED && this.#logger.isLevelEnabled('debug'))
      this.#logger.debug({ script: script.name }, 'replayed a recorded outcome');
    return { reply: outcome ?? null, atMs: Number(atMs) };
  }

  /**
   * The session in an HGETALL-shaped reply, or null. A torn or expired hash
   * is null, and is deleted first (by a script that checks it again, in
   * case a whole session replaced it since it was read).
   */
  async #readable(
    reply: Reply,
    key: string,
    nowMs: number,
    scope: CallScope | undefined,
  ): Promise<Session | null> {
    const session = sessionFrom(reply, nowMs);
    if (session !== TORN && session !== EXPIRED) return session;
    const deleted = await this.#redis.runScript(Scripts.repair, [key], [String(nowMs)], scope);
    if (deleted === 1 && session === TORN)
      this.#logger.warn(
        'redis held a torn session (a hash missing fields or content); deleted it. See docs/guarantees.md on AOF loading',
      );
    return null;
  }

  #redisKey(sessionKey: string): string {
    return redisKey(this.#prefix, sessionKey);
  }
}

function internal(problem: string): never {
  throw new SessionError(ErrorCode.Internal, `store: ${problem}`);
}

function throwNotFound(): never {
  throw notFound();
}

/** An expected version as the scripts take it: "" for none. */
const versionArgument = (expectedVersion: number | undefined) =>
  expectedVersion === undefined ? '' : String(expectedVersion);

function asArray(reply: Reply): Reply[] {
  return Array.isArray(reply) ? reply : internal('unexpected reply shape');
}

/**
 * Reads an HGETALL reply (field, value, field, value ...) as a Session: null
 * when empty (absent), TORN or EXPIRED when the hash must be read as absent.
 */
function sessionFrom(reply: Reply, nowMs: number): Session | null | typeof TORN | typeof EXPIRED {
  if (!Array.isArray(reply) || reply.length === 0) return null;
  const attributes = new Map<string, Buffer>();
  let fleetListRequest: Buffer | undefined;
  let fleetListResponse: Buffer | undefined;
  let createdAtMs = Number.NaN;
  let expiresAtMs = Number.NaN;
  let version = Number.NaN;
  let ttlSeconds = Number.NaN;
  let size = Number.NaN;
  let attributeBytes = 0;
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const name = reply[i];
    const value = reply[i + 1];
    if (!Buffer.isBuffer(name) || !Buffer.isBuffer(value)) return internal('unexpected hash value');
    const field = name.toString();
    if (field.startsWith(ATTRIBUTE_PREFIX)) {
      attributes.set(field.slice(ATTRIBUTE_PREFIX.length), value);
      attributeBytes += name.length - ATTRIBUTE_PREFIX.length + value.length;
      continue;
    }
    switch (field) {
      case Field.fleetListRequest:
        fleetListRequest = value;
        break;
      case Field.fleetListResponse:
        fleetListResponse = value;
        break;
      case Field.createdAt:
        createdAtMs = decimal(value);
        break;
      case Field.expiresAt:
        expiresAtMs = decimal(value);
        break;
      case Field.version:
        version = decimal(value);
        break;
      case Field.ttl:
        ttlSeconds = decimal(value);
        break;
      case Field.size:
        size = decimal(value);
        break;
    }
  }
  if (
    fleetListRequest === undefined ||
    fleetListResponse === undefined ||
    !(createdAtMs >= 0 && ttlSeconds >= 0 && version >= 0 && expiresAtMs >= 0) ||
    size !== attributeBytes + fleetListRequest.length + fleetListResponse.length
  )
    return TORN;
  if (expiresAtMs <= nowMs) return EXPIRED;
  return {
    fleetListRequest,
    fleetListResponse,
    attributes,
    ttlSeconds,
    createdAtMs,
    expiresAtMs,
    version,
  };
}

const decimal = (bytes: Buffer) =>
  bytes.length === 0 ? Number.NaN : Number(bytes.toString('latin1'));
