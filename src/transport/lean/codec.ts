import { isUtf8 } from 'node:buffer';
import { invalidArgument } from '../../errors.ts';
import type { SetSessionInput, StoredSession, UpdateSessionInput } from '../../service.ts';

/**
 * The protobuf wire format of the session messages, by hand: the lean
 * transport's hottest code. It follows proto3 as grpc-go applies it: the last
 * occurrence of a scalar wins, map entries accumulate (a repeated key keeps
 * the last value), unknown fields are skipped, a known field sent with another
 * wire type counts as unknown, and invalid UTF-8 in a string or a truncated
 * message is INVALID_ARGUMENT. Field numbers are those of
 * proto/sessionmanager/v1/sessionmanager.proto.
 */

const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;

const EMPTY: Buffer = Buffer.alloc(0);
const TWO_32 = 4294967296;

const malformed = (problem: string) => invalidArgument('request', `malformed message: ${problem}`);

class Reader {
  pos = 0;
  constructor(readonly buf: Buffer) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  /** A varint of up to 64 bits as two 32-bit halves, so an int64 keeps its sign. */
  #lo = 0;
  #hi = 0;
  #varint(): void {
    const buf = this.buf;
    let lo = 0;
    let hi = 0;
    for (let i = 0; i < 10; i++) {
      const b = buf[this.pos++];
      if (b === undefined) throw malformed('truncated varint');
      if (i < 4) lo |= (b & 0x7f) << (7 * i);
      else if (i === 4) {
        lo |= (b & 0x0f) << 28;
        hi |= (b & 0x7f) >> 4;
      } else hi |= (b & 0x7f) << (7 * i - 32);
      if (b < 0x80) {
        this.#lo = lo;
        this.#hi = hi;
        return;
      }
    }
    throw malformed('varint longer than 10 bytes');
  }

  /** int64 as a JS number: exact below 2^53, signed like protobufjs' Long.toNumber. */
  int64(): number {
    this.#varint();
    return this.#hi * TWO_32 + (this.#lo >>> 0);
  }

  bool(): boolean {
    this.#varint();
    return (this.#lo | this.#hi) !== 0;
  }

  /** A tag, a length or another value that must fit in 32 bits. */
  uint32(): number {
    this.#varint();
    if (this.#hi !== 0) throw malformed('value too large');
    return this.#lo >>> 0;
  }

  bytes(): Buffer {
    const length = this.uint32();
    const end = this.pos + length;
    if (end > this.buf.length) throw malformed('truncated field');
    const value = this.buf.subarray(this.pos, end);
    this.pos = end;
    return value;
  }

  string(field: string): string {
    const value = this.bytes();
    if (!isUtf8(value)) throw invalidArgument(field, 'is not valid UTF-8');
    return value.toString('utf8');
  }

  skip(wireType: number, fieldNumber: number): void {
    switch (wireType) {
      case VARINT:
        this.#varint();
        return;
      case FIXED64:
        this.#advance(8);
        return;
      case LENGTH_DELIMITED:
        this.bytes();
        return;
      case FIXED32:
        this.#advance(4);
        return;
      case START_GROUP:
        for (;;) {
          if (this.done) throw malformed('unterminated group');
          const tag = this.uint32();
          if ((tag & 7) === END_GROUP) {
            if (tag >>> 3 !== fieldNumber) throw malformed('mismatched end group');
            return;
          }
          this.skip(tag & 7, tag >>> 3);
        }
      default:
        throw malformed(`invalid wire type ${wireType}`);
    }
  }

  #advance(count: number): void {
    if (this.pos + count > this.buf.length) throw malformed('truncated field');
    this.pos += count;
  }
}

/**
 * Calls `field` with each field's number and wire type; `field` reads the
 * value and returns true, or returns false to have it skipped as unknown.
 */
