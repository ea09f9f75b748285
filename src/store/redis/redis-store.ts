import { randomBytes } from 'node:crypto';
import { type CallScope, unclaimedScope } from '../../call-scope.ts';
import { ErrorCode, SessionError } from '../../errors.ts';
import type { Logger } from '../../logger.ts';
import type {
  OwnedSession,
  OwnerRef,
  Session,
  SessionChange,
  SessionDraft,
} from '../../session.ts';
import type { PutResult, SessionStore, StoreLimits } from '../store.ts';
import { CompactLayout } from './compact-layout.ts';
import { RedisConnection } from './connection.ts';
import { secretKey } from './keys.ts';
import { ScriptedLayout } from './layout.ts';
import { LegacyLayout } from './legacy-layout.ts';
import type { RedisConfig } from './redis-config.ts';
import { internal, ScriptWrites } from './script-writes.ts';
import { Scripts } from './scripts.ts';

/** Bytes of a fresh secret for keys derived from idempotency keys and owner digests. */
const SECRET_BYTES = 32;

/**
 * Sessions in Redis (layout.ts for how one session is kept). New sessions go
 * in the layout REDIS_SESSION_LAYOUT names, sessions with an owner always in
 * the compact one; an operation on a key looks in that layout first and, but
 * for `compact-only`, in the other when the session is absent there, so that
 * sessions written before a layout change are still read and updated in
 * place (docs/redis-layout.md).
 */
export class RedisStore implements SessionStore {
  readonly #redis: RedisConnection;
  readonly #compact: CompactLayout;
  /** Where an operation on a key looks, in order; the first is where new sessions go. */
  readonly #layouts: readonly ScriptedLayout[];
  readonly #compactLayout: ScriptedLayout;
  readonly #legacy: ScriptedLayout;
  readonly #prefix: string;
  readonly #cluster: boolean;

  constructor(config: RedisConfig, limits: StoreLimits, logger: Logger) {
    this.#redis = new RedisConnection(config, logger);
    this.#prefix = config.keyPrefix;
    const writes = new ScriptWrites(this.#redis, config.keyPrefix, limits.idempotencyTtlMs, logger);
    const cluster = config.topology.kind === 'cluster';
    this.#cluster = cluster;
    const layout = (shape: CompactLayout | LegacyLayout) =>
      new ScriptedLayout(this.#redis, writes, shape, limits, cluster, logger);
    this.#compact = new CompactLayout(
      this.#redis,
      writes,
      config.keyPrefix,
      limits,
      config.payloadPieces,
    );
    this.#compactLayout = layout(this.#compact);
    const legacy = layout(new LegacyLayout(writes, config.keyPrefix, limits));
    this.#legacy = legacy;
    this.#layouts =
      config.layout === 'legacy'
        ? [legacy, this.#compactLayout]
        : config.layout === 'compact'
          ? [this.#compactLayout, legacy]
          : [this.#compactLayout];
  }

  /**
   * A session with an owner goes in the compact layout, another in the first
   * layout. Unless its key was just generated, the key may hold a session in
   * the other layout: into the compact layout on one node, the put retires
   * that copy in the same step; otherwise (Cluster, where the two keys lie in
   * different slots, or `legacy`) a copy found there is replaced in place,
   * or, for a session with an owner, deleted once the compact one is stored.
   */
  async put(
    sessionKey: string,
    draft: SessionDraft,
    nowMs: number,
    scope?: CallScope,
  ): Promise<PutResult> {
    const target = draft.owner ? this.#compactLayout : (this.#layouts[0] as ScriptedLayout);
    if (draft.newKey || this.#layouts.length === 1)
      return target.put(sessionKey, draft, nowMs, scope);
    if (target === this.#compactLayout && !this.#cluster) {
      const legacy = this.#legacy.key(sessionKey);
      return this.#compact.put(sessionKey, draft, nowMs, scope, legacy);
    }
    for (const layout of this.#layouts) {
      if (layout === target) continue;
      const key = layout.key(sessionKey);
      if ((await this.#redis.send(['EXISTS', key], key, scope)) !== 1) continue;
      if (!draft.owner) return layout.put(sessionKey, draft, nowMs, scope);
      const stored = await target.put(sessionKey, draft, nowMs, scope);
      await layout.delete(sessionKey, nowMs, undefined, unclaimedScope(scope));
      return stored;
    }
    return target.put(sessionKey, draft, nowMs, scope);
  }

  get(sessionKey: string, nowMs: number, touch: boolean, scope?: CallScope) {
    return this.#first((layout) => layout.get(sessionKey, nowMs, touch, scope));
  }

  async update(
    sessionKey: string,
    change: SessionChange,
    nowMs: number,
    scope?: CallScope,
  ): Promise<Session> {
    const layouts = this.#layouts;
    for (let i = 0; ; i++) {
      try {
        return await (layouts[i] as ScriptedLayout).update(sessionKey, change, nowMs, scope);
      } catch (error) {
        const absent = error instanceof SessionError && error.code === ErrorCode.NotFound;
        if (!absent || i === layouts.length - 1) throw error;
      }
    }
  }

  touch(sessionKey: string, ttlSeconds: number, nowMs: number, scope?: CallScope) {
    return this.#first((layout) => layout.touch(sessionKey, ttlSeconds, nowMs, scope));
  }

  consume(sessionKey: string, nowMs: number, expectedVersion?: number, scope?: CallScope) {
    return this.#first((layout) => layout.consume(sessionKey, nowMs, expectedVersion, scope));
  }

  async delete(
    sessionKey: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<boolean> {
    const deleted = await this.#first(async (layout) =>
      (await layout.delete(sessionKey, nowMs, expectedVersion, scope)) ? true : null,
    );
    return deleted ?? false;
  }

  rotate(sessionKey: string, nextKey: () => string, nowMs: number, scope?: CallScope) {
    return this.#first((layout) => layout.rotate(sessionKey, nextKey, nowMs, scope));
  }

  listOwned(
    owner: OwnerRef,
    nowMs: number,
    includeContent: boolean,
    scope?: CallScope,
  ): Promise<OwnedSession[]> {
    return this.#compact.listOwned(owner, nowMs, includeContent, scope);
  }

  revokeOwned(owner: OwnerRef, nowMs: number, scope?: CallScope): Promise<number> {
    return this.#compact.revokeOwned(owner, nowMs, scope);
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

  /** The first layout's answer that is not null (absent), or null. */
  async #first<T>(operation: (layout: ScriptedLayout) => Promise<T | null>): Promise<T | null> {
    for (const layout of this.#layouts) {
      const found = await operation(layout);
      if (found !== null) return found;
    }
    return null;
  }
}
