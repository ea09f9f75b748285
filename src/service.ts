import { type CallScope, UNSCOPED } from './call-scope.ts';
import type { SessionLimits } from './config.ts';
import { invalidArgument, notFound, tooLarge } from './errors.ts';
import { derivedKeys } from './idempotency.ts';
import type {
  OwnedSession,
  OwnerRef,
  Session,
  SessionChange,
  SessionContent,
  SessionDraft,
} from './session.ts';
import { contentSize } from './session.ts';
import { ownerRef, tagOf, withTag } from './session-keys.ts';
import type { PutResult, SessionStore, StoredVersion } from './store/store.ts';

const SESSION_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
/** 1-128 characters, none of them a control character or a lone surrogate. */
const ATTRIBUTE_NAME = /^[^\p{Cc}\p{Cs}]{1,128}$/u;
/** An owner id: opaque to the service, 1-256 characters, none of them a control character. */
const OWNER = /^[^\p{Cc}\p{Cs}]{1,256}$/u;

export interface SetSessionInput extends SessionContent {
  /** Empty: the service generates a key. */
  readonly sessionKey: string;
  /** 0: the configured default. */
  readonly ttlSeconds: number;
  /** Empty: no owner. Otherwise the session is indexed under it. */
  readonly owner: string;
}

export interface UpdateSessionInput extends SessionChange {
  readonly sessionKey: string;
}

/** ConsumeSession and DeleteSession: the key, and the version the session must be at. */
export interface ConditionalKeyInput {
  readonly sessionKey: string;
  readonly expectedVersion?: number;
}

export type StoredSession = Session & { readonly sessionKey: string };

/**
 * The session API in domain terms: validates input, applies the configured
 * policy and delegates to a SessionStore. Knows nothing of gRPC or Redis.
 */
export class SessionService {
  readonly #store: SessionStore;
  readonly #limits: SessionLimits;
  readonly #generateKey: () => string;
  readonly #now: () => number;
  /** The store's secret for derived keys, fetched once (and again after a failure). */
  #secret: Promise<Buffer> | undefined;

  constructor(
    store: SessionStore,
    limits: SessionLimits,
    generateKey: () => string,
    now: () => number = Date.now,
  ) {
    this.#store = store;
    this.#limits = limits;
    this.#generateKey = generateKey;
    this.#now = now;
  }

  async set(
    input: SetSessionInput,
    scope: CallScope = UNSCOPED,
  ): Promise<PutResult & { sessionKey: string }> {
    if (input.sessionKey !== '') checkKey(input.sessionKey);
    const ttlSeconds =
      input.ttlSeconds === 0 ? this.#limits.defaultTtlSeconds : this.#ttl(input.ttlSeconds);
    this.#checkAttributes('attributes', input.attributes);
    const size = contentSize(input);
    if (size > this.#limits.maxBytes) {
      throw tooLarge('session', `holds ${size} bytes; the limit is ${this.#limits.maxBytes}`);
    }
    const owner = input.owner === '' ? undefined : await this.#owner(input.owner);
    if (owner && input.sessionKey !== '' && tagOf(input.sessionKey) !== owner.tag) {
      throw invalidArgument(
        'session_key',
        'a session with an owner needs a key this service generated for that owner: leave session_key empty',
      );
    }
    const sessionKey =
      input.sessionKey === '' ? this.#tagged((await this.#keys(scope))(), owner) : input.sessionKey;
    const { fleetListRequest, fleetListResponse, attributes } = input;
    const newKey = input.sessionKey === '';
    const draft: SessionDraft = owner
      ? { fleetListRequest, fleetListResponse, attributes, ttlSeconds, newKey, owner }
      : { fleetListRequest, fleetListResponse, attributes, ttlSeconds, newKey };
    const stored = await this.#store.put(sessionKey, draft, this.#now(), scope);
    return { sessionKey, ...stored };
  }

  /** The owner's live sessions, oldest first; their content only when asked. */
  async listOwned(
    owner: string,
    includeContent: boolean,
    scope: CallScope = UNSCOPED,
  ): Promise<OwnedSession[]> {
    const ref = await this.#owner(owner);
    return this.#store.listOwned(ref, this.#now(), includeContent, scope);
  }

  /** Deletes every session of the owner; how many there were. */
  async revokeOwned(owner: string, scope: CallScope = UNSCOPED): Promise<number> {
    return this.#store.revokeOwned(await this.#owner(owner), this.#now(), scope);
  }

  async get(
    sessionKey: string,
    touch: boolean,
    scope: CallScope = UNSCOPED,
  ): Promise<StoredSession> {
    const session = await this.#store.get(checkKey(sessionKey), this.#now(), touch, scope);
    if (!session) throw notFound();
    return { sessionKey, ...session };
  }

