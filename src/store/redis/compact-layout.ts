import type { CallScope } from '../../call-scope.ts';
import { ownerLimitReached } from '../../errors.ts';
import type { OwnedSession, OwnerRef, Session, SessionDraft } from '../../session.ts';
import { contentSize } from '../../session.ts';
import { tagOf } from '../../session-keys.ts';
import type { Reply } from '../../wire/resp.ts';
import {
  LISTED_CONTENT_MAX_BYTES,
  listingTooLarge,
  type PutResult,
  type StoreLimits,
} from '../store.ts';
import type { RedisConnection } from './connection.ts';
import { Compact, compactKey, indexKey, ownerStem, sessionStem } from './keys.ts';
import type { LayoutShape } from './layout.ts';
import {
  asArray,
  EXPIRED,
  internal,
  type ReadSession,
  ScriptStatus,
  type ScriptWrites,
  TORN,
} from './script-writes.ts';
import { Scripts } from './scripts.ts';

/** The first bytes that tell fields apart in a reply (keys.ts Compact). */
const DOT = Compact.attributePrefix.charCodeAt(0);
const META = Compact.meta.charCodeAt(0);
const PAYLOADS = Compact.payloads.charCodeAt(0);
const ZERO = '0'.charCodeAt(0);

/**
 * The compact layout (lua/compact.lua, docs/redis-layout.md): the metadata
 * in one field, one-letter field names, a 128-bit digest in the key, and
 * payloads (request and response together) in one field, or in 64-byte
 * pieces while that keeps a small session a listpack. Sessions
 * with an owner live only here, with their owner's index.
 */
export class CompactLayout implements LayoutShape {
  readonly scripts = {
    touch: Scripts.compactTouch,
    update: Scripts.compactUpdate,
    consume: Scripts.compactConsume,
    delete: Scripts.compactDelete,
    rotate: Scripts.compactRotate,
    repair: Scripts.compactRepair,
  };
  readonly #redis: RedisConnection;
  readonly #writes: ScriptWrites;
  readonly #prefix: string;
  readonly #limits: StoreLimits;
  /** REDIS_PAYLOAD_PIECES, as the scripts take it. */
  readonly #piecesAllowed: '1' | '0';

  constructor(
    redis: RedisConnection,
    writes: ScriptWrites,
    prefix: string,
    limits: StoreLimits,
    payloadPieces: boolean,
  ) {
    this.#redis = redis;
    this.#writes = writes;
    this.#prefix = prefix;
    this.#limits = limits;
    this.#piecesAllowed = payloadPieces ? '1' : '0';
  }

