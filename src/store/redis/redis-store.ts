import { ErrorCode, notFound, SessionError, tooLarge, versionConflict } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Session, SessionChange, SessionDraft } from '../../session.ts';
import { contentSize } from '../../session.ts';
import type { SessionStore, StoredVersion, StoreLimits } from '../store.ts';
import { RedisConnection, type Reply } from './connection.ts';
import { ATTRIBUTE_PREFIX, attributeField, Field, sameSlotKey, sessionKey } from './keys.ts';
import type { RedisConfig } from './redis-config.ts';
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
 * atomic step and sets the expiry with the data.
 */
export class RedisStore implements SessionStore {
  readonly #redis: RedisConnection;
  readonly #prefix: string;
  readonly #limits: StoreLimits;
  readonly #fenceMs: number;
  readonly #cluster: boolean;

  constructor(config: RedisConfig, limits: StoreLimits, logger: Logger) {
    this.#redis = new RedisConnection(config, logger);
    this.#prefix = config.keyPrefix;
    this.#cluster = config.topology.kind === 'cluster';
    this.#limits = limits;
    this.#fenceMs = Math.floor((config.commandTimeoutMs * 3) / 4);
  }

  async put(key: string, draft: SessionDraft, nowMs: number): Promise<StoredVersion> {
    const args: Array<string | Buffer> = [
      String(nowMs),
      String(draft.ttlSeconds),
      String(this.#limits.maxLifetimeMs),
      String(contentSize(draft)),
      draft.fleetListRequest,
      draft.fleetListResponse,
    ];
    for (const [name, value] of draft.attributes) args.push(attributeField(name), value);
    const [version, expiresAtMs] = asArray(await this.#script(Scripts.put, [key], args));
    return { version: Number(version), expiresAtMs: Number(expiresAtMs), createdAtMs: nowMs };
  }

  async get(key: string, nowMs: number, touch: boolean): Promise<Session | null> {
    let reply: Reply;
    if (touch) reply = await this.#touch(key, 0, nowMs, true);
    else {
      const redisKey = this.#key(key);
      reply = await this.#redis.send(['HGETALL', redisKey], redisKey);
    }
    return sessionFrom(reply);
  }

  async update(key: string, change: SessionChange, nowMs: number): Promise<Session> {
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
    const reply = await this.#script(Scripts.update, [key], args);
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

  async touch(key: string, ttlSeconds: number, nowMs: number): Promise<number | null> {
    const reply = await this.#touch(key, ttlSeconds, nowMs, false);
    return reply === ScriptStatus.absent ? null : Number(reply);
  }

  async consume(key: string): Promise<Session | null> {
    return sessionFrom(await this.#script(Scripts.consume, [key], []));
  }

  async delete(key: string): Promise<boolean> {
    return (await this.#script(Scripts.delete, [key], [])) === 1;
  }

  /**
   * RENAMENX in a script. On Cluster both keys must share a slot, so the new
   * key is drawn until its Redis key lands in the old one's slot (keys.ts).
   */
  async rotate(key: string, nextKey: () => string) {
    for (let attempt = 0; attempt < ROTATE_ATTEMPTS; attempt++) {
      const sessionKey = this.#cluster
        ? (await sameSlotKey(this.#prefix, key, nextKey)).key
        : nextKey();
      if (sessionKey === key) continue;
      const reply = await this.#script(Scripts.rotate, [key, sessionKey], []);
      if (reply === ScriptStatus.absent) return null;
      if (reply === ScriptStatus.keyTaken) continue;
      const [version, expiresAtMs, createdAtMs] = asArray(reply);
      return {
        sessionKey,
        version: Number(version),
        expiresAtMs: Number(expiresAtMs),
        createdAtMs: Number(createdAtMs),
      };
    }
    return internal(`rotate found no free key in ${ROTATE_ATTEMPTS} attempts`);
  }

  async ping(): Promise<void> {
    await this.#redis.send(['PING']);
  }

  async close(): Promise<void> {
    await this.#redis.close();
  }

  #touch(key: string, ttlSeconds: number, nowMs: number, returnSession: boolean) {
    return this.#script(
      Scripts.touch,
      [key],
      [
        String(nowMs),
        String(ttlSeconds),
        String(this.#limits.maxLifetimeMs),
        returnSession ? '1' : '0',
      ],
    );
  }

  /** Runs a write script, fenced a quarter of the command timeout before the caller gives up. */
  #script(
    script: (typeof Scripts)[keyof typeof Scripts],
    keys: readonly string[],
    args: ReadonlyArray<string | Buffer>,
  ) {
    // EVALSHA sha numkeys key... fence arg..., built in one array: this runs on every write.
    const command: Array<string | Buffer> = ['EVALSHA', script.sha1, String(keys.length)];
    for (const key of keys) command.push(this.#key(key));
    command.push(String(Date.now() + this.#fenceMs));
    for (const arg of args) command.push(arg);
    return this.#redis.runScript(script, command);
  }

  #key(key: string): string {
    return sessionKey(this.#prefix, key);
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
