import type { SessionMethod } from '../auth.ts';
import type { CallScope } from '../call-scope.ts';
import {
  bool,
  bytes,
  bytesMap,
  int64,
  type JsonMessage,
  optional,
  type Parsed,
  repeated,
  string,
  strings,
} from '../http/json-mapping.ts';
import type { SessionService, StoredSession } from '../service.ts';
import type { OwnedSession } from '../session.ts';
import type { StatusName } from '../wire/grpc-status.ts';
import {
  decodeConditionalKey,
  decodeGetSession,
  decodeListSessions,
  decodeOwner,
  decodeSessionKey,
  decodeSetSession,
  decodeTouchSession,
  decodeUpdateSession,
  encodeDeleteSessionResponse,
  encodeKeyVersion,
  encodeListSessionsResponse,
  encodeRevokeSessionsResponse,
  encodeSession,
  encodeTouchSessionResponse,
} from './codec.ts';

/**
 * Every session RPC, declared once: its permission (auth.ts's table, by
 * name), how its request is decoded from protobuf and from JSON, the service
 * call, and how its reply is encoded for each. The gRPC transports and the
 * HTTP/JSON routes are adapters over this table; the OpenAPI document is
 * derived from it.
 */

export const SERVICE_NAME = 'sessionmanager.v1.SessionManagerService';

const OWNED_SESSION = {
  handle: string,
  createdAtUnixMs: int64,
  expiresAtUnixMs: int64,
  version: int64,
  ttlSeconds: int64,
  sizeBytes: int64,
  fleetListRequest: bytes,
  fleetListResponse: bytes,
  attributes: bytesMap,
} as const satisfies JsonMessage;

/** The messages of the contract in the proto3 JSON mapping (JSON names, as the service's input names them). */
export const messages = {
  SetSessionRequest: {
    sessionKey: string,
    fleetListRequest: bytes,
    fleetListResponse: bytes,
    attributes: bytesMap,
    ttlSeconds: int64,
    owner: string,
  },
  UpdateSessionRequest: {
    fleetListRequest: optional(bytes),
    fleetListResponse: optional(bytes),
    setAttributes: bytesMap,
    removeAttributes: strings,
    expectedVersion: optional(int64),
    ttlSeconds: int64,
  },
  TouchSessionRequest: { ttlSeconds: int64 },
  ConditionalRequest: { expectedVersion: optional(int64) },
  SessionData: {
    sessionKey: string,
    fleetListRequest: bytes,
    fleetListResponse: bytes,
    attributes: bytesMap,
    ttlSeconds: int64,
    expiresAtUnixMs: int64,
    version: int64,
    createdAtUnixMs: int64,
  },
  SetSessionResponse: { sessionKey: string, expiresAtUnixMs: int64, version: int64 },
  TouchSessionResponse: { expiresAtUnixMs: int64 },
  DeleteSessionResponse: { deleted: bool },
  RotateSessionKeyResponse: { sessionKey: string, expiresAtUnixMs: int64, version: int64 },
  ListSessionsRequest: { owner: string, includeContent: bool },
  ListSessionsResponse: { sessions: repeated(OWNED_SESSION) },
  RevokeSessionsRequest: { owner: string },
  RevokeSessionsResponse: { revoked: int64 },
} as const satisfies Record<string, JsonMessage>;

export type MessageName = keyof typeof messages;
type Body<Name extends MessageName> = Parsed<(typeof messages)[Name]>;

/**
 * The HTTP/JSON route of a method. Paths are OpenAPI templates; `{key}` is
 * the session key. Owner ids are personal data and URLs end up in proxy
 * logs, so the owner routes take them in the body, never in the path.
 */
export interface HttpRoute<Req, Res> {
  readonly verb: 'get' | 'post' | 'patch' | 'delete';
  readonly path: string;
  /** The body's message; without one the route reads no body. */
  readonly body?: MessageName;
  /** True when the body may be left out (it then reads as `{}`). */
  readonly optionalBody?: boolean;
  /** Boolean query flags. */
  readonly flags?: readonly string[];
  readonly request: (key: string, body: never, flags: Readonly<Record<string, boolean>>) => Req;
  readonly reply: MessageName;
  readonly toJson: (response: Res) => unknown;
}

