import { isUtf8 } from 'node:buffer';

/**
 * The protobuf wire format by hand, for the session messages on the lean
 * path (the server's hottest code) and the reflection service. It follows
 * proto3 as grpc-go applies it: the last occurrence of a scalar wins, unknown
 * fields are skipped, a known field sent with another wire type counts as
 * unknown, and invalid UTF-8 in a string or a truncated message is an error.
 * It knows no message: callers name their fields.
 */

export const VARINT = 0;
export const FIXED64 = 1;
export const LENGTH_DELIMITED = 2;
const START_GROUP = 3;
const END_GROUP = 4;
const FIXED32 = 5;

const TWO_32 = 4294967296;
export const EMPTY_BYTES: Buffer = Buffer.alloc(0);

/** A message that cannot be decoded. `field` names the field at fault, or is undefined for the framing. */
export class ProtobufError extends Error {
  override readonly name = 'ProtobufError';
  constructor(
    readonly field: string | undefined,
    readonly problem: string,
  ) {
    super(field === undefined ? `malformed message: ${problem}` : `${field}: ${problem}`);
  }
}

const malformed = (problem: string) => new ProtobufError(undefined, problem);

export class Reader {
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

  /** int32: the low 32 bits, signed (a negative int32 is sent as a 10-byte varint). */
  int32(): number {
    this.#varint();
    return this.#lo | 0;
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
    if (!isUtf8(value)) throw new ProtobufError(field, 'is not valid UTF-8');
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
export function readFields(
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

/** One map<string, bytes> entry into `map`; an absent key or value means the default. */
export function readStringBytesEntry(
  reader: Reader,
  field: string,
  map: Map<string, Buffer>,
): void {
  let key = '';
  let value = EMPTY_BYTES;
  readFields(reader.bytes(), (entry, number, wireType) => {
    if (wireType !== LENGTH_DELIMITED) return false;
    if (number === 1) key = entry.string(field);
    else if (number === 2) value = entry.bytes();
    else return false;
    return true;
  });
  map.set(key, value);
}

// Encoding: a message is sized first, then written into one buffer. With
// `framed`, the buffer starts with the 5-byte gRPC message prefix
// (uncompressed flag, big-endian length), so a transport writes it as it is.

/** Bytes of a varint holding a non-negative safe integer. */
export function varintSize(value: number): number {
  if (!(value >= 0 && Number.isSafeInteger(value))) {
    throw new RangeError(`cannot encode ${value} as a non-negative varint`);
  }
  let size = 1;
  for (let rest = value; rest >= 128; rest = Math.floor(rest / 128)) size++;
  return size;
}

/** A length-delimited field of `length` bytes with a one-byte tag (field numbers 1-15). */
export const lengthDelimitedSize = (length: number) => 1 + varintSize(length) + length;
/** An int64 field with a one-byte tag; 0 (the default) is omitted, a negative value takes 10 bytes. */
export const int64Size = (value: number) =>
  value === 0 ? 0 : value < 0 ? 11 : 1 + varintSize(value);
/** A bytes field with a one-byte tag; empty (the default) is omitted. */
export const bytesSize = (value: Buffer) =>
  value.length === 0 ? 0 : lengthDelimitedSize(value.length);

const PREFIX_BYTES = 5;

export class Writer {
  readonly buf: Buffer;
  pos: number;

  constructor(messageSize: number, framed: boolean) {
    if (framed) {
      this.buf = Buffer.allocUnsafe(PREFIX_BYTES + messageSize);
      this.buf[0] = 0;
      this.buf.writeUInt32BE(messageSize, 1);
      this.pos = PREFIX_BYTES;
    } else {
      this.buf = Buffer.allocUnsafe(messageSize);
      this.pos = 0;
    }
  }

  varint(value: number): void {
    let rest = value;
    while (rest >= 128) {
      this.buf[this.pos++] = (rest % 128) | 128;
      rest = Math.floor(rest / 128);
    }
    this.buf[this.pos++] = rest;
  }

  /** Field numbers 1-15: the tag fits in one byte. */
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

  /** Omitted when 0, the proto3 default. A negative value is its 64-bit two's complement. */
  int64(fieldNumber: number, value: number): void {
    if (value === 0) return;
    this.tag(fieldNumber, VARINT);
    if (value > 0) {
      this.varint(value);
      return;
    }
    // Two 32-bit halves of 2^64 + value; the varint is then always 10 bytes.
    let hi = Math.floor(value / TWO_32) >>> 0;
    let lo = (value - Math.floor(value / TWO_32) * TWO_32) >>> 0;
    for (let i = 0; i < 9; i++) {
      this.buf[this.pos++] = (lo & 0x7f) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    this.buf[this.pos++] = lo & 0x01;
  }

  bool(fieldNumber: number, value: boolean): void {
    if (!value) return;
    this.tag(fieldNumber, VARINT);
    this.buf[this.pos++] = 1;
  }
}

// Off the hot path (reflection, tests): fields encoded one by one, any field number.

function varint(value: number): Buffer {
  const bytes = Buffer.allocUnsafe(varintSize(value));
  let rest = value;
  let i = 0;
  while (rest >= 128) {
    bytes[i++] = (rest % 128) | 128;
    rest = Math.floor(rest / 128);
  }
  bytes[i] = rest;
  return bytes;
}

/** A length-delimited field (bytes, string or message), tag included. */
export const lengthDelimitedField = (fieldNumber: number, value: Buffer): Buffer =>
  Buffer.concat([varint(fieldNumber * 8 + LENGTH_DELIMITED), varint(value.length), value]);

/** A varint field (a non-negative integer or enum), tag included. */
export const varintField = (fieldNumber: number, value: number): Buffer =>
  Buffer.concat([varint(fieldNumber * 8 + VARINT), varint(value)]);
