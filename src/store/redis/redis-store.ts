import type { CallScope } from '../../call-scope.ts';
import { ErrorCode, notFound, SessionError, tooLarge, versionConflict } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Session, SessionChange, SessionDraft } from '../../session.ts';
import { contentSize } from '../../session.ts';
import type { SessionStore, StoredVersion, StoreLimits } from '../store.ts';
import { RedisConnection } from './connection.ts';
import { ATTRIBUTE_PREFIX, attributeField, Field, redisKey, sameSlotKey } from './keys.ts';
import type { RedisConfig } from './redis-config.ts';
import type { Reply } from './resp.ts';
import { Scripts } from './scripts.ts';

const EMPTY = Buffer.alloc(0);

/** Codes the Lua scripts return; see the header of each script. */
const ScriptStatus = {
  ok: 0,
  absent: -1,
  versionConflict: -2,
  tooLarge: -3,
  tooManyAttributes: -4,
  keyTaken: -5,
} as const;

/** RotateSessionKey draws another key when the new one is taken (never seen with 256-bit keys). */
const ROTATE_ATTEMPTS = 3;

/**
 * Sessions as Redis hashes (layout in keys.ts). Every method is one round
 * trip: a single command, or a Lua script that checks and writes in one
 * atomic step and sets the expiry with the data. Writes are fenced
 * (connection.ts): none applies after its caller was told it failed.
 */
export class RedisStore implements SessionStore {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #limits: StoreLimits;
  readonly #cluster: boolean;

  constructor(config: RedisConfig, limits: StoreLimits, logger: Logger) {
    this.#redis = new RedisConnection(config, logger);
    this.#prefix = config.keyPrefix;
    this.#cluster = config.topology.kind === 'cluster';
    this.#limits = limits;
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
    const reply = await this.#redis.runScript(
      Scripts.put,
      [this.#redisKey(sessionKey)],
      args,
      scope,
    );
    const [version, expiresAtMs] = asArray(reply);
    return { version: Number(version), expiresAtMs: Number(expiresAtMs), createdAtMs: nowMs };
  }

  async get(
    sessionKey: string,
    nowMs: number,
    touch: boolean,
    scope?: CallScope,
  ): Promise<Session | null> {
    const key = this.#redisKey(sessionKey);
    const reply = touch
      ? await this.#touch(key, 0, nowMs, true, scope)
      : await this.#redis.send(['HGETALL', key], key, scope);
    return sessionFrom(reply);
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
      change.expectedVersion === undefined ? '' : String(change.expectedVersion),
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
    const reply = await this.#redis.runScript(Scripts.update, [key], args, scope);
    const [status, detail] = asArray(reply);
    switch (status) {
      case ScriptStatus.ok:
        return sessionFrom(detail ?? null) ?? internal('update returned no session');
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
    const reply = await this.#touch(this.#redisKey(sessionKey), ttlSeconds, nowMs, false, scope);
    return reply === ScriptStatus.absent ? null : Number(reply);
  }

  async consume(sessionKey: string, _nowMs: number, scope?: CallScope): Promise<Session | null> {
    const key = this.#redisKey(sessionKey);
    return sessionFrom(await this.#redis.runScript(Scripts.consume, [key], [], scope));
  }

  async delete(sessionKey: string, _nowMs: number, scope?: CallScope): Promise<boolean> {
    const key = this.#redisKey(sessionKey);
    return (await this.#redis.runScript(Scripts.delete, [key], [], scope)) === 1;
  }

  /**
   * RENAMENX in a script. On Cluster both keys must share a slot, so the new
   * key is drawn until its Redis key lands in the old one's slot (keys.ts).
   */
  async rotate(sessionKey: string, nextKey: () => string, _nowMs: number, scope?: CallScope) {
    const key = this.#redisKey(sessionKey);
    for (let attempt = 0; attempt < ROTATE_ATTEMPTS; attempt++) {
      const nextSessionKey = this.#cluster
        ? (await sameSlotKey(this.#prefix, sessionKey, nextKey)).key
        : nextKey();
      if (nextSessionKey === sessionKey) continue;
      const reply = await this.#redis.runScript(
        Scripts.rotate,
        [key, this.#redisKey(nextSessionKey)],
        [],
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
  ): Promise<Reply> {
    const args = [
      String(nowMs),
      String(ttlSeconds),
      String(this.#limits.maxLifetimeMs),
      returnSession ? '1' : '0',
    ];
    return this.#redis.runScript(Scripts.touch, [key], args, scope);
  }

  #redisKey(sessionKey: string): string {
    return redisKey(this.#prefix, sessionKey);
  }
}

function internal(problem: string): never {
  throw new SessionError(ErrorCode.Internal, `store: ${problem}`);
}

function asArray(reply: Reply): Reply[] {
  return Array.isArray(reply) ? reply : internal('unexpected reply shape');
}

/** Turns an HGETALL reply (field, value, field, value ...) into a Session; empty means absent. */
function sessionFrom(reply: Reply): Session | null {
  if (!Array.isArray(reply) || reply.length === 0) return null;
  const attributes = new Map<string, Buffer>();
  const meta = new Map<string, Buffer>();
  for (let i = 0; i + 1 < reply.length; i += 2) {
    const field = String(reply[i]);
    const value = reply[i + 1];
    if (!Buffer.isBuffer(value)) return internal('unexpected hash value');
    if (field.startsWith(ATTRIBUTE_PREFIX))
      attributes.set(field.slice(ATTRIBUTE_PREFIX.length), value);
    else meta.set(field, value);
  }
  const number = (field: string) => Number(meta.get(field)?.toString() ?? Number.NaN);
  return {
    fleetListRequest: meta.get(Field.fleetListRequest) ?? EMPTY,
    fleetListResponse: meta.get(Field.fleetListResponse) ?? EMPTY,
    attributes,
    ttlSeconds: number(Field.ttl),
    createdAtMs: number(Field.createdAt),
    expiresAtMs: number(Field.expiresAt),
    version: number(Field.version),
  };
}