export interface RpcMethod<Req = unknown, Res = unknown> {
  readonly name: SessionMethod;
  /** One line for the OpenAPI document. */
  readonly summary: string;
  /** Statuses this call can end with besides those every call can (INVALID_ARGUMENT, UNAVAILABLE, the auth ones, INTERNAL). */
  readonly errors: readonly StatusName[];
  /**
   * True for the writes that honour an idempotency key: a repeat under the
   * same key gets the first call's outcome (idempotency.ts).
   */
  readonly idempotent?: boolean;
  /** True when this request also needs the write permission (GetSession with touch extends the session). */
  readonly touches?: (request: Req) => boolean;
  readonly decode: (message: Buffer) => Req;
  /** One framed gRPC message. */
  readonly encode: (response: Res) => Buffer;
  readonly call: (service: SessionService, request: Req, scope: CallScope) => Promise<Res>;
  readonly http: HttpRoute<Req, Res>;
}

const method = <Req, Res>(definition: RpcMethod<Req, Res>) => definition as unknown as RpcMethod;

const int64Json = (value: number) => String(value);

function attributesJson(attributes: ReadonlyMap<string, Buffer>) {
  const json: Record<string, string> = {};
  for (const [name, value] of attributes) json[name] = value.toString('base64');
  return json;
}

function sessionJson(session: StoredSession) {
  return {
    sessionKey: session.sessionKey,
    fleetListRequest: session.fleetListRequest.toString('base64'),
    fleetListResponse: session.fleetListResponse.toString('base64'),
    attributes: attributesJson(session.attributes),
    ttlSeconds: int64Json(session.ttlSeconds),
    expiresAtUnixMs: int64Json(session.expiresAtMs),
    version: int64Json(session.version),
    createdAtUnixMs: int64Json(session.createdAtMs),
  };
}

const keyVersionJson = (reply: { sessionKey: string; expiresAtMs: number; version: number }) => ({
  sessionKey: reply.sessionKey,
  expiresAtUnixMs: int64Json(reply.expiresAtMs),
  version: int64Json(reply.version),
});

/** Every field present, as in every reply: without content, the payloads are empty. */
const ownedSessionJson = (session: OwnedSession) => ({
  handle: session.handle,
  createdAtUnixMs: int64Json(session.createdAtMs),
  expiresAtUnixMs: int64Json(session.expiresAtMs),
  version: int64Json(session.version),
  ttlSeconds: int64Json(session.ttlSeconds),
  sizeBytes: int64Json(session.sizeBytes),
  fleetListRequest: session.content?.fleetListRequest.toString('base64') ?? '',
  fleetListResponse: session.content?.fleetListResponse.toString('base64') ?? '',
  attributes: session.content ? attributesJson(session.content.attributes) : {},
});

const ITEM = '/v1/sessions/{key}';
const OWNER_SESSIONS = '/v1/owner-sessions';

