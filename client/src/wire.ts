import {
  bytesSize,
  EMPTY_BYTES,
  int64Size,
  LENGTH_DELIMITED,
  lengthDelimitedSize,
  readFields,
  readStringBytesEntry,
  VARINT,
  Writer,
} from '../../src/wire/protobuf.ts';

// The messages of proto/sessionmanager/v1/sessionmanager.proto as the client
// sends and reads them: snake_case objects, encoded and decoded by hand with
// the protobuf reader and writer the server uses (src/wire/protobuf.ts).
// Requests are encoded with their 5-byte gRPC prefix when `framed`; fields
// holding their default are omitted, as proto3 does.

export interface WireSessionData {
  session_key: string;
  fleet_list_request: Buffer;
  fleet_list_response: Buffer;
  attributes: Record<string, Buffer>;
  ttl_seconds: number;
  expires_at_unix_ms: number;
  version: number;
  created_at_unix_ms: number;
}

export interface WireSetSessionRequest {
  session_key: string;
  fleet_list_request: Uint8Array;
  fleet_list_response: Uint8Array;
  attributes: Record<string, Uint8Array>;
  ttl_seconds: number;
  owner: string;
}

export interface WireSetSessionResponse {
  session_key: string;
  expires_at_unix_ms: number;
  version: number;
}

export interface WireGetSessionRequest {
  session_key: string;
  touch: boolean;
}

/** `optional` fields are sent only when the property is present. */
export interface WireUpdateSessionRequest {
  session_key: string;
  fleet_list_request?: Uint8Array;
  fleet_list_response?: Uint8Array;
  set_attributes: Record<string, Uint8Array>;
  remove_attributes: string[];
  expected_version?: number;
  ttl_seconds: number;
}

export interface WireTouchSessionRequest {
  session_key: string;
  ttl_seconds: number;
}

export interface WireTouchSessionResponse {
  expires_at_unix_ms: number;
}

export interface WireKeyRequest {
  session_key: string;
}

/** ConsumeSessionRequest and DeleteSessionRequest; `expected_version` is sent only when present. */
export interface WireConditionalKeyRequest {
  session_key: string;
  expected_version?: number;
}

export interface WireDeleteSessionResponse {
  deleted: boolean;
}

export interface WireRotateSessionKeyResponse {
  session_key: string;
  expires_at_unix_ms: number;
  version: number;
}

export interface WireListSessionsRequest {
  owner: string;
  include_content: boolean;
}

export interface WireOwnedSession {
  handle: string;
  created_at_unix_ms: number;
  expires_at_unix_ms: number;
  version: number;
  ttl_seconds: number;
  size_bytes: number;
  fleet_list_request: Buffer;
  fleet_list_response: Buffer;
  attributes: Record<string, Buffer>;
}

export interface WireListSessionsResponse {
  sessions: WireOwnedSession[];
}

export interface WireOwnerRequest {
  owner: string;
}

export interface WireRevokeSessionsResponse {
  revoked: number;
}

export interface WireMethod<Request, Response> {
  /** The gRPC path, /sessionmanager.v1.SessionManagerService/Name. */
  path: string;
  /** The request message; with `framed`, preceded by the 5-byte gRPC prefix. */
  encode(value: Request, framed: boolean): Buffer;
  /** Throws ProtobufError for a malformed message. */
  decode(bytes: Buffer): Response;
}

export interface WireMethods {
  SetSession: WireMethod<WireSetSessionRequest, WireSetSessionResponse>;
  GetSession: WireMethod<WireGetSessionRequest, WireSessionData>;
  UpdateSession: WireMethod<WireUpdateSessionRequest, WireSessionData>;
  TouchSession: WireMethod<WireTouchSessionRequest, WireTouchSessionResponse>;
  ConsumeSession: WireMethod<WireConditionalKeyRequest, WireSessionData>;
  DeleteSession: WireMethod<WireConditionalKeyRequest, WireDeleteSessionResponse>;
  RotateSessionKey: WireMethod<WireKeyRequest, WireRotateSessionKeyResponse>;
  ListSessions: WireMethod<WireListSessionsRequest, WireListSessionsResponse>;
  RevokeSessions: WireMethod<WireOwnerRequest, WireRevokeSessionsResponse>;
}

