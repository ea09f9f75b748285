/**
 * HPACK (RFC 7541) for the lean HTTP/2 transport: a decoder and an encoder
 * that each keep one connection's dynamic table, and a stateless encoder.
 *
 * The decoder is on every request's path, so the common case after the first
 * request of a connection (fields that are 1- or 2-byte references into the
 * dynamic table) costs an array read and no allocation: the table keeps the
 * decoded strings, in a ring so an insert or eviction moves nothing. Huffman
 * strings are decoded 4 bits at a time by a state machine built at load time
 * (as nghttp2 does), into a shared scratch buffer that becomes one latin1
 * string. HTTP/2 requires names in lowercase: an uppercase one makes the
 * request malformed, a stream error (RFC 9113 8.2.1), not a compression error.
 */

/** A malformed header block: the connection must end with COMPRESSION_ERROR. */
export class HpackError extends Error {
  override name = 'HpackError';
}

/** A well-formed header block over the size limit: the table stayed in step, only the stream fails. */
export class HeaderListTooLarge extends HpackError {
  override name = 'HeaderListTooLarge';
}

/**
 * A header block that decodes but breaks a field rule of RFC 9113 8.2: the
 * table stayed in step, only the stream fails.
 */
export class MalformedHeaderList extends HpackError {
  override name = 'MalformedHeaderList';
}

/**
 * A header list far beyond the limit (an HPACK bomb: one large table entry
 * referenced thousands of times). Decoding stops at once: the connection must
 * end, so the table need not stay in step.
 */
export class HeaderListFlood extends HpackError {
  override name = 'HeaderListFlood';
}

/** Fields that HTTP/2 forbids (RFC 9113 8.2.2); `te` is allowed with the value "trailers" only. */
const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'upgrade',
]);
/** A list this many times the limit is an attack, not a mistake. */
const FLOOD_FACTOR = 2;
const COLON = 0x3a;

function hasUppercase(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code >= 0x41 && code <= 0x5a) return true;
  }
  return false;
}

type Latin1Buffer = Buffer & {
  latin1Slice(start: number, end: number): string;
  latin1Write(text: string, offset: number, length: number): number;
};

/** RFC 7541 Appendix A: index 1 to 61. */
const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''],
  [':method', 'GET'],
  [':method', 'POST'],
  [':path', '/'],
  [':path', '/index.html'],
  [':scheme', 'http'],
  [':scheme', 'https'],
  [':status', '200'],
  [':status', '204'],
  [':status', '206'],
  [':status', '304'],
  [':status', '400'],
  [':status', '404'],
  [':status', '500'],
  ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'],
  ['accept-language', ''],
  ['accept-ranges', ''],
  ['accept', ''],
  ['access-control-allow-origin', ''],
  ['age', ''],
  ['allow', ''],
  ['authorization', ''],
  ['cache-control', ''],
  ['content-disposition', ''],
  ['content-encoding', ''],
  ['content-language', ''],
  ['content-length', ''],
  ['content-location', ''],
  ['content-range', ''],
  ['content-type', ''],
  ['cookie', ''],
  ['date', ''],
  ['etag', ''],
  ['expect', ''],
  ['expires', ''],
  ['from', ''],
  ['host', ''],
  ['if-match', ''],
  ['if-modified-since', ''],
  ['if-none-match', ''],
  ['if-range', ''],
  ['if-unmodified-since', ''],
  ['last-modified', ''],
  ['link', ''],
  ['location', ''],
  ['max-forwards', ''],
  ['proxy-authenticate', ''],
  ['proxy-authorization', ''],
  ['range', ''],
  ['referer', ''],
  ['refresh', ''],
  ['retry-after', ''],
  ['server', ''],
  ['set-cookie', ''],
  ['strict-transport-security', ''],
  ['transfer-encoding', ''],
  ['user-agent', ''],
  ['vary', ''],
  ['via', ''],
  ['www-authenticate', ''],
];