function readFields(
  buf: Buffer,
  field: (reader: Reader, fieldNumber: number, wireType: number) => boolean,
): void {
  const reader = new Reader(buf);
  while (!reader.done) {
    const tag = reader.uint32();
    const fieldNumber = tag >>> 3;
    const wireType = tag & 7;
    if (fieldNumber === 0) throw malformed('field number 0');
    if (wireType === END_GROUP) throw malformed('unexpected end group');
    if (!field(reader, fieldNumber, wireType)) reader.skip(wireType, fieldNumber);
  }
}

/** One map<string, bytes> entry into `map`; absent key or value means the default. */
function readMapEntry(reader: Reader, field: string, map: Map<string, Buffer>): void {
  let key = '';
  let value = EMPTY;
  readFields(reader.bytes(), (entry, number, wireType) => {
    if (wireType !== LENGTH_DELIMITED) return false;
    if (number === 1) key = entry.string(field);
    else if (number === 2) value = entry.bytes();
    else return false;
    return true;
  });
  map.set(key, value);
}

/** SessionData, the SetSession request. The output fields 6-8 are read and ignored. */
export function decodeSetSession(buf: Buffer): SetSessionInput {
  let sessionKey = '';
  let fleetListRequest = EMPTY;
  let fleetListResponse = EMPTY;
  let ttlSeconds = 0;
  const attributes = new Map<string, Buffer>();
  readFields(buf, (reader, number, wireType) => {
    if (wireType === LENGTH_DELIMITED) {
      if (number === 1) sessionKey = reader.string('session_key');
      else if (number === 2) fleetListRequest = reader.bytes();
      else if (number === 3) fleetListResponse = reader.bytes();
      else if (number === 4) readMapEntry(reader, 'attributes', attributes);
      else return false;
      return true;
    }
    if (wireType === VARINT && number === 5) {
      ttlSeconds = reader.int64();
      return true;
    }
    return false;
  });
  return { sessionKey, fleetListRequest, fleetListResponse, attributes, ttlSeconds };
}

