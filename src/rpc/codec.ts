import type { SetSessionInput, StoredSession, UpdateSessionInput } from '../service.ts';
import type { OwnedSession } from '../session.ts';
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
} from '../wire/protobuf.ts';

/**
 * The session messages of proto/sessionmanager/v1/sessionmanager.proto in
 * the protobuf wire format, by hand: requests decode to the service's input,
 * replies encode as one framed gRPC message (the 5-byte prefix first), so a
 * transport writes them as they are. Fields holding their default are
 * omitted. A malformed message throws ProtobufError.
 */

/** SessionData, the SetSession request. The output fields 6-8 are read and ignored. */
export function decodeSetSession(buf: Buffer): SetSessionInput {
  let sessionKey = '';
  let owner = '';
  let fleetListRequest = EMPTY_BYTES;
  let fleetListResponse = EMPTY_BYTES;
  let ttlSeconds = 0;
  const attributes = new Map<string, Buffer>();
  readFields(buf, (reader, number, wireType) => {
    if (wireType === LENGTH_DELIMITED) {
      if (number === 1) sessionKey = reader.string('session_key');
      else if (number === 2) fleetListRequest = reader.bytes();
      else if (number === 3) fleetListResponse = reader.bytes();
      else if (number === 4) readStringBytesEntry(reader, 'attributes', attributes);
      else if (number === 9) owner = reader.string('owner');
      else return false;
      return true;
    }
    if (wireType === VARINT && number === 5) {
      ttlSeconds = reader.int64();
      return true;
    }
    return false;
  });
  return { sessionKey, fleetListRequest, fleetListResponse, attributes, ttlSeconds, owner };
}

export interface GetSessionInput {
  readonly sessionKey: string;
  readonly touch: boolean;
}

export function decodeGetSession(buf: Buffer): GetSessionInput {
  let sessionKey = '';
  let touch = false;
  readFields(buf, (reader, number, wireType) => {
    if (number === 1 && wireType === LENGTH_DELIMITED) sessionKey = reader.string('session_key');
    else if (number === 2 && wireType === VARINT) touch = reader.bool();
    else return false;
    return true;
  });
  return { sessionKey, touch };
}

export function decodeUpdateSession(buf: Buffer): UpdateSessionInput {
  let sessionKey = '';
  let fleetListRequest: Buffer | undefined;
  let fleetListResponse: Buffer | undefined;
  let expectedVersion: number | undefined;
  let ttlSeconds = 0;
  const setAttributes = new Map<string, Buffer>();
  const removeAttributes: string[] = [];
  readFields(buf, (reader, number, wireType) => {
    if (wireType === LENGTH_DELIMITED) {
      if (number === 1) sessionKey = reader.string('session_key');
      else if (number === 2) fleetListRequest = reader.bytes();
      else if (number === 3) fleetListResponse = reader.bytes();
      else if (number === 4) readStringBytesEntry(reader, 'set_attributes', setAttributes);
      else if (number === 5) removeAttributes.push(reader.string('remove_attributes'));
      else return false;
      return true;
    }
    if (wireType === VARINT) {
      if (number === 6) expectedVersion = reader.int64();
      else if (number === 7) ttlSeconds = reader.int64();
      else return false;
      return true;
    }
    return false;
  });
  return {
    sessionKey,
    ...(fleetListRequest && { fleetListRequest }),
    ...(fleetListResponse && { fleetListResponse }),
    ...(expectedVersion !== undefined && { expectedVersion }),
    setAttributes,
    removeAttributes,
    ttlSeconds,
  };
}

export interface TouchSessionInput {
  readonly sessionKey: string;
  readonly ttlSeconds: number;
}

export function decodeTouchSession(buf: Buffer): TouchSessionInput {
  let sessionKey = '';
  let ttlSeconds = 0;
  readFields(buf, (reader, number, wireType) => {
    if (number === 1 && wireType === LENGTH_DELIMITED) sessionKey = reader.string('session_key');
    else if (number === 2 && wireType === VARINT) ttlSeconds = reader.int64();
    else return false;
    return true;
  });
  return { sessionKey, ttlSeconds };
}

export interface ConditionalKeyInput {
  readonly sessionKey: string;
  readonly expectedVersion?: number;
}

/** ConsumeSessionRequest and DeleteSessionRequest: a session_key and an optional expected_version. */
export function decodeConditionalKey(buf: Buffer): ConditionalKeyInput {
  let sessionKey = '';
  let expectedVersion: number | undefined;
  readFields(buf, (reader, number, wireType) => {
    if (number === 1 && wireType === LENGTH_DELIMITED) sessionKey = reader.string('session_key');
    else if (number === 2 && wireType === VARINT) expectedVersion = reader.int64();
    else return false;
    return true;
  });
  return expectedVersion === undefined ? { sessionKey } : { sessionKey, expectedVersion };
}

/** RotateSessionKeyRequest: a session_key alone. */
export function decodeSessionKey(buf: Buffer): string {
  let sessionKey = '';
  readFields(buf, (reader, number, wireType) => {
    if (number !== 1 || wireType !== LENGTH_DELIMITED) return false;
    sessionKey = reader.string('session_key');
    return true;
  });
  return sessionKey;
}

export interface ListSessionsInput {
  readonly owner: string;
  readonly includeContent: boolean;
}

export function decodeListSessions(buf: Buffer): ListSessionsInput {
  let owner = '';
  let includeContent = false;
  readFields(buf, (reader, number, wireType) => {
    if (number === 1 && wireType === LENGTH_DELIMITED) owner = reader.string('owner');
    else if (number === 2 && wireType === VARINT) includeContent = reader.bool();
    else return false;
    return true;
  });
  return { owner, includeContent };
}