/** RFC 7541 Appendix B: the code of each octet and of EOS (256), and its length in bits. */
const HUFFMAN_CODES = [
  0x1ff8, 0x7fffd8, 0xfffffe2, 0xfffffe3, 0xfffffe4, 0xfffffe5, 0xfffffe6, 0xfffffe7, 0xfffffe8,
  0xffffea, 0x3ffffffc, 0xfffffe9, 0xfffffea, 0x3ffffffd, 0xfffffeb, 0xfffffec, 0xfffffed,
  0xfffffee, 0xfffffef, 0xffffff0, 0xffffff1, 0xffffff2, 0x3ffffffe, 0xffffff3, 0xffffff4,
  0xffffff5, 0xffffff6, 0xffffff7, 0xffffff8, 0xffffff9, 0xffffffa, 0xffffffb, 0x14, 0x3f8, 0x3f9,
  0xffa, 0x1ff9, 0x15, 0xf8, 0x7fa, 0x3fa, 0x3fb, 0xf9, 0x7fb, 0xfa, 0x16, 0x17, 0x18, 0x0, 0x1,
  0x2, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x5c, 0xfb, 0x7ffc, 0x20, 0xffb, 0x3fc, 0x1ffa,
  0x21, 0x5d, 0x5e, 0x5f, 0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b,
  0x6c, 0x6d, 0x6e, 0x6f, 0x70, 0x71, 0x72, 0xfc, 0x73, 0xfd, 0x1ffb, 0x7fff0, 0x1ffc, 0x3ffc, 0x22,
  0x7ffd, 0x3, 0x23, 0x4, 0x24, 0x5, 0x25, 0x26, 0x27, 0x6, 0x74, 0x75, 0x28, 0x29, 0x2a, 0x7, 0x2b,
  0x76, 0x2c, 0x8, 0x9, 0x2d, 0x77, 0x78, 0x79, 0x7a, 0x7b, 0x7ffe, 0x7fc, 0x3ffd, 0x1ffd,
  0xffffffc, 0xfffe6, 0x3fffd2, 0xfffe7, 0xfffe8, 0x3fffd3, 0x3fffd4, 0x3fffd5, 0x7fffd9, 0x3fffd6,
  0x7fffda, 0x7fffdb, 0x7fffdc, 0x7fffdd, 0x7fffde, 0xffffeb, 0x7fffdf, 0xffffec, 0xffffed,
  0x3fffd7, 0x7fffe0, 0xffffee, 0x7fffe1, 0x7fffe2, 0x7fffe3, 0x7fffe4, 0x1fffdc, 0x3fffd8,
  0x7fffe5, 0x3fffd9, 0x7fffe6, 0x7fffe7, 0xffffef, 0x3fffda, 0x1fffdd, 0xfffe9, 0x3fffdb, 0x3fffdc,
  0x7fffe8, 0x7fffe9, 0x1fffde, 0x7fffea, 0x3fffdd, 0x3fffde, 0xfffff0, 0x1fffdf, 0x3fffdf,
  0x7fffeb, 0x7fffec, 0x1fffe0, 0x1fffe1, 0x3fffe0, 0x1fffe2, 0x7fffed, 0x3fffe1, 0x7fffee,
  0x7fffef, 0xfffea, 0x3fffe2, 0x3fffe3, 0x3fffe4, 0x7ffff0, 0x3fffe5, 0x3fffe6, 0x7ffff1,
  0x3ffffe0, 0x3ffffe1, 0xfffeb, 0x7fff1, 0x3fffe7, 0x7ffff2, 0x3fffe8, 0x1ffffec, 0x3ffffe2,
  0x3ffffe3, 0x3ffffe4, 0x7ffffde, 0x7ffffdf, 0x3ffffe5, 0xfffff1, 0x1ffffed, 0x7fff2, 0x1fffe3,
  0x3ffffe6, 0x7ffffe0, 0x7ffffe1, 0x3ffffe7, 0x7ffffe2, 0xfffff2, 0x1fffe4, 0x1fffe5, 0x3ffffe8,
  0x3ffffe9, 0xffffffd, 0x7ffffe3, 0x7ffffe4, 0x7ffffe5, 0xfffec, 0xfffff3, 0xfffed, 0x1fffe6,
  0x3fffe9, 0x1fffe7, 0x1fffe8, 0x7ffff3, 0x3fffea, 0x3fffeb, 0x1ffffee, 0x1ffffef, 0xfffff4,
  0xfffff5, 0x3ffffea, 0x7ffff4, 0x3ffffeb, 0x7ffffe6, 0x3ffffec, 0x3ffffed, 0x7ffffe7, 0x7ffffe8,
  0x7ffffe9, 0x7ffffea, 0x7ffffeb, 0xffffffe, 0x7ffffec, 0x7ffffed, 0x7ffffee, 0x7ffffef, 0x7fffff0,
  0x3ffffee, 0x3fffffff,
];
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28,
  28, 28, 28, 28, 28, 28, 28, 28, 6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5,
  6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10, 13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
  7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6, 15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6,
  7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28, 20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23,
  23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24, 22, 21, 20, 22,
  22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22,
  23, 22, 22, 23, 26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27,
  27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27, 20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25,
  24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26, 30,
];