const SERVICE = '/sessionmanager.v1.SessionManagerService/';

const asBuffer = (bytes: Uint8Array): Buffer =>
  Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);

const stringSize = (length: number) => (length === 0 ? 0 : lengthDelimitedSize(length));

/** A map<string, bytes> field, sized: each entry with its name's byte length and its own size. */
function mapEntries(map: Record<string, Uint8Array>): {
  size: number;
  entries: Array<[string, number, Buffer, number]>;
} {
  let size = 0;
  const entries: Array<[string, number, Buffer, number]> = [];
  for (const name of Object.keys(map)) {
    const value = asBuffer(map[name] as Uint8Array);
    const nameLength = Buffer.byteLength(name);
    const entryLength = lengthDelimitedSize(nameLength) + lengthDelimitedSize(value.length);
    entries.push([name, nameLength, value, entryLength]);
    size += lengthDelimitedSize(entryLength);
  }
  return { size, entries };
}

function writeEntries(w: Writer, field: number, entries: Array<[string, number, Buffer, number]>) {
  for (const [name, nameLength, value, entryLength] of entries) {
    w.tag(field, LENGTH_DELIMITED);
    w.varint(entryLength);
    w.string(1, name, nameLength);
    w.bytes(2, value);
  }
}

function encodeSet(value: WireSetSessionRequest, framed: boolean): Buffer {
  const keyLength = Buffer.byteLength(value.session_key);
  const ownerLength = Buffer.byteLength(value.owner);
  const request = asBuffer(value.fleet_list_request);
  const response = asBuffer(value.fleet_list_response);
  const attributes = mapEntries(value.attributes);
  const w = new Writer(
    stringSize(keyLength) +
      bytesSize(request) +
      bytesSize(response) +
      attributes.size +
      int64Size(value.ttl_seconds) +
      stringSize(ownerLength),
    framed,
  );
  if (keyLength !== 0) w.string(1, value.session_key, keyLength);
  if (request.length !== 0) w.bytes(2, request);
  if (response.length !== 0) w.bytes(3, response);
  writeEntries(w, 4, attributes.entries);
  w.int64(5, value.ttl_seconds);
  if (ownerLength !== 0) w.string(9, value.owner, ownerLength);
  return w.buf;
}

function encodeListSessions(value: WireListSessionsRequest, framed: boolean): Buffer {
  const ownerLength = Buffer.byteLength(value.owner);
  const w = new Writer(stringSize(ownerLength) + (value.include_content ? 2 : 0), framed);
  if (ownerLength !== 0) w.string(1, value.owner, ownerLength);
  w.bool(2, value.include_content);
  return w.buf;
}

function encodeOwner(value: WireOwnerRequest, framed: boolean): Buffer {
  const ownerLength = Buffer.byteLength(value.owner);
  const w = new Writer(stringSize(ownerLength), framed);
  if (ownerLength !== 0) w.string(1, value.owner, ownerLength);
  return w.buf;
}

function encodeGet(value: WireGetSessionRequest, framed: boolean): Buffer {
  const keyLength = Buffer.byteLength(value.session_key);
  const w = new Writer(stringSize(keyLength) + (value.touch ? 2 : 0), framed);
  if (keyLength !== 0) w.string(1, value.session_key, keyLength);
  w.bool(2, value.touch);
  return w.buf;
}