/** RevokeSessionsRequest: an owner alone. */
export function decodeOwner(buf: Buffer): string {
  let owner = '';
  readFields(buf, (reader, number, wireType) => {
    if (number !== 1 || wireType !== LENGTH_DELIMITED) return false;
    owner = reader.string('owner');
    return true;
  });
  return owner;
}

/** SessionData, the reply of Get, Update and Consume. */
export function encodeSession(session: StoredSession): Buffer {
  const keyLength = Buffer.byteLength(session.sessionKey);
  const attributes = sizedEntries(session.attributes);
  const size =
    (keyLength === 0 ? 0 : lengthDelimitedSize(keyLength)) +
    bytesSize(session.fleetListRequest) +
    bytesSize(session.fleetListResponse) +
    attributes.size +
    int64Size(session.ttlSeconds) +
    int64Size(session.expiresAtMs) +
    int64Size(session.version) +
    int64Size(session.createdAtMs);
  const w = new Writer(size, true);
  if (keyLength !== 0) w.string(1, session.sessionKey, keyLength);
  if (session.fleetListRequest.length !== 0) w.bytes(2, session.fleetListRequest);
  if (session.fleetListResponse.length !== 0) w.bytes(3, session.fleetListResponse);
  writeEntries(w, 4, attributes.entries);
  w.int64(5, session.ttlSeconds);
  w.int64(6, session.expiresAtMs);
  w.int64(7, session.version);
  w.int64(8, session.createdAtMs);
  return w.buf;
}

/** SetSessionResponse; RotateSessionKeyResponse has the same fields and numbers. */
export function encodeKeyVersion(reply: {
  sessionKey: string;
  expiresAtMs: number;
  version: number;
}): Buffer {
  const keyLength = Buffer.byteLength(reply.sessionKey);
  const w = new Writer(
    (keyLength === 0 ? 0 : lengthDelimitedSize(keyLength)) +
      int64Size(reply.expiresAtMs) +
      int64Size(reply.version),
    true,
  );
  if (keyLength !== 0) w.string(1, reply.sessionKey, keyLength);
  w.int64(2, reply.expiresAtMs);
  w.int64(3, reply.version);
  return w.buf;
}

export function encodeTouchSessionResponse(expiresAtMs: number): Buffer {
  const w = new Writer(int64Size(expiresAtMs), true);
  w.int64(1, expiresAtMs);
  return w.buf;
}

/** A map<string, bytes> field's entries, each with its name's byte length and its own size. */
type MapEntries = Array<[string, number, Buffer, number]>;

function sizedEntries(map: ReadonlyMap<string, Buffer>): { size: number; entries: MapEntries } {
  const entries: MapEntries = [];
  let size = 0;
  for (const [name, value] of map) {
    const nameLength = Buffer.byteLength(name);
    const entryLength = lengthDelimitedSize(nameLength) + lengthDelimitedSize(value.length);
    entries.push([name, nameLength, value, entryLength]);
    size += lengthDelimitedSize(entryLength);
  }
  return { size, entries };
}

function writeEntries(w: Writer, fieldNumber: number, entries: MapEntries): void {
  for (const [name, nameLength, value, entryLength] of entries) {
    w.tag(fieldNumber, LENGTH_DELIMITED);
    w.varint(entryLength);
    w.string(1, name, nameLength);
    w.bytes(2, value);
  }
}

/** ListSessionsResponse: one OwnedSession (field 1) per session, in the order given. */
export function encodeListSessionsResponse(sessions: readonly OwnedSession[]): Buffer {
  const sized = sessions.map((session) => {
    const handleLength = Buffer.byteLength(session.handle);
    const content = session.content;
    const attributes = content ? sizedEntries(content.attributes) : { size: 0, entries: [] };
    const size =
      (handleLength === 0 ? 0 : lengthDelimitedSize(handleLength)) +
      int64Size(session.createdAtMs) +
      int64Size(session.expiresAtMs) +
      int64Size(session.version) +
      int64Size(session.ttlSeconds) +
      int64Size(session.sizeBytes) +
      (content ? bytesSize(content.fleetListRequest) + bytesSize(content.fleetListResponse) : 0) +
      attributes.size;
    return { session, handleLength, attributes: attributes.entries, size };
  });
  let total = 0;
  for (const { size } of sized) total += lengthDelimitedSize(size);
  const w = new Writer(total, true);
  for (const { session, handleLength, attributes, size } of sized) {
    w.tag(1, LENGTH_DELIMITED);
    w.varint(size);
    if (handleLength !== 0) w.string(1, session.handle, handleLength);
    w.int64(2, session.createdAtMs);
    w.int64(3, session.expiresAtMs);
    w.int64(4, session.version);
    w.int64(5, session.ttlSeconds);
    w.int64(6, session.sizeBytes);
    const content = session.content;
    if (content?.fleetListRequest.length) w.bytes(7, content.fleetListRequest);
    if (content?.fleetListResponse.length) w.bytes(8, content.fleetListResponse);
    writeEntries(w, 9, attributes);
  }
  return w.buf;
}

export function encodeRevokeSessionsResponse(revoked: number): Buffer {
  const w = new Writer(int64Size(revoked), true);
  w.int64(1, revoked);
  return w.buf;
}

const DELETED = Buffer.from([0, 0, 0, 0, 2, 1 << 3, 1]);
const NOT_DELETED = Buffer.from([0, 0, 0, 0, 0]);

/** DeleteSessionResponse; the two possible replies are constants. */
export function encodeDeleteSessionResponse(deleted: boolean): Buffer {
  return deleted ? DELETED : NOT_DELETED;
}