const STATIC_COUNT = STATIC_TABLE.length;
// Index 0 is invalid; it is checked before either array is read.
const STATIC_NAMES = ['', ...STATIC_TABLE.map(([name]) => name)];
const STATIC_VALUES = ['', ...STATIC_TABLE.map(([, value]) => value)];
const STATIC_NAME_INDEX = new Map<string, number>();
for (let i = STATIC_COUNT; i >= 1; i--) STATIC_NAME_INDEX.set(STATIC_NAMES[i] as string, i);

/** RFC 7541 4.1: every entry counts 32 octets beyond its name and value. */
const ENTRY_OVERHEAD = 32;
/** Far above any real header block; a larger integer is an attack or garbage. */
const MAX_INT = 2 ** 31 - 1;

// The Huffman state machine. A state is an internal node of the code tree
// (257 leaves make exactly 256 of them, the root being 0); an entry, for a
// state and the next 4 bits, holds the state reached, the octet completed on
// the way if any (every code is at least 5 bits, so at most one), whether the
// string may end there, and whether it walked into EOS.
const EMIT = 1 << 16;
const ACCEPT = 1 << 17;
const FAIL = 1 << 18;
const HUFFMAN = ((): Uint32Array => {
  // child[2 * node + bit]: an internal node (> 0), or a leaf as -1 - symbol.
  const child = new Int32Array(512);
  let nodes = 1;
  for (let symbol = 0; symbol < HUFFMAN_CODES.length; symbol++) {
    const code = HUFFMAN_CODES[symbol] as number;
    const length = HUFFMAN_LENGTHS[symbol] as number;
    let node = 0;
    for (let bit = length - 1; bit > 0; bit--) {
      const slot = 2 * node + ((code >>> bit) & 1);
      if (child[slot] === 0) child[slot] = nodes++;
      node = child[slot] as number;
    }
    child[2 * node + (code & 1)] = -1 - symbol;
  }
  // A string may end at the root or after up to 7 one bits (RFC 7541 5.2): the
  // padding is a prefix of EOS, shorter than an octet.
  const accepting = new Uint8Array(256);
  accepting[0] = 1;
  for (let node = 0, depth = 1; depth <= 7; depth++) {
    node = child[2 * node + 1] as number;
    accepting[node] = 1;
  }
  const table = new Uint32Array(256 * 16);
  for (let state = 0; state < 256; state++) {
    for (let nibble = 0; nibble < 16; nibble++) {
      let node = state;
      let entry = 0;
      for (let bit = 3; bit >= 0; bit--) {
        const next = child[2 * node + ((nibble >> bit) & 1)] as number;
        if (next >= 0) {
          node = next;
        } else if (next === -1 - 256) {
          entry = FAIL;
          break;
        } else {
          entry = EMIT | ((-1 - next) << 8);
          node = 0;
        }
      }
      table[state * 16 + nibble] = entry | node | (accepting[node] ? ACCEPT : 0);
    }
  }
  return table;
})();

// Decoding is synchronous, so one buffer serves every decoder. Every code is at
// least 5 bits: a string decodes to fewer than 2 octets per input octet.
let scratch = Buffer.allocUnsafe(1024) as Latin1Buffer;