function encodeUpdate(value: WireUpdateSessionRequest, framed: boolean): Buffer {
  const keyLength = Buffer.byteLength(value.session_key);
  // `optional` fields are sent when present, even empty or 0.
  const request = value.fleet_list_request && asBuffer(value.fleet_list_request);
  const response = value.fleet_list_response && asBuffer(value.fleet_list_response);
  const attributes = mapEntries(value.set_attributes);
  const removed = value.remove_attributes.map((name) => [name, Buffer.byteLength(name)] as const);
  let size =
    stringSize(keyLength) +
    (request ? lengthDelimitedSize(request.length) : 0) +
    (response ? lengthDelimitedSize(response.length) : 0) +
    attributes.size +
    optionalInt64Size(value.expected_version) +
    int64Size(value.ttl_seconds);
  for (const [, length] of removed) size += lengthDelimitedSize(length);
  const w = new Writer(size, framed);
  if (keyLength !== 0) w.string(1, value.session_key, keyLength);
  if (request) w.bytes(2, request);
  if (response) w.bytes(3, response);
  writeEntries(w, 4, attributes.entries);
  for (const [name, length] of removed) w.string(5, name, length);
  writeOptionalInt64(w, 6, value.expected_version);
  w.int64(7, value.ttl_seconds);
  return w.buf;
}

/** An `optional int64` is sent when present, even 0 (one tag byte and the value). */
const optionalInt64Size = (value: number | undefined) =>
  value === undefined ? 0 : value === 0 ? 2 : int64Size(value);

function writeOptionalInt64(w: Writer, field: number, value: number | undefined): void {
  if (value === 0) {
    w.tag(field, VARINT);
    w.varint(0);
  } else if (value !== undefined) w.int64(field, value);
}

function encodeConditionalKey(value: WireConditionalKeyRequest, framed: boolean): Buffer {
  const keyLength = Buffer.byteLength(value.session_key);
  const w = new Writer(stringSize(keyLength) + optionalInt64Size(value.expected_version), framed);
  if (keyLength !== 0) w.string(1, value.session_key, keyLength);
  writeOptionalInt64(w, 2, value.expected_version);
  return w.buf;
}

function encodeTouch(value: WireTouchSessionRequest, framed: boolean): Buffer {
  const keyLength = Buffer.byteLength(value.session_key);
  const w = new Writer(stringSize(keyLength) + int64Size(value.ttl_seconds), framed);
  if (keyLength !== 0) w.string(1, value.session_key, keyLength);
  w.int64(2, value.ttl_seconds);
  return w.buf;
}

function encodeKey(value: WireKeyRequest, framed: boolean): Buffer {
  const keyLength = Buffer.byteLength(value.session_key);
  const w = new Writer(stringSize(keyLength), framed);
  if (keyLength !== 0) w.string(1, value.session_key, keyLength);
  return w.buf;
}

function decodeSession(bytes: Buffer): WireSessionData {
  const session: WireSessionData = {
    session_key: '',
    fleet_list_request: EMPTY_BYTES,
    fleet_list_response: EMPTY_BYTES,
    attributes: {},
    ttl_seconds: 0,
    expires_at_unix_ms: 0,
    version: 0,
    created_at_unix_ms: 0,
  };
  const attributes = new Map<string, Buffer>();
  readFields(bytes, (reader, number, wireType) => {
    if (wireType === LENGTH_DELIMITED) {
      if (number === 1) session.session_key = reader.string('session_key');
      else if (number === 2) session.fleet_list_request = reader.bytes();
      else if (number === 3) session.fleet_list_response = reader.bytes();
      else if (number === 4) readStringBytesEntry(reader, 'attributes', attributes);
      else return false;
      return true;
    }
    if (wireType !== VARINT) return false;
    if (number === 5) session.ttl_seconds = reader.int64();
    else if (number === 6) session.expires_at_unix_ms = reader.int64();
    else if (number === 7) session.version = reader.int64();
    else if (number === 8) session.created_at_unix_ms = reader.int64();
    else return false;
    return true;
  });
  // fromEntries defines own properties, so a name like "__proto__" stays data.
  session.attributes = Object.fromEntries(attributes);
  return session;
}

/** SetSessionResponse and RotateSessionKeyResponse: the same fields and numbers. */
function decodeKeyVersion(bytes: Buffer): WireSetSessionResponse {
  const reply = { session_key: '', expires_at_unix_ms: 0, version: 0 };
  readFields(bytes, (reader, number, wireType) => {
    if (number === 1 && wireType === LENGTH_DELIMITED)
      reply.session_key = reader.string('session_key');
    else if (number === 2 && wireType === VARINT) reply.expires_at_unix_ms = reader.int64();
    else if (number === 3 && wireType === VARINT) reply.version = reader.int64();
    else return false;
    return true;
  });
  return reply;
}