  key(sessionKey: string): string {
    return compactKey(this.#prefix, sessionKey);
  }

  attributeField(name: string): string {
    return Compact.attributePrefix + name;
  }

  leadingArgs(sessionKey: string): readonly string[] {
    const tag = tagOf(sessionKey);
    return [tag === undefined ? '' : ownerStem(this.#prefix, tag), this.#piecesAllowed];
  }

  /**
   * `retire`: the session's Redis key in the legacy layout, on the same node,
   * whose copy (if any) this put replaces in the same step.
   */
  async put(
    sessionKey: string,
    draft: SessionDraft,
    nowMs: number,
    scope: CallScope | undefined,
    retire?: string,
  ): Promise<PutResult> {
    const { owner } = draft;
    if (owner && tagOf(sessionKey) !== owner.tag)
      return internal('a session with an owner needs a key with its tag');
    const args: Array<string | Buffer> = [
      ...this.leadingArgs(sessionKey),
      String(nowMs),
      String(draft.ttlSeconds),
      String(this.#limits.maxLifetimeMs),
      String(contentSize(draft)),
      String(draft.fleetListRequest.length),
      owner?.digest ?? '',
      String(this.#limits.maxPerOwner),
      this.#limits.atOwnerLimit,
      retire === undefined ? '0' : '1',
    ];
    payloadFields(args, draft, this.#piecesAllowed === '1');
    for (const [name, value] of draft.attributes) args.push(this.attributeField(name), value);
    const keys = [this.key(sessionKey)];
    if (owner) keys.push(indexKey(this.#prefix, owner));
    if (retire !== undefined) keys.push(retire);
    const { reply, atMs } = await this.#writes.run(Scripts.compactPut, keys, args, nowMs, scope);
    const [version, detail, evicted] = asArray(reply);
    if (version === ScriptStatus.ownerFull)
      throw ownerLimitReached(Number(detail), this.#limits.maxPerOwner);
    return {
      version: Number(version),
      expiresAtMs: Number(detail),
      createdAtMs: atMs,
      evicted: Number(evicted),
    };
  }

  async listOwned(
    owner: OwnerRef,
    nowMs: number,
    includeContent: boolean,
    scope: CallScope | undefined,
  ): Promise<OwnedSession[]> {
    const reply = await this.#redis.runScript(
      Scripts.ownerList,
      [indexKey(this.#prefix, owner)],
      [
        ownerStem(this.#prefix, owner.tag),
        this.#piecesAllowed,
        sessionStem(this.#prefix, owner.tag),
        includeContent ? '1' : '0',
        String(nowMs),
        String(LISTED_CONTENT_MAX_BYTES),
      ],
      scope,
    );
    const [status, detail] = asArray(reply);
    if (status === ScriptStatus.tooLarge) throw listingTooLarge(Number(detail));
    const listed = asArray(detail ?? null);
    const sessions: OwnedSession[] = [];
    for (let i = 0; i + 1 < listed.length; i += 2) {
      const handle = String(listed[i]);
      const stored = listed[i + 1] ?? null;
      const session = includeContent
        ? this.read(stored, nowMs)
        : readMeta(Buffer.isBuffer(stored) ? stored : undefined);
      if (session === null || session === TORN || session === EXPIRED) continue;
      const { ttlSeconds, createdAtMs, expiresAtMs, version } = session;
      const metadata = { handle, ttlSeconds, createdAtMs, expiresAtMs, version };
      sessions.push(
        'fleetListRequest' in session
          ? { ...metadata, sizeBytes: contentSize(session), content: session }
          : { ...metadata, sizeBytes: session.size },
      );
    }
    return sessions;
  }

  async revokeOwned(owner: OwnerRef, nowMs: number, scope: CallScope | undefined) {
    const { reply } = await this.#writes.run(
      Scripts.ownerRevoke,
      [indexKey(this.#prefix, owner)],
      [
        ownerStem(this.#prefix, owner.tag),
        this.#piecesAllowed,
        sessionStem(this.#prefix, owner.tag),
        String(nowMs),
      ],
      nowMs,
      scope,
    );
    return Number(reply);
  }

  read(reply: Reply, nowMs: number): ReadSession<Session> {
    if (!Array.isArray(reply) || reply.length === 0) return null;
    const attributes = new Map<string, Buffer>();
    const payloads: Buffer[] = [];
    let meta: Meta | undefined;
    let pieces = 0;
    let attributeBytes = 0;
    for (let i = 0; i + 1 < reply.length; i += 2) {
      const name = reply[i];
      const value = reply[i + 1];
      if (!Buffer.isBuffer(name) || !Buffer.isBuffer(value))
        return internal('unexpected hash value');
      const first = name[0];
      if (first === DOT) {
        attributes.set(name.toString('utf8', 1), value);
        attributeBytes += name.length - 1 + value.length;
      } else if (first === PAYLOADS) {
        let index = 0;
        for (let at = 1; at < name.length; at++) index = index * 10 + (name[at] as number) - ZERO;
        payloads[index] = value;
        pieces++;
      } else if (first === META && name.length === 1) {
        meta = parseMeta(value);
      }
    }
    // A missing piece leaves a hole, which the count of pieces tells.
    if (meta === undefined || payloads.length !== pieces) return TORN;
    const joined = payloads.length === 1 ? (payloads[0] as Buffer) : Buffer.concat(payloads);
    if (meta.size !== attributeBytes + joined.length || meta.requestLength > joined.length)
      return TORN;
    const fleetListRequest = joined.subarray(0, meta.requestLength);
    const fleetListResponse = joined.subarray(meta.requestLength);
    if (meta.expiresAtMs <= nowMs) return EXPIRED;
    const { ttlSeconds, createdAtMs, expiresAtMs, version } = meta;
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

interface Meta {
  readonly createdAtMs: number;
  readonly expiresAtMs: number;
  readonly version: number;
  readonly ttlSeconds: number;
  readonly size: number;
  readonly requestLength: number;
}

/** The m field: "created_at,expires_at,version,ttl,size,request length". */
function parseMeta(value: Buffer): Meta | undefined {
  const parts = value.toString('latin1').split(',');
  if (parts.length !== 6 || parts.some((part) => !/^\d+$/.test(part))) return undefined;
  const [createdAtMs, expiresAtMs, version, ttlSeconds, size, requestLength] = parts.map(
    Number,
  ) as [number, number, number, number, number, number];
  return { createdAtMs, expiresAtMs, version, ttlSeconds, size, requestLength };
}

function readMeta(value: Buffer | undefined): Meta | typeof TORN {
  return (value && parseMeta(value)) ?? TORN;
}

/** Field names of payload pieces, made once: `p0` ... `p15`. */
const PIECE_NAMES = Array.from({ length: Compact.maxPieces }, (_, i) => `${Compact.payloads}${i}`);

/**
 * Appends the payloads' fields, the request then the response: in 64-byte
 * pieces when `piecesAllowed` and the session is small (inPieces), else in
 * one field; none when both are empty.
 */
function payloadFields(
  args: Array<string | Buffer>,
  draft: SessionDraft,
  piecesAllowed: boolean,
): void {
  const { fleetListRequest: request, fleetListResponse: response } = draft;
  const length = request.length + response.length;
  if (length === 0) return;
  const payloads =
    response.length === 0
      ? request
      : request.length === 0
        ? response
        : Buffer.concat([request, response]);
  if (!(piecesAllowed && inPieces(draft, length))) {
    args.push(PIECE_NAMES[0] as string, payloads);
    return;
  }
  for (let at = 0, i = 0; at < length; at += Compact.piece, i++)
    args.push(PIECE_NAMES[i] as string, payloads.subarray(at, at + Compact.piece));
}

/**
 * Pieces of 64 bytes keep a hash a listpack under Redis's defaults (values
 * up to 64 bytes), which costs far less memory per field than a hashtable;
 * they pay while every other field is that small too, and for payloads of up
 * to Compact.maxPieces pieces: each piece costs Redis CPU on every write.
 */
function inPieces(draft: SessionDraft, payloadBytes: number): boolean {
  if (Math.ceil(payloadBytes / Compact.piece) > Compact.maxPieces) return false;
  for (const [name, value] of draft.attributes) {
    if (value.length > Compact.piece || Buffer.byteLength(name) + 1 > Compact.piece) return false;
  }
  return true;
}