function huffmanDecode(buf: Buffer, start: number, stop: number): string {
  if (scratch.length < 2 * (stop - start)) {
    scratch = Buffer.allocUnsafe(2 * (stop - start)) as Latin1Buffer;
  }
  const out = scratch;
  let n = 0;
  let entry = ACCEPT;
  let seen = 0;
  for (let i = start; i < stop; i++) {
    const octet = buf[i] as number;
    entry = HUFFMAN[((entry & 0xff) << 4) | (octet >> 4)] as number;
    seen |= entry;
    if (entry & EMIT) out[n++] = (entry >> 8) & 0xff;
    entry = HUFFMAN[((entry & 0xff) << 4) | (octet & 0x0f)] as number;
    seen |= entry;
    if (entry & EMIT) out[n++] = (entry >> 8) & 0xff;
  }
  if (seen & FAIL) throw new HpackError('Huffman string contains EOS');
  if (!(entry & ACCEPT)) throw new HpackError('Huffman string has invalid padding');
  return out.latin1Slice(0, n);
}

// The position after the last readInt or readString, so they need return no pair.
let cursor = 0;

/** The rest of an integer whose prefix was all ones (RFC 7541 5.1). */
function readInt(buf: Buffer, pos: number, value: number): number {
  for (let scale = 1; ; scale *= 128) {
    if (pos >= buf.length) throw new HpackError('truncated integer');
    const octet = buf[pos++] as number;
    value += (octet & 0x7f) * scale;
    // Five continuation octets hold 35 bits; more is padding of no use but to stall us.
    if (value > MAX_INT || (octet & 0x80 && scale === 2 ** 28)) {
      throw new HpackError('integer overflow');
    }
    if (!(octet & 0x80)) break;
  }
  cursor = pos;
  return value;
}

function readString(buf: Buffer, pos: number): string {
  if (pos >= buf.length) throw new HpackError('truncated string');
  const first = buf[pos++] as number;
  let length = first & 0x7f;
  if (length === 0x7f) {
    length = readInt(buf, pos, length);
    pos = cursor;
  }
  const stop = pos + length;
  if (stop > buf.length) throw new HpackError('truncated string');
  cursor = stop;
  return first & 0x80
    ? huffmanDecode(buf, pos, stop)
    : (buf as Latin1Buffer).latin1Slice(pos, stop);
}

/** Decodes the header blocks of one connection, in order (it keeps the dynamic table). */
export class HpackDecoder {
  readonly #limit: number;
  /** The table size the peer's encoder chose, at most #limit (RFC 7541 4.2). */
  #max: number;
  #size = 0;
  #count = 0;
  /** The slot of the newest entry; older ones precede it, wrapping around. */
  #newest = 0;
  readonly #names: string[];
  readonly #values: string[];
  /** Entries whose name has an uppercase letter: while none, lookups need no check. */
  #uppercaseNames = 0;
  /** How many pseudo-header fields the last block held (they are unique and come first). */
  pseudoCount = 0;

  /** maxTableSize: the SETTINGS_HEADER_TABLE_SIZE we advertise (4096). */
  constructor(maxTableSize = 4096) {
    this.#limit = this.#max = maxTableSize;
    const slots = Math.max(1, Math.floor(maxTableSize / ENTRY_OVERHEAD));
    this.#names = new Array<string>(slots).fill('');
    this.#values = new Array<string>(slots).fill('');
  }

