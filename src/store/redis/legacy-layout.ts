import type { CallScope } from '../../call-scope.ts';
import type { Session, SessionDraft } from '../../session.ts';
import { contentSize } from '../../session.ts';
import type { Reply } from '../../wire/resp.ts';
import type { PutResult, StoreLimits } from '../store.ts';
import { ATTRIBUTE_PREFIX, attributeField, Field, legacyKey } from './keys.ts';
import type { LayoutShape } from './layout.ts';
import {
  asArray,
  decimal,
  EXPIRED,
  internal,
  type ReadSession,
  type ScriptWrites,
  TORN,
} from './script-writes.ts';
import { Scripts } from './scripts.ts';

/**
 * The layout of the versions before the compact one (keys.ts Field): seven
 * named fields beside `attr:` attributes, under `<prefix>s:<sha256>`. Kept
 * so that sessions written by those versions are read and updated in place
 * during a rolling upgrade (docs/redis-layout.md).
 */
export class LegacyLayout implements LayoutShape {
  readonly scripts = {
    touch: Scripts.touch,
    update: Scripts.update,
    consume: Scripts.consume,
    delete: Scripts.delete,
    rotate: Scripts.rotate,
    repair: Scripts.repair,
  };
  readonly #writes: ScriptWrites;
  readonly #prefix: string;
  readonly #limits: StoreLimits;

  constructor(writes: ScriptWrites, prefix: string, limits: StoreLimits) {
    this.#writes = writes;
    this.#prefix = prefix;
    this.#limits = limits;
  }

  key(sessionKey: string): string {
    return legacyKey(this.#prefix, sessionKey);
  }

  attributeField(name: string): string {
    return attributeField(name);
  }

  leadingArgs(): readonly string[] {
    return [];
  }

  async put(
    sessionKey: string,
    draft: SessionDraft,
    nowMs: number,
    scope: CallScope | undefined,
  ): Promise<PutResult> {
    const args: Array<string | Buffer> = [
      String(nowMs),
      String(draft.ttlSeconds),
      String(this.#limits.maxLifetimeMs),
      String(contentSize(draft)),
      draft.fleetListRequest,
      draft.fleetListResponse,
    ];
    for (const [name, value] of draft.attributes) args.push(attributeField(name), value);
    const { reply, atMs } = await this.#writes.run(
      Scripts.put,
      [this.key(sessionKey)],
      args,
      nowMs,
      scope,
    );
    const [version, expiresAtMs] = asArray(reply);
    return {
      version: Number(version),
      expiresAtMs: Number(expiresAtMs),
      createdAtMs: atMs,
      evicted: 0,
    };
  }

  read(reply: Reply, nowMs: number): ReadSession<Session> {
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
      if (!Buffer.isBuffer(name) || !Buffer.isBuffer(value))
        return internal('unexpected hash value');
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
}