  async update(input: UpdateSessionInput, scope: CallScope = UNSCOPED): Promise<StoredSession> {
    const sessionKey = checkKey(input.sessionKey);
    const ttlSeconds = input.ttlSeconds === 0 ? 0 : this.#ttl(input.ttlSeconds);
    this.#checkAttributes('set_attributes', input.setAttributes);
    if (input.removeAttributes.length > this.#limits.maxAttributes) {
      throw invalidArgument(
        'remove_attributes',
        `names ${input.removeAttributes.length} attributes; the limit is ${this.#limits.maxAttributes}`,
      );
    }
    for (const name of input.removeAttributes) {
      checkAttributeName('remove_attributes', name);
      if (input.setAttributes.has(name)) {
        throw invalidArgument('remove_attributes', `"${name}" is also in set_attributes`);
      }
    }
    const session = await this.#store.update(
      sessionKey,
      { ...input, ttlSeconds },
      this.#now(),
      scope,
    );
    return { sessionKey, ...session };
  }

  async touch(
    sessionKey: string,
    ttlSeconds: number,
    scope: CallScope = UNSCOPED,
  ): Promise<number> {
    const ttl = ttlSeconds === 0 ? 0 : this.#ttl(ttlSeconds);
    const expiresAtMs = await this.#store.touch(checkKey(sessionKey), ttl, this.#now(), scope);
    if (expiresAtMs === null) throw notFound();
    return expiresAtMs;
  }

  async consume(input: ConditionalKeyInput, scope: CallScope = UNSCOPED): Promise<StoredSession> {
    const { sessionKey, expectedVersion } = input;
    const session = await this.#store.consume(
      checkKey(sessionKey),
      this.#now(),
      expectedVersion,
      scope,
    );
    if (!session) throw notFound();
    return { sessionKey, ...session };
  }

  async delete(input: ConditionalKeyInput, scope: CallScope = UNSCOPED): Promise<boolean> {
    return this.#store.delete(
      checkKey(input.sessionKey),
      this.#now(),
      input.expectedVersion,
      scope,
    );
  }

  /** Moves the session to a new generated key; the old key is gone. NOT_FOUND when absent. */
  async rotate(
    sessionKey: string,
    scope: CallScope = UNSCOPED,
  ): Promise<StoredVersion & { sessionKey: string }> {
    checkKey(sessionKey);
    const keys = await this.#keys(scope);
    // A session with an owner stays in its owner's slot: the new key keeps the tag.
    const tag = tagOf(sessionKey);
    const nextKey = tag === undefined ? keys : () => withTag(keys(), tag);
    const rotated = await this.#store.rotate(sessionKey, nextKey, this.#now(), scope);
    if (!rotated) throw notFound();
    return rotated;
  }

  /**
   * Where generated keys come from: fresh random ones, or for a call with an
   * idempotency key, ones derived from its claim, so that a repeat, on any
   * server sharing the store, lands on the first call's key and its record.
   */
  async #keys(scope: CallScope): Promise<() => string> {
    if (scope.idempotency === undefined) return this.#generateKey;
    return derivedKeys(await this.#storeSecret(), scope.idempotency);
  }

  #tagged(generatedKey: string, owner: OwnerRef | undefined): string {
    return owner ? withTag(generatedKey, owner.tag) : generatedKey;
  }

  async #owner(owner: string): Promise<OwnerRef> {
    if (!OWNER.test(owner)) {
      throw invalidArgument(
        'owner',
        owner === ''
          ? 'is required'
          : `must be 1-256 characters, none of them a control character (got ${owner.length} characters)`,
      );
    }
    return ownerRef(await this.#storeSecret(), owner);
  }

  #storeSecret(): Promise<Buffer> {
    this.#secret ??= this.#store.idempotencySecret().catch((error: unknown) => {
      this.#secret = undefined;
      throw error;
    });
    return this.#secret;
  }

  #ttl(ttlSeconds: number): number {
    if (
      !Number.isInteger(ttlSeconds) ||
      ttlSeconds < 1 ||
      ttlSeconds > this.#limits.maxTtlSeconds
    ) {
      throw invalidArgument(
        'ttl_seconds',
        `must be 0 (default) or between 1 and ${this.#limits.maxTtlSeconds}; got ${ttlSeconds}`,
      );
    }
    return ttlSeconds;
  }

  #checkAttributes(field: string, attributes: ReadonlyMap<string, Buffer>): void {
    if (attributes.size > this.#limits.maxAttributes) {
      throw tooLarge(
        field,
        `holds ${attributes.size} attributes; the limit is ${this.#limits.maxAttributes}`,
      );
    }
    for (const name of attributes.keys()) checkAttributeName(field, name);
  }
}

function checkKey(sessionKey: string): string {
  if (!SESSION_KEY.test(sessionKey)) {
    throw invalidArgument(
      'session_key',
      sessionKey === ''
        ? 'is required'
        : `must be 1-128 characters of [A-Za-z0-9._:-] (got ${sessionKey.length} characters)`,
    );
  }
  return sessionKey;
}

function checkAttributeName(field: string, name: string): void {
  if (!ATTRIBUTE_NAME.test(name)) {
    throw invalidArgument(
      field,
      `attribute names must be 1-128 printable characters (got ${JSON.stringify(name.slice(0, 32))}${name.length > 32 ? '...' : ''})`,
    );
  }
}