export const METHODS: readonly RpcMethod[] = [
  method({
    name: 'SetSession',
    idempotent: true,
    summary: 'Create a session, or replace the whole session stored under its key',
    errors: ['RESOURCE_EXHAUSTED'],
    decode: decodeSetSession,
    encode: encodeKeyVersion,
    call: (service, request, scope) => service.set(request, scope),
    http: {
      verb: 'post',
      path: '/v1/sessions',
      body: 'SetSessionRequest',
      request: (_key, body: Body<'SetSessionRequest'>) => body,
      reply: 'SetSessionResponse',
      toJson: keyVersionJson,
    },
  }),
  method({
    name: 'GetSession',
    summary: 'Read a session; with touch, also extend its idle TTL',
    errors: ['NOT_FOUND'],
    touches: (request) => request.touch,
    decode: decodeGetSession,
    encode: encodeSession,
    call: (service, request, scope) => service.get(request.sessionKey, request.touch, scope),
    http: {
      verb: 'get',
      path: ITEM,
      flags: ['touch'],
      request: (sessionKey, _body: never, flags) => ({ sessionKey, touch: flags.touch === true }),
      reply: 'SessionData',
      toJson: sessionJson,
    },
  }),
  method({
    name: 'UpdateSession',
    idempotent: true,
    summary: 'Merge changes into an existing session, optionally only at an expected version',
    errors: ['NOT_FOUND', 'ABORTED', 'RESOURCE_EXHAUSTED'],
    decode: decodeUpdateSession,
    encode: encodeSession,
    call: (service, request, scope) => service.update(request, scope),
    http: {
      verb: 'patch',
      path: ITEM,
      body: 'UpdateSessionRequest',
      request: (sessionKey, body: Body<'UpdateSessionRequest'>) => ({ ...body, sessionKey }),
      reply: 'SessionData',
      toJson: sessionJson,
    },
  }),
  method({
    name: 'TouchSession',
    idempotent: true,
    summary: "Extend a session's idle TTL, optionally setting a new one",
    errors: ['NOT_FOUND'],
    decode: decodeTouchSession,
    encode: encodeTouchSessionResponse,
    call: (service, request, scope) => service.touch(request.sessionKey, request.ttlSeconds, scope),
    http: {
      verb: 'post',
      path: `${ITEM}:touch`,
      body: 'TouchSessionRequest',
      request: (sessionKey, body: Body<'TouchSessionRequest'>) => ({ ...body, sessionKey }),
      reply: 'TouchSessionResponse',
      toJson: (expiresAtMs: number) => ({ expiresAtUnixMs: int64Json(expiresAtMs) }),
    },
  }),
  method({
    name: 'ConsumeSession',
    idempotent: true,
    summary: 'Read and delete a session in one atomic step, optionally only at an expected version',
    errors: ['NOT_FOUND', 'ABORTED'],
    decode: decodeConditionalKey,
    encode: encodeSession,
    call: (service, request, scope) => service.consume(request, scope),
    http: {
      verb: 'post',
      path: `${ITEM}:consume`,
      body: 'ConditionalRequest',
      optionalBody: true,
      request: (sessionKey, body: Body<'ConditionalRequest'>) => ({ ...body, sessionKey }),
      reply: 'SessionData',
      toJson: sessionJson,
    },
  }),
  method({
    name: 'DeleteSession',
    idempotent: true,
    summary:
      'Delete a session, optionally only at an expected version; deleting an absent key succeeds with deleted false',
    errors: ['ABORTED'],
    decode: decodeConditionalKey,
    encode: encodeDeleteSessionResponse,
    call: (service, request, scope) => service.delete(request, scope),
    http: {
      verb: 'delete',
      path: ITEM,
      body: 'ConditionalRequest',
      optionalBody: true,
      request: (sessionKey, body: Body<'ConditionalRequest'>) => ({ ...body, sessionKey }),
      reply: 'DeleteSessionResponse',
      toJson: (deleted: boolean) => ({ deleted }),
    },
  }),
  method({
    name: 'RotateSessionKey',
    idempotent: true,
    summary: 'Move a session to a new server-generated key; safe to retry with an idempotency key',
    errors: ['NOT_FOUND'],
    decode: decodeSessionKey,
    encode: encodeKeyVersion,
    call: (service, sessionKey, scope) => service.rotate(sessionKey, scope),
    http: {
      verb: 'post',
      path: `${ITEM}:rotate`,
      request: (sessionKey) => sessionKey,
      reply: 'RotateSessionKeyResponse',
      toJson: keyVersionJson,
    },
  }),
  method({
    name: 'ListSessions',
    summary:
      "List an owner's live sessions, oldest first: handles and metadata, content on request",
    errors: [],
    decode: decodeListSessions,
    encode: encodeListSessionsResponse,
    call: (service, request, scope) =>
      service.listOwned(request.owner, request.includeContent, scope),
    http: {
      verb: 'post',
      path: `${OWNER_SESSIONS}:list`,
      body: 'ListSessionsRequest',
      request: (_key, body: Body<'ListSessionsRequest'>) => body,
      reply: 'ListSessionsResponse',
      toJson: (sessions: OwnedSession[]) => ({ sessions: sessions.map(ownedSessionJson) }),
    },
  }),
  method({
    name: 'RevokeSessions',
    idempotent: true,
    summary: 'Delete every session of an owner in one atomic step; how many were live',
    errors: [],
    decode: decodeOwner,
    encode: encodeRevokeSessionsResponse,
    call: (service, owner, scope) => service.revokeOwned(owner, scope),
    http: {
      verb: 'post',
      path: `${OWNER_SESSIONS}:revoke`,
      body: 'RevokeSessionsRequest',
      request: (_key, body: Body<'RevokeSessionsRequest'>) => body.owner,
      reply: 'RevokeSessionsResponse',
      toJson: (revoked: number) => ({ revoked: int64Json(revoked) }),
    },
  }),
];