function decodeTouch(bytes: Buffer): WireTouchSessionResponse {
  const reply = { expires_at_unix_ms: 0 };
  readFields(bytes, (reader, number, wireType) => {
    if (number !== 1 || wireType !== VARINT) return false;
    reply.expires_at_unix_ms = reader.int64();
    return true;
  });
  return reply;
}

function decodeDelete(bytes: Buffer): WireDeleteSessionResponse {
  const reply = { deleted: false };
  readFields(bytes, (reader, number, wireType) => {
    if (number !== 1 || wireType !== VARINT) return false;
    reply.deleted = reader.bool();
    return true;
  });
  return reply;
}

function decodeOwnedSession(bytes: Buffer): WireOwnedSession {
  const session: WireOwnedSession = {
    handle: '',
    created_at_unix_ms: 0,
    expires_at_unix_ms: 0,
    version: 0,
    ttl_seconds: 0,
    size_bytes: 0,
    fleet_list_request: EMPTY_BYTES,
    fleet_list_response: EMPTY_BYTES,
    attributes: {},
  };
  const attributes = new Map<string, Buffer>();
  readFields(bytes, (reader, number, wireType) => {
    if (wireType === LENGTH_DELIMITED) {
      if (number === 1) session.handle = reader.string('handle');
      else if (number === 7) session.fleet_list_request = reader.bytes();
      else if (number === 8) session.fleet_list_response = reader.bytes();
      else if (number === 9) readStringBytesEntry(reader, 'attributes', attributes);
      else return false;
      return true;
    }
    if (wireType !== VARINT) return false;
    if (number === 2) session.created_at_unix_ms = reader.int64();
    else if (number === 3) session.expires_at_unix_ms = reader.int64();
    else if (number === 4) session.version = reader.int64();
    else if (number === 5) session.ttl_seconds = reader.int64();
    else if (number === 6) session.size_bytes = reader.int64();
    else return false;
    return true;
  });
  session.attributes = Object.fromEntries(attributes);
  return session;
}

function decodeListSessions(bytes: Buffer): WireListSessionsResponse {
  const sessions: WireOwnedSession[] = [];
  readFields(bytes, (reader, number, wireType) => {
    if (number !== 1 || wireType !== LENGTH_DELIMITED) return false;
    sessions.push(decodeOwnedSession(reader.bytes()));
    return true;
  });
  return { sessions };
}

function decodeRevokeSessions(bytes: Buffer): WireRevokeSessionsResponse {
  const reply = { revoked: 0 };
  readFields(bytes, (reader, number, wireType) => {
    if (number !== 1 || wireType !== VARINT) return false;
    reply.revoked = reader.int64();
    return true;
  });
  return reply;
}

const method = <Request, Response>(
  name: string,
  encode: (value: Request, framed: boolean) => Buffer,
  decode: (bytes: Buffer) => Response,
): WireMethod<Request, Response> => Object.freeze({ path: SERVICE + name, encode, decode });

export const wireMethods: WireMethods = Object.freeze({
  SetSession: method('SetSession', encodeSet, decodeKeyVersion),
  GetSession: method('GetSession', encodeGet, decodeSession),
  UpdateSession: method('UpdateSession', encodeUpdate, decodeSession),
  TouchSession: method('TouchSession', encodeTouch, decodeTouch),
  ConsumeSession: method('ConsumeSession', encodeConditionalKey, decodeSession),
  DeleteSession: method('DeleteSession', encodeConditionalKey, decodeDelete),
  RotateSessionKey: method('RotateSessionKey', encodeKey, decodeKeyVersion),
  ListSessions: method('ListSessions', encodeListSessions, decodeListSessions),
  RevokeSessions: method('RevokeSessions', encodeOwner, decodeRevokeSessions),
});
