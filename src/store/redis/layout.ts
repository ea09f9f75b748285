import type { CallScope } from '../../call-scope.ts';
import { notFound, tooLarge, versionConflict } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type { Session, SessionChange, SessionDraft } from '../../session.ts';
import type { Reply } from '../../wire/resp.ts';
import type { PutResult, SessionStore, StoreLimits } from '../store.ts';
import type { RedisConnection } from './connection.ts';
import { sameSlotKey } from './keys.ts';
import {
  asArray,
  EXPIRED,
  internal,
  type ReadSession,
  ScriptStatus,
  type ScriptWrites,
  TORN,
  versionArgument,
} from './script-writes.ts';
import type { Script } from './scripts.ts';

/** The operations on one session that each layout implements. */
export type SessionLayout = Pick<
  SessionStore,
  'put' | 'get' | 'update' | 'touch' | 'consume' | 'delete' | 'rotate'
>;

/** What tells one layout from another: its keys, fields, scripts and how it reads a hash. */
export interface LayoutShape {
  readonly scripts: {
    readonly touch: Script;
    readonly update: Script;
    readonly consume: Script;
    readonly delete: Script;
    readonly rotate: Script;
    readonly repair: Script;
  };
  key(sessionKey: string): string;
  attributeField(name: string): string;
  /** The arguments every script of the layout takes first, for a session key. */
  leadingArgs(sessionKey: string): readonly string[];
  /** A session from an HGETALL-shaped reply: null when empty, TORN or EXPIRED when it must read as absent. */
  read(reply: Reply, nowMs: number): ReadSession<Session>;
  /** A put: the keys and arguments of the layout's put script, and how to read its reply. */
  put(
    sessionKey: string,
    draft: SessionDraft,
    nowMs: number,
    scope: CallScope | undefined,
  ): Promise<PutResult>;
}

/** RotateSessionKey draws another key when the new one is taken (never seen with 256-bit keys). */
const ROTATE_ATTEMPTS = 3;

const EMPTY = Buffer.alloc(0);

/**
 * Sessions as Redis hashes in one layout (legacy-layout.ts,
 * compact-layout.ts). Every method is one round trip: a single command, or a
 * Lua script that checks and writes in one atomic step and sets the expiry
 * with the data. Writes are fenced (connection.ts): none applies after its
 * caller was told it failed.
 *
 * A hash that lacks a fixed field, or whose content does not add up to its
 * size, is torn (a Redis whose AOF loader applied part of a write can leave
 * one; docs/guarantees.md). No method returns one: each treats it as absent
 * and deletes it in the same call.
 */
export class ScriptedLayout implements SessionLayout {
  readonly #redis: RedisConnection;
  readonly #writes: ScriptWrites;
  readonly #shape: LayoutShape;
  readonly #limits: StoreLimits;
  readonly #cluster: boolean;
  readonly #logger: Logger;

  constructor(
    redis: RedisConnection,
    writes: ScriptWrites,
    shape: LayoutShape,
    limits: StoreLimits,
    cluster: boolean,
    logger: Logger,
  ) {
    this.#redis = redis;
    this.#writes = writes;
    this.#shape = shape;
    this.#limits = limits;
    this.#cluster = cluster;
    this.#logger = logger;
  }

  /** The Redis key of a session in this layout. */
  key(sessionKey: string): string {
    return this.#shape.key(sessionKey);
  }

  put(sessionKey: string, draft: SessionDraft, nowMs: number, scope?: CallScope) {
    return this.#shape.put(sessionKey, draft, nowMs, scope);
  }