export function decodeGetSession(buf: Buffer): { sessionKey: string; touch: boolean } {
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
      else if (number === 4) readMapEntry(reader, 'set_attributes', setAttributes);
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

export function decodeTouchSession(buf: Buffer): { sessionKey: string; ttlSeconds: number } {
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

/** ConsumeSessionRequest, DeleteSessionRequest and RotateSessionKeyRequest: a session_key alone. */
export function decodeSessionKey(buf: Buffer): string {
  let sessionKey = '';
  readFields(buf, (reader, number, wireType) => {
    if (number !== 1 || wireType !== LENGTH_DELIMITED) return false;
    sessionKey = reader.string('session_key');
    return true;
  });
  return sessionKey;
}

// Encoding: every response is built in one buffer that starts with the
// 5-byte gRPC message prefix (uncompressed flag, big-endian length), so the
// transport writes it as it is. Fields holding their default are omitted.

/** Bytes of a varint holding a non-negative safe integer. */
function varintSize(value: number): number {
  if (!(value >= 0 && Number.isSafeInteger(value))) {
    throw new RangeError(`cannot encode ${value} as a non-negative varint`);
  }
  let size = 1;
  for (let rest = value; rest >= 128; rest = Math.floor(rest / 128)) size++;
  return size;
}

const lengthDelimitedSize = (length: number) => 1 + varintSize(length) + length;

class Writer {
  readonly buf: Buffer;
  pos = 5;

  constructor(messageSize: number) {
    this.buf = Buffer.allocUnsafe(5 + messageSize);
    this.buf[0] = 0;
    this.buf.writeUInt32BE(messageSize, 1);
  }

  varint(value: number): void {
    let rest = value;
    while (rest >= 128) {
      this.buf[this.pos++] = (rest % 128) | 128;
      rest = Math.floor(rest / 128);
    }
    this.buf[this.pos++] = rest;
  }

  tag(fieldNumber: number, wireType: number): void {
    this.buf[this.pos++] = (fieldNumber << 3) | wireType;
  }

  bytes(fieldNumber: number, value: Buffer): void {
    this.tag(fieldNumber, LENGTH_DELIMITED);
    this.varint(value.length);
    value.copy(this.buf, this.pos);
    this.pos += value.length;
  }

  string(fieldNumber: number, value: string, byteLength: number): void {
    this.tag(fieldNumber, LENGTH_DELIMITED);
    this.varint(byteLength);
    this.pos += this.buf.write(value, this.pos, byteLength, 'utf8');
  }

  int64(fieldNumber: number, value: number): void {
    if (value === 0) return;
    this.tag(fieldNumber, VARINT);
    this.varint(value);
  }
}

const int64Size = (value: number) => (value === 0 ? 0 : 1 + varintSize(value));
const bytesSize = (value: Buffer) => (value.length === 0 ? 0 : lengthDelimitedSize(value.length));

/** SessionData, the reply of Get, Update and Consume, as one framed gRPC message. */
export function encodeSession(session: StoredSession): Buffer {
  const keyLength = Buffer.byteLength(session.sessionKey);
  const entries: Array<[string, number, Buffer, number]> = [];
  let size =
    (keyLength === 0 ? 0 : lengthDelimitedSize(keyLength)) +
    bytesSize(session.fleetListRequest) +
    bytesSize(session.fleetListResponse) +
    int64Size(session.ttlSeconds) +
    int64Size(session.expiresAtMs) +
    int64Size(session.version) +
    int64Size(session.createdAtMs);
  for (const [name, value] of session.attributes) {
    const nameLength = Buffer.byteLength(name);
    const entryLength = lengthDelimitedSize(nameLength) + lengthDelimitedSize(value.length);
    entries.push([name, nameLength, value, entryLength]);
    size += lengthDelimitedSize(entryLength);
  }
  const w = new Writer(size);
  if (keyLength !== 0) w.string(1, session.sessionKey, keyLength);
  if (session.fleetListRequest.length !== 0) w.bytes(2, session.fleetListRequest);
  if (session.fleetListResponse.length !== 0) w.bytes(3, session.fleetListResponse);
  for (const [name, nameLength, value, entryLength] of entries) {
    w.tag(4, LENGTH_DELIMITED);
    w.varint(entryLength);
    w.string(1, name, nameLength);
    w.bytes(2, value);
  }
  w.int64(5, session.ttlSeconds);
  w.int64(6, session.expiresAtMs);
  w.int64(7, session.version);
  w.int64(8, session.createdAtMs);
  return w.buf;
}

export function encodeSetSessionResponse(reply: {
  sessionKey: string;
  expiresAtMs: number;
  version: number;
}): Buffer {
  const keyLength = Buffer.byteLength(reply.sessionKey);
  const w = new Writer(
    (keyLength === 0 ? 0 : lengthDelimitedSize(keyLength)) +
      int64Size(reply.expiresAtMs) +
      int64Size(reply.version),
  );
  if (keyLength !== 0) w.string(1, reply.sessionKey, keyLength);
  w.int64(2, reply.expiresAtMs);
  w.int64(3, reply.version);
  return w.buf;
}

/** RotateSessionKeyResponse has SetSessionResponse's fields and numbers. */
export const encodeRotateSessionKeyResponse = encodeSetSessionResponse;

export function encodeTouchSessionResponse(expiresAtMs: number): Buffer {
  const w = new Writer(int64Size(expiresAtMs));
  w.int64(1, expiresAtMs);
  return w.buf;
}

const DELETED = Buffer.from([0, 0, 0, 0, 2, 1 << 3, 1]);
const NOT_DELETED = Buffer.from([0, 0, 0, 0, 0]);

/** DeleteSessionResponse; the two possible replies are constants. */
export function encodeDeleteSessionResponse(deleted: boolean): Buffer {
  return deleted ? DELETED : NOT_DELETED;
}
