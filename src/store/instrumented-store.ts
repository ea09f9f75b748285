import type { CallScope } from '../call-scope.ts';
import { ErrorCode, SessionError } from '../errors.ts';
import type { Metrics } from '../metrics.ts';
import type { OwnedSession, OwnerRef, Session, SessionChange, SessionDraft } from '../session.ts';
import { contentSize } from '../session.ts';
import type { PutResult, SessionStore } from './store.ts';

/** Errors that describe the session, not the store's health. */
const SESSION_OUTCOMES: ReadonlySet<string> = new Set([
  ErrorCode.NotFound,
  ErrorCode.VersionConflict,
  ErrorCode.TooLarge,
  ErrorCode.InvalidArgument,
]);

/**
 * Wraps any SessionStore with latency, error and lifecycle metrics, so every
 * store and every transport is measured the same way.
 */
export class InstrumentedStore implements SessionStore {
  readonly #store: SessionStore;
  readonly #metrics: Metrics;

  constructor(store: SessionStore, metrics: Metrics) {
    this.#store = store;
    this.#metrics = metrics;
  }

  async put(
    key: string,
    draft: SessionDraft,
    nowMs: number,
    scope?: CallScope,
  ): Promise<PutResult> {
    const stored = await this.#measure('put', () => this.#store.put(key, draft, nowMs, scope));
    this.#event(stored.version === 1 ? 'created' : 'replaced');
    if (stored.evicted > 0) this.#event('evicted', stored.evicted);
    this.#metrics.observeSessionSize(contentSize(draft));
    return stored;
  }

  async get(
    key: string,
    nowMs: number,
    touch: boolean,
    scope?: CallScope,
  ): Promise<Session | null> {
    const session = await this.#measure('get', () => this.#store.get(key, nowMs, touch, scope));
    if (!session) this.#event('not_found');
    else if (touch) this.#event('touched');
    return session;
  }

  async update(
    key: string,
    change: SessionChange,
    nowMs: number,
    scope?: CallScope,
  ): Promise<Session> {
    const session = await this.#measure('update', () =>
      this.#store.update(key, change, nowMs, scope),
    );
    this.#event('updated');
    this.#metrics.observeSessionSize(contentSize(session));
    return session;
  }

  async touch(
    key: string,
    ttlSeconds: number,
    nowMs: number,
    scope?: CallScope,
  ): Promise<number | null> {
    const expiresAtMs = await this.#measure('touch', () =>
      this.#store.touch(key, ttlSeconds, nowMs, scope),
    );
    this.#event(expiresAtMs === null ? 'not_found' : 'touched');
    return expiresAtMs;
  }

  async consume(
    key: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<Session | null> {
    const session = await this.#measure('consume', () =>
      this.#store.consume(key, nowMs, expectedVersion, scope),
    );
    this.#event(session ? 'consumed' : 'not_found');
    return session;
  }

  async delete(
    key: string,
    nowMs: number,
    expectedVersion?: number,
    scope?: CallScope,
  ): Promise<boolean> {
    const deleted = await this.#measure('delete', () =>
      this.#store.delete(key, nowMs, expectedVersion, scope),
    );
    if (deleted) this.#event('deleted');
    return deleted;
  }

  async rotate(key: string, nextKey: () => string, nowMs: number, scope?: CallScope) {
    const rotated = await this.#measure('rotate', () =>
      this.#store.rotate(key, nextKey, nowMs, scope),
    );
    this.#event(rotated ? 'rotated' : 'not_found');
    return rotated;
  }

  listOwned(
    owner: OwnerRef,
    nowMs: number,
    includeContent: boolean,
    scope?: CallScope,
  ): Promise<OwnedSession[]> {
    return this.#measure('list_owned', () =>
      this.#store.listOwned(owner, nowMs, includeContent, scope),
    );
  }

  async revokeOwned(owner: OwnerRef, nowMs: number, scope?: CallScope): Promise<number> {
    const revoked = await this.#measure('revoke_owned', () =>
      this.#store.revokeOwned(owner, nowMs, scope),
    );
    if (revoked > 0) this.#event('revoked', revoked);
    return revoked;
  }

  idempotencySecret(): Promise<Buffer> {
    return this.#store.idempotencySecret();
  }

  ping(): Promise<void> {
    return this.#measure('ping', () => this.#store.ping());
  }

  close(): Promise<void> {
    return this.#store.close();
  }

  #event(event: string, count = 1): void {
    this.#metrics.sessionEvent(event, count);
  }

  async #measure<T>(operation: string, run: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await run();
      this.#metrics.observeStore(operation, 'ok', (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      const code = error instanceof SessionError ? error.code : ErrorCode.Internal;
      this.#metrics.observeStore(operation, code, (performance.now() - started) / 1000);
      if (code === ErrorCode.NotFound) this.#event('not_found');
      else if (code === ErrorCode.VersionConflict) this.#event('cas_conflict');
      else if (!SESSION_OUTCOMES.has(code)) this.#metrics.storeErrors.inc({ operation, code });
      throw error;
    }
  }
}