  async get(
    sessionKey: string,
    nowMs: number,
    touch: boolean,
    scope?: CallScope,
  ): Promise<Session | null> {
    const key = this.#shape.key(sessionKey);
    const reply = touch
      ? (await this.#touch(sessionKey, 0, nowMs, true, scope)).reply
      : await this.#redis.send(['HGETALL', key], key, scope);
    return this.#readable(reply, sessionKey, nowMs, scope);
  }

  async update(
    sessionKey: string,
    change: SessionChange,
    nowMs: number,
    scope?: CallScope,
  ): Promise<Session> {
    const { maxLifetimeMs, maxBytes, maxAttributes } = this.#limits;
    const field = (name: string) => this.#shape.attributeField(name);
    const args: Array<string | Buffer> = [
      ...this.#shape.leadingArgs(sessionKey),
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
    for (const [name, value] of change.setAttributes) args.push(field(name), value);
    for (const name of change.removeAttributes) args.push(field(name));
    const key = this.#shape.key(sessionKey);
    const script = this.#shape.scripts.update;
    const { reply, atMs } = await this.#writes.run(script, [key], args, nowMs, scope);
    const [status, detail] = asArray(reply);
    switch (status) {
      case ScriptStatus.ok:
        return (await this.#readable(detail ?? null, sessionKey, atMs, scope)) ?? throwNotFound();
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
    const { reply } = await this.#touch(sessionKey, ttlSeconds, nowMs, false, scope);
    return reply === ScriptStatus.absent ? null : Number(reply);
  }

  async consume(
    sessionKey: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<Session | null> {
    const { reply, atMs } = await this.#conditional(
      'consume',
      sessionKey,
      nowMs,
      expectedVersion,
      scope,
    );
    const [, detail] = asArray(reply);
    // The script deleted the hash whatever it held: a torn one needs no repair.
    const session = this.#shape.read(detail ?? null, atMs);
    return session === TORN || session === EXPIRED ? null : session;
  }

  async delete(
    sessionKey: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<boolean> {
    const { reply } = await this.#conditional('delete', sessionKey, nowMs, expectedVersion, scope);
    return asArray(reply)[0] === 1;
  }

  /**
   * RENAMENX in a script. On Cluster both keys must share a slot, so the new
   * key is drawn until its Redis key lands in the old one's slot (keys.ts).
   */
  async rotate(sessionKey: string, nextKey: () => string, nowMs: number, scope?: CallScope) {
    const key = this.#shape.key(sessionKey);
    const redisKey = (candidate: string) => this.#shape.key(candidate);
    for (let attempt = 0; attempt < ROTATE_ATTEMPTS; attempt++) {
      const nextSessionKey = this.#cluster
        ? (await sameSlotKey(redisKey, sessionKey, nextKey)).key
        : nextKey();
      if (nextSessionKey === sessionKey) continue;
      const { reply } = await this.#writes.run(
        this.#shape.scripts.rotate,
        [key, redisKey(nextSessionKey)],
        this.#shape.leadingArgs(sessionKey),
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

  /** Consume or delete: {status, detail}, after throwing VERSION_CONFLICT. */
  async #conditional(
    operation: 'consume' | 'delete',
    sessionKey: string,
    nowMs: number,
    expectedVersion: number | undefined,
    scope: CallScope | undefined,
  ) {
    const outcome = await this.#writes.run(
      this.#shape.scripts[operation],
      [this.#shape.key(sessionKey)],
      [...this.#shape.leadingArgs(sessionKey), versionArgument(expectedVersion)],
      nowMs,
      scope,
    );
    const [status, detail] = asArray(outcome.reply);
    if (status === ScriptStatus.versionConflict)
      throw versionConflict(expectedVersion ?? 0, Number(detail));
    return outcome;
  }

  #touch(
    sessionKey: string,
    ttlSeconds: number,
    nowMs: number,
    returnSession: boolean,
    scope: CallScope | undefined,
  ) {
    const args = [
      ...this.#shape.leadingArgs(sessionKey),
      String(nowMs),
      String(ttlSeconds),
      String(this.#limits.maxLifetimeMs),
      returnSession ? '1' : '0',
    ];
    const key = this.#shape.key(sessionKey);
    return this.#writes.run(this.#shape.scripts.touch, [key], args, nowMs, scope);
  }

  /**
   * The session in an HGETALL-shaped reply, or null. A torn or expired hash
   * is null, and is deleted first (by a script that checks it again, in
   * case a whole session replaced it since it was read).
   */
  async #readable(
    reply: Reply,
    sessionKey: string,
    nowMs: number,
    scope: CallScope | undefined,
  ): Promise<Session | null> {
    const session = this.#shape.read(reply, nowMs);
    if (session !== TORN && session !== EXPIRED) return session;
    const deleted = await this.#redis.runScript(
      this.#shape.scripts.repair,
      [this.#shape.key(sessionKey)],
      [...this.#shape.leadingArgs(sessionKey), String(nowMs)],
      scope,
    );
    if (deleted === 1 && session === TORN)
      this.#logger.warn(
        'redis held a torn session (a hash missing fields or content); deleted it. See docs/guarantees.md on AOF loading',
      );
    return null;
  }
}

function throwNotFound(): never {
  throw notFound();
}