  /**
   * Decodes one complete header block (HEADERS + CONTINUATION payloads joined).
   * Returns a null-prototype object from name to value; a name seen twice gets
   * its values joined with ', '. Throws HpackError on malformed input: a
   * dynamic-table size update above maxTableSize or not at the start of the
   * block, an index out of range, bad Huffman (padding longer than 7 bits or
   * not all ones, EOS), an integer above 2^31 - 1, a truncated block; and when
   * the header list size (RFC 7540 6.5.2) exceeds maxListSize it throws
   * HeaderListTooLarge, and when a name has an uppercase letter
   * MalformedHeaderList, both only after decoding the whole block, so the
   * dynamic table stays in step with the peer's and the connection goes on
   * without the stream. MalformedHeaderList also covers the other field rules
   * of RFC 9113 8.2 that hold in every block: pseudo-header fields first and
   * each at most once, no connection-specific field, `te` only "trailers".
   * A list over FLOOD_FACTOR times the limit throws HeaderListFlood at once.
   */
  decode(block: Buffer, maxListSize: number): Record<string, string> {
    // The same null prototype as Object.create(null), whose object V8 keeps in
    // dictionary mode; this one keeps fast properties: a third off a decode.
    const headers: Record<string, string> = Object.setPrototypeOf({}, null);
    const end = block.length;
    let pos = 0;
    let listSize = 0;
    let uppercase = false;
    let malformed: string | undefined;
    let pseudoCount = 0;
    let regularSeen = false;
    const floodSize = FLOOD_FACTOR * maxListSize;
    while (pos < end) {
      const first = block[pos++] as number;
      let name: string;
      let value: string;
      if (first & 0x80) {
        // Indexed field: the hot path once the peer's table is warm.
        let index = first & 0x7f;
        if (index === 0x7f) {
          index = readInt(block, pos, index);
          pos = cursor;
        }
        if (index > STATIC_COUNT) {
          const slot = this.#slot(index);
          name = this.#names[slot] as string;
          value = this.#values[slot] as string;
          if (this.#uppercaseNames > 0 && hasUppercase(name)) uppercase = true;
        } else if (index !== 0) {
          name = STATIC_NAMES[index] as string;
          value = STATIC_VALUES[index] as string;
        } else {
          throw new HpackError('index 0');
        }
      } else if ((first & 0xe0) === 0x20) {
        // A size update may only precede the fields (RFC 7541 4.2).
        if (listSize !== 0) throw new HpackError('table size update after a field');
        let size = first & 0x1f;
        if (size === 0x1f) {
          size = readInt(block, pos, size);
          pos = cursor;
        }
        if (size > this.#limit) throw new HpackError(`table size ${size} above ${this.#limit}`);
        this.#max = size;
        while (this.#size > size) this.#evict();
        continue;
      } else {
        // A literal, with incremental indexing (01) or without (0000, never 0001).
        const mask = first & 0x40 ? 0x3f : 0x0f;
        let index = first & mask;
        if (index === mask) {
          index = readInt(block, pos, index);
          pos = cursor;
        }
        if (index === 0) {
          name = readString(block, pos);
          pos = cursor;
          if (hasUppercase(name)) uppercase = true;
        } else if (index > STATIC_COUNT) {
          name = this.#names[this.#slot(index)] as string;
          if (this.#uppercaseNames > 0 && hasUppercase(name)) uppercase = true;
        } else {
          name = STATIC_NAMES[index] as string;
        }
        value = readString(block, pos);
        pos = cursor;
        if (mask === 0x3f) this.#insert(name, value);
      }
      listSize += name.length + value.length + ENTRY_OVERHEAD;
      if (listSize > maxListSize) {
        if (listSize > floodSize) throw new HeaderListFlood(`header list over ${floodSize}`);
        continue;
      }
      const previous = headers[name];
      if (name.charCodeAt(0) === COLON) {
        pseudoCount++;
        if (regularSeen) malformed ??= `pseudo-header ${name} after a regular field`;
        if (previous !== undefined) malformed ??= `pseudo-header ${name} repeated`;
      } else {
        regularSeen = true;
        if (CONNECTION_SPECIFIC.has(name)) malformed ??= `connection-specific field ${name}`;
        else if (name === 'te' && value !== 'trailers') malformed ??= 'te other than "trailers"';
      }
      headers[name] = previous === undefined ? value : `${previous}, ${value}`;
    }
    this.pseudoCount = pseudoCount;
    if (listSize > maxListSize) {
      throw new HeaderListTooLarge(`header list size ${listSize} above ${maxListSize}`);
    }
    if (uppercase) throw new MalformedHeaderList('a header name has an uppercase letter');
    if (malformed !== undefined) throw new MalformedHeaderList(malformed);
    return headers;
  }

  /** The ring slot of a dynamic-table index (62 is the newest entry). */
  #slot(index: number): number {
    const age = index - STATIC_COUNT - 1;
    if (age >= this.#count) throw new HpackError(`index ${index} beyond the dynamic table`);
    const slot = this.#newest - age;
    return slot < 0 ? slot + this.#names.length : slot;
  }

  #insert(name: string, value: string): void {
    const size = name.length + value.length + ENTRY_OVERHEAD;
    // An entry larger than the table empties it and is not added (RFC 7541 4.4).
    while (this.#count > 0 && this.#size + size > this.#max) this.#evict();
    if (size > this.#max) return;
    this.#newest = this.#newest + 1 === this.#names.length ? 0 : this.#newest + 1;
    this.#names[this.#newest] = name;
    this.#values[this.#newest] = value;
    if (hasUppercase(name)) this.#uppercaseNames++;
    this.#count++;
    this.#size += size;
  }

  #evict(): void {
    let oldest = this.#newest - this.#count + 1;
    if (oldest < 0) oldest += this.#names.length;
    const name = this.#names[oldest] as string;
    this.#size -= name.length + (this.#values[oldest] as string).length + ENTRY_OVERHEAD;
    if (hasUppercase(name)) this.#uppercaseNames--;
    this.#count--;
  }
}

export type HeaderFields = ReadonlyArray<readonly [string, string]>;

/**
 * Encodes a header list statelessly: each field a literal without indexing
 * (with the static-table index of its name where there is one), strings as
 * raw latin1 octets; ':status' 200 is the one-octet 0x88. For tests and for
 * blocks that must not touch a connection's table. Names must already be
 * lowercase, and values latin1 (gRPC's are ASCII).
 */
export function encodeHeaders(fields: HeaderFields): Buffer {
  const out = Buffer.allocUnsafe(literalBound(fields)) as Latin1Buffer;
  let pos = 0;
  for (const [name, value] of fields) pos = writeField(out, pos, name, value);
  return out.subarray(0, pos);
}

/** What a field list may take as literals: each integer at most 5 octets. */
function literalBound(fields: HeaderFields): number {
  let bound = 0;
  for (const [name, value] of fields) bound += name.length + value.length + 11;
  return bound;
}

/** One field as a literal without indexing, or :status 200 from the static table. */
function writeField(out: Latin1Buffer, pos: number, name: string, value: string): number {
  if (name === ':status' && value === '200') {
    out[pos++] = 0x88;
    return pos;
  }
  const index = STATIC_NAME_INDEX.get(name);
  if (index === undefined) {
    out[pos++] = 0;
    pos = writeString(out, pos, name);
  } else {
    pos = writeInt(out, pos, index, 0x0f);
  }
  return writeString(out, pos, value);
}

/**
 * One connection's encoder (RFC 7541), for the blocks a peer's decoder reads
 * in order. Fields whose name is in `indexedNames` (the ones that repeat
 * reply after reply, such as content-type and grpc-status) enter the peer's
 * dynamic table the first time and are one-octet references after that;
 * every other field is a literal without indexing, so per-call values (a
 * request id, a status message) never churn the table. The table follows the
 * peer's SETTINGS_HEADER_TABLE_SIZE, and a change is announced at the start
 * of the next block (RFC 7541 4.2), which decoders built on nghttp2 require.
 *
 * Most blocks a server sends are the same few constant lists, so a block is
 * remembered per list (by identity) until the table changes.
 */
export class HpackEncoder {
  readonly #indexedNames: ReadonlySet<string>;
  /** The most this encoder will use of the peer's table. */
  readonly #ceiling: number;
  #max: number;
  #size = 0;
  /** Entries oldest first; `#first` is the insertion number of entries[0]. */
  #entries: Array<{ readonly key: string; readonly size: number }> = [];
  #first = 0;
  /** Insertion number of each entry by name and value. */
  readonly #numbers = new Map<string, number>();
  /** Size updates owed to the peer: the smallest since the last block, then the final one. */
  #smallestUpdate = -1;
  #finalUpdate = -1;
  /** Bumped on every change of the table; remembered blocks of an older epoch are stale. */
  #epoch = 0;
  readonly #remembered = new Map<HeaderFields, { epoch: number; block: Buffer }>();

  constructor(indexedNames: Iterable<string>, ceiling = 4096) {
    this.#indexedNames = new Set(indexedNames);
    this.#ceiling = ceiling;
    this.#max = ceiling;
  }

  /** The peer's SETTINGS_HEADER_TABLE_SIZE. */
  setPeerTableSize(size: number): void {
    const max = Math.min(size, this.#ceiling);
    if (max === this.#max) return;
    this.#max = max;
    this.#smallestUpdate = this.#smallestUpdate < 0 ? max : Math.min(this.#smallestUpdate, max);
    this.#finalUpdate = max;
    while (this.#size > max) this.#evict();
    this.#epoch++;
  }

  /** The block for `fields`, which the peer must decode next of all blocks. */
  encode(fields: HeaderFields): Buffer {
    return this.#encode(fields);
  }

  /**
   * Like encode, for a list that never changes (it is remembered by
   * identity): while the table stays as it was, the same block is reused.
   */
  encodeConstant(fields: HeaderFields): Buffer {
    const remembered = this.#remembered.get(fields);
    if (remembered !== undefined && remembered.epoch === this.#epoch) return remembered.block;
    const before = this.#epoch;
    const block = this.#encode(fields);
    // A block that changed the table (an insertion, a size update) must not be sent twice.
    if (this.#epoch === before) this.#remembered.set(fields, { epoch: before, block });
    return block;
  }

  #encode(fields: HeaderFields): Buffer {
    // Two size updates of at most 5 octets each, then the fields.
    const out = Buffer.allocUnsafe(literalBound(fields) + 12) as Latin1Buffer;
    let pos = 0;
    if (this.#finalUpdate >= 0) {
      if (this.#smallestUpdate < this.#finalUpdate) {
        pos = writeInt(out, pos, this.#smallestUpdate, 0x1f, 0x20);
      }
      pos = writeInt(out, pos, this.#finalUpdate, 0x1f, 0x20);
      this.#smallestUpdate = this.#finalUpdate = -1;
      this.#epoch++;
    }
    for (const [name, value] of fields) {
      if (!this.#indexedNames.has(name)) {
        pos = writeField(out, pos, name, value);
        continue;
      }
      const key = `${name}\0${value}`;
      const number = this.#numbers.get(key);
      if (number !== undefined) {
        const newest = this.#first + this.#entries.length - 1;
        pos = writeInt(out, pos, STATIC_COUNT + 1 + newest - number, 0x7f, 0x80);
        continue;
      }
      // A literal with incremental indexing, by static name index where there is one.
      const index = STATIC_NAME_INDEX.get(name);
      if (index === undefined) {
        out[pos++] = 0x40;
        pos = writeString(out, pos, name);
      } else {
        pos = writeInt(out, pos, index, 0x3f, 0x40);
      }
      pos = writeString(out, pos, value);
      this.#insert(key, name.length + value.length + ENTRY_OVERHEAD);
    }
    return out.subarray(0, pos);
  }

  #insert(key: string, size: number): void {
    this.#epoch++;
    // An entry larger than the table empties it and is not added (RFC 7541 4.4).
    while (this.#entries.length > 0 && this.#size + size > this.#max) this.#evict();
    if (size > this.#max) return;
    this.#numbers.set(key, this.#first + this.#entries.length);
    this.#entries.push({ key, size });
    this.#size += size;
  }

  #evict(): void {
    const oldest = this.#entries.shift();
    if (oldest === undefined) return;
    this.#numbers.delete(oldest.key);
    this.#first++;
    this.#size -= oldest.size;
    this.#epoch++;
  }
}

/** An integer with an n-bit prefix (mask = 2^n - 1) after the pattern bits `high`. */
function writeInt(out: Buffer, pos: number, value: number, mask: number, high = 0): number {
  if (value < mask) {
    out[pos++] = high | value;
    return pos;
  }
  out[pos++] = high | mask;
  for (value -= mask; value >= 0x80; value >>>= 7) out[pos++] = (value & 0x7f) | 0x80;
  out[pos++] = value;
  return pos;
}

function writeString(out: Latin1Buffer, pos: number, text: string): number {
  pos = writeInt(out, pos, text.length, 0x7f);
  return pos + out.latin1Write(text, pos, text.length);
}
