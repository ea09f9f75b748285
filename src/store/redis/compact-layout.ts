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

const DOT = 0x2e;
const META = 0x6d;
const REQUEST = 0x71;
const RESPONSE = 0x72;
const ZERO = 0x30;

/**
 * The compact layout (lua/compact.lua, docs/redis-layout.md): the metadata
 * in one field, one-letter field names, a 128-bit digest in the key, and
 * payloads in 64-byte pieces while that keeps the hash a listpack. Sessions
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
      owner?.digest ?? '',
      String(this.#limits.maxPerOwner),
      this.#limits.atOwnerLimit,
      retire === undefined ? '0' : '1',
    ];
    const pieces = this.#piecesAllowed === '1' && inPieces(draft);
    payloadFields(args, REQUEST_PIECES, draft.fleetListRequest, pieces);
    payloadFields(args, RESPONSE_PIECES, draft.fleetListResponse, pieces);
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
    const request: Buffer[] = [];
    const response: Buffer[] = [];
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
      } else if (first === REQUEST || first === RESPONSE) {
        let index = 0;
        for (let at = 1; at < name.length; at++) index = index * 10 + (name[at] as number) - ZERO;
        (first === REQUEST ? request : response)[index] = value;
        pieces++;
      } else if (first === META && name.length === 1) {
        meta = parseMeta(value);
      }
    }
    // A missing piece leaves a hole, which the count of pieces tells.
    if (meta === undefined || request.length + response.length !== pieces) return TORN;
    const fleetListRequest = joined(request);
    const fleetListResponse = joined(response);
    if (meta.size !== attributeBytes + fleetListRequest.length + fleetListResponse.length)
      return TORN;
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
}

/** The m field: "created_at,expires_at,version,ttl,size". */
function parseMeta(value: Buffer): Meta | undefined {
  const parts = value.toString('latin1').split(',');
  if (parts.length !== 5 || parts.some((part) => !/^\d+$/.test(part))) return undefined;
  const [createdAtMs, expiresAtMs, version, ttlSeconds, size] = parts.map(Number) as [
    number,
    number,
    number,
    number,
    number,
  ];
  return { createdAtMs, expiresAtMs, version, ttlSeconds, size };
}

function readMeta(value: Buffer | undefined): Meta | typeof TORN {
  return (value && parseMeta(value)) ?? TORN;
}

const joined = (pieces: Buffer[]) =>
  pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);

/** Field names of payload pieces, made once: `q0` ... `q511`, `r0` ... */
const pieceNames = (letter: string) =>
  Array.from({ length: Compact.maxPiecedFields }, (_, i) => `${letter}${i}`);
const REQUEST_PIECES = pieceNames(Compact.request);
const RESPONSE_PIECES = pieceNames(Compact.response);

/** Appends a payload's fields: 64-byte pieces (views, not copies), or the whole in one; none when empty. */
function payloadFields(
  args: Array<string | Buffer>,
  names: readonly string[],
  payload: Buffer,
  pieces: boolean,
): void {
  if (payload.length === 0) return;
  if (!pieces) {
    args.push(names[0] as string, payload);
    return;
  }
  for (let at = 0, i = 0; at < payload.length; at += Compact.piece, i++)
    args.push(names[i] as string, payload.subarray(at, at + Compact.piece));
}

/**
 * Pieces of 64 bytes keep a hash a listpack under Redis's defaults (values
 * up to 64 bytes, up to 512 entries), which costs far less memory per field
 * than a hashtable; they only pay while every other field is that small too.
 */
function inPieces(draft: SessionDraft): boolean {
  for (const [name, value] of draft.attributes) {
    if (value.length > Compact.piece || Buffer.byteLength(name) + 1 > Compact.piece) return false;
  }
  const entries =
    2 +
    draft.attributes.size +
    Math.ceil(draft.fleetListRequest.length / Compact.piece) +
    Math.ceil(draft.fleetListResponse.length / Compact.piece);
  return entries <= Compact.maxPiecedFields;
}
