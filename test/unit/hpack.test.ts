import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { once } from 'node:events';
import { connect, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { type AddressInfo, createServer, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { Client, credentials, Metadata } from '@grpc/grpc-js';
import fc from 'fast-check';
import {
  encodeHeaders,
  HeaderListFlood,
  HeaderListTooLarge,
  HpackDecoder,
  HpackEncoder,
  HpackError,
  MalformedHeaderList,
} from '../../src/wire/http2/hpack.ts';
import { h2Frame as frame } from '../support/wire.ts';

// The HPACK decoder against the RFC 7541 Appendix C examples (the hex as in
// Go's x/net/http2/hpack tests), against the header blocks node:http2 and
// grpc-js really send, and against malformed and random input; the encoder
// through the decoder and through a node:http2 client.

const hex = (text: string) => Buffer.from(text.replace(/\s/g, ''), 'hex');

/** The RFC 7541 5.1 integer with a prefix of `bits` bits, the other prefix bits being `flags`. */
function int(value: number, bits: number, flags = 0): number[] {
  const mask = 2 ** bits - 1;
  if (value < mask) return [flags | value];
  const out = [flags | mask];
  for (value -= mask; value >= 128; value = Math.floor(value / 128)) out.push((value % 128) | 128);
  out.push(value);
  return out;
}
const raw = (text: string) => [...int(text.length, 7), ...Buffer.from(text, 'latin1')];
const huffman = (octets: number[]) => [...int(octets.length, 7, 0x80), ...octets];
/** A literal without indexing, name 'a', its value given as a string literal's octets. */
const withValue = (value: number[]) => Buffer.from([0x00, ...raw('a'), ...value]);

/** Expected headers, as the decoder returns them. */
function headers(...fields: [string, string][]): Record<string, string> {
  const out: Record<string, string> = Object.create(null);
  for (const [name, value] of fields) {
    const previous = out[name];
    out[name] = previous === undefined ? value : `${previous}, ${value}`;
  }
  return out;
}

/** The dynamic table, newest first, read through indexed fields (which leave it unchanged). */
function table(decoder: HpackDecoder): [string, string][] {
  const entries: [string, string][] = [];
  for (let index = 62; ; index++) {
    let decoded: Record<string, string>;
    try {
      decoded = decoder.decode(Buffer.from(int(index, 7, 0x80)), Infinity);
    } catch (error) {
      assert.ok(error instanceof HpackError);
      return entries;
    }
    entries.push(...Object.entries(decoded));
  }
}
const tableSize = (entries: [string, string][]) =>
  entries.reduce((sum, [name, value]) => sum + name.length + value.length + 32, 0);

type Step = [block: string, want: [string, string][], wantTable: [string, string][], size: number];

function series(maxTableSize: number, steps: Step[]): void {
  const decoder = new HpackDecoder(maxTableSize);
  for (const [block, want, wantTable, size] of steps) {
    assert.deepEqual(decoder.decode(hex(block), Infinity), headers(...want));
    const entries = table(decoder);
    assert.deepEqual(entries, wantTable);
    assert.equal(tableSize(entries), size);
  }
}

const REQUEST_1: [string, string][] = [
  [':method', 'GET'],
  [':scheme', 'http'],
  [':path', '/'],
  [':authority', 'www.example.com'],
];
const REQUEST_2: [string, string][] = [...REQUEST_1, ['cache-control', 'no-cache']];
const REQUEST_3: [string, string][] = [
  [':method', 'GET'],
  [':scheme', 'https'],
  [':path', '/index.html'],
  [':authority', 'www.example.com'],
  ['custom-key', 'custom-value'],
];
const TABLE_3: [string, string][] = [
  ['custom-key', 'custom-value'],
  ['cache-control', 'no-cache'],
  [':authority', 'www.example.com'],
];
const RESPONSE_1: [string, string][] = [
  [':status', '302'],
  ['cache-control', 'private'],
  ['date', 'Mon, 21 Oct 2013 20:13:21 GMT'],
  ['location', 'https://www.example.com'],
];
const RESPONSE_2: [string, string][] = [[':status', '307'], ...RESPONSE_1.slice(1)];
const RESPONSE_3: [string, string][] = [
  [':status', '200'],
  ['cache-control', 'private'],
  ['date', 'Mon, 21 Oct 2013 20:13:22 GMT'],
  ['location', 'https://www.example.com'],
  ['content-encoding', 'gzip'],
  ['set-cookie', 'foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1'],
];
const RESPONSE_TABLE_1 = [...RESPONSE_1].reverse();
const RESPONSE_TABLE_2: [string, string][] = [[':status', '307'], ...RESPONSE_TABLE_1.slice(0, 3)];
const RESPONSE_TABLE_3 = [RESPONSE_3[5], RESPONSE_3[4], RESPONSE_3[2]] as [string, string][];

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  it('C.2: the field representations', () => {
    const custom: [string, string] = ['custom-key', 'custom-header'];
    series(4096, [
      ['400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572', [custom], [custom], 55],
    ]);
    series(4096, [['040c 2f73 616d 706c 652f 7061 7468', [[':path', '/sample/path']], [], 0]]);
    series(4096, [['1008 7061 7373 776f 7264 0673 6563 7265 74', [['password', 'secret']], [], 0]]);
    series(4096, [['82', [[':method', 'GET']], [], 0]]);
  });

  it('C.3: requests without Huffman coding, on one dynamic table', () => {
    series(4096, [
      [
        '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
        REQUEST_1,
        [REQUEST_1[3] as [string, string]],
        57,
      ],
      ['8286 84be 5808 6e6f 2d63 6163 6865', REQUEST_2, TABLE_3.slice(1), 110],
      [
        '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
        REQUEST_3,
        TABLE_3,
        164,
      ],
    ]);
  });

  it('C.4: requests with Huffman coding', () => {
    series(4096, [
      [
        '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
        REQUEST_1,
        [REQUEST_1[3] as [string, string]],
        57,
      ],
      ['8286 84be 5886 a8eb 1064 9cbf', REQUEST_2, TABLE_3.slice(1), 110],
      ['8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf', REQUEST_3, TABLE_3, 164],
    ]);
  });

  it('C.5: responses without Huffman coding, with evictions from a 256-octet table', () => {
    series(256, [
      [
        `4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133
         2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70
         6c65 2e63 6f6d`,
        RESPONSE_1,
        RESPONSE_TABLE_1,
        222,
      ],
      ['4803 3330 37c1 c0bf', RESPONSE_2, RESPONSE_TABLE_2, 222],
      [
        `88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d
         54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049
         5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e
         3d31`,
        RESPONSE_3,
        RESPONSE_TABLE_3,
        215,
      ],
    ]);
  });

  it('C.6: responses with Huffman coding, with evictions from a 256-octet table', () => {
    series(256, [
      [
        `4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6
         2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3`,
        RESPONSE_1,
        RESPONSE_TABLE_1,
        222,
      ],
      ['4883 640e ffc1 c0bf', RESPONSE_2, RESPONSE_TABLE_2, 222],
      [
        `88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab
         77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f
         9587 3160 65c0 03ed 4ee5 b106 3d50 07`,
        RESPONSE_3,
        RESPONSE_TABLE_3,
        215,
      ],
    ]);
  });
});

describe('HPACK decoder: header lists', () => {
  it('joins repeated names, and __proto__ and constructor are ordinary names', () => {
    const block = Buffer.from([
      ...[0x00, ...raw('__proto__'), ...raw('x')],
      ...[0x00, ...raw('constructor'), ...raw('y')],
      ...[0x40, ...raw('x-dup'), ...raw('1')],
      0xbe,
      ...[0x10, ...raw('x-dup'), ...raw('3')],
    ]);
    const decoded = new HpackDecoder().decode(block, Infinity);
    assert.equal(Object.getPrototypeOf(decoded), null);
    assert.deepEqual(
      decoded,
      headers(
        ['__proto__', 'x'],
        ['constructor', 'y'],
        ['x-dup', '1'],
        ['x-dup', '1'],
        ['x-dup', '3'],
      ),
    );
    assert.equal(Object.hasOwn(decoded, '__proto__'), true);
  });

  it('decodes long strings, large indexes and the last static entry', () => {
    const long = 'v'.repeat(5000);
    const decoder = new HpackDecoder(65536);
    const inserts = Array.from({ length: 70 }, (_, i) => [
      0x40,
      ...raw(`n${i}`),
      ...raw('v'),
    ]).flat();
    // Index 128 (0xff 0x01) is the 67th entry from the newest, after x-long and n69 to n5: n4.
    const block = Buffer.from([0xbd, ...inserts, 0x40, ...raw('x-long'), ...raw(long), 0xff, 0x01]);
    const decoded = decoder.decode(block, Infinity);
    assert.equal(decoded['www-authenticate'], '');
    assert.equal(decoded['x-long'], long);
    assert.equal(decoded.n4, 'v, v');
    // An empty Huffman string is valid.
    assert.deepEqual(decoder.decode(withValue(huffman([])), Infinity), headers(['a', '']));
  });

  it('keeps the newest entries that fit as the table fills many times over', () => {
    const decoder = new HpackDecoder();
    const entries: [string, string][] = [];
    for (let i = 0; i < 1000; i++) {
      const entry: [string, string] = [`k${i}`, 'v'.repeat(i % 50)];
      entries.unshift(entry);
      decoder.decode(Buffer.from([0x40, ...raw(entry[0]), ...raw(entry[1])]), Infinity);
    }
    // Eviction takes the oldest first, so the table is the longest run of newest entries that fits.
    let size = 0;
    let fit = 0;
    for (const [name, value] of entries) {
      size += name.length + value.length + 32;
      if (size > 4096) break;
      fit++;
    }
    assert.deepEqual(table(decoder), entries.slice(0, fit));
  });

  it('throws for a list above maxListSize only after decoding the block, keeping the table in step', () => {
    const decoder = new HpackDecoder();
    const block = Buffer.from([0x40, ...raw('a'), ...raw('1'), 0x40, ...raw('b'), ...raw('2')]);
    assert.deepEqual(new HpackDecoder().decode(block, 68), headers(['a', '1'], ['b', '2']));
    assert.throws(
      () => decoder.decode(block, 67),
      (error: unknown) => {
        assert.ok(error instanceof HeaderListTooLarge);
        assert.ok(
          error instanceof HpackError,
          'still an HpackError for callers that do not tell them apart',
        );
        assert.match(error.message, /list size 68 above 67/);
        return true;
      },
    );
    assert.deepEqual(table(decoder), [
      ['b', '2'],
      ['a', '1'],
    ]);
  });

  it('an uppercase name, sent or referenced, is MalformedHeaderList after the whole block', () => {
    const decoder = new HpackDecoder();
    const lower = Buffer.from([0x40, ...raw('a'), ...raw('1')]);
    assert.deepEqual(decoder.decode(lower, 65_536), headers(['a', '1']));
    const upper = Buffer.from([0x40, ...raw('X-Up'), ...raw('2')]);
    assert.throws(() => decoder.decode(upper, 65_536), MalformedHeaderList);
    // The table took the entry all the same (62), before 'a' (63). Referenced from the table: as a whole field (62), or as the name of a literal.
    assert.throws(() => decoder.decode(Buffer.from([0xbe]), 65_536), MalformedHeaderList);
    assert.throws(
      () => decoder.decode(Buffer.from([0x0f, 62 - 15, ...raw('3')]), 65_536),
      MalformedHeaderList,
    );
    assert.deepEqual(decoder.decode(Buffer.from([0xbf]), 65_536), headers(['a', '1']));
    // Evicting the lowercase entry (a table of 37 octets keeps only X-Up) keeps the check.
    assert.throws(
      () => decoder.decode(Buffer.from([0x3f, 37 - 31, 0xbe]), 65_536),
      MalformedHeaderList,
    );
    assert.throws(
      () => decoder.decode(Buffer.from([0xbf]), 65_536),
      (error: unknown) => error instanceof HpackError && !(error instanceof MalformedHeaderList),
      'index 63 is beyond the table once a is evicted',
    );
  });

  it('applies table size updates at the start of a block, evicting the oldest entries', () => {
    const decoder = new HpackDecoder();
    decoder.decode(
      Buffer.from([0x40, ...raw('a'), ...raw('1'), 0x40, ...raw('b'), ...raw('2')]),
      Infinity,
    );
    assert.deepEqual(
      decoder.decode(Buffer.from([...int(40, 5, 0x20), 0x82]), Infinity),
      headers([':method', 'GET']),
    );
    assert.deepEqual(table(decoder), [['b', '2']]);
    // The limit holds until the next update: a second entry evicts the first.
    decoder.decode(Buffer.from([0x40, ...raw('c'), ...raw('3')]), Infinity);
    assert.deepEqual(table(decoder), [['c', '3']]);
    decoder.decode(Buffer.from([0x20, ...int(4096, 5, 0x20)]), Infinity);
    assert.deepEqual(table(decoder), []);
    decoder.decode(
      Buffer.from([0x40, ...raw('d'), ...raw('4'), 0x40, ...raw('e'), ...raw('5')]),
      Infinity,
    );
    assert.deepEqual(table(decoder), [
      ['e', '5'],
      ['d', '4'],
    ]);
  });

  it('empties the table for an entry larger than the table', () => {
    const decoder = new HpackDecoder(64);
    decoder.decode(Buffer.from([0x40, ...raw('a'), ...raw('1')]), Infinity);
    const big = 'x'.repeat(40);
    assert.deepEqual(
      decoder.decode(Buffer.from([0x40, ...raw('b'), ...raw(big)]), Infinity),
      headers(['b', big]),
    );
    assert.deepEqual(table(decoder), []);
  });
});

describe('HPACK decoder: the field rules of RFC 9113 8.2', () => {
  const literal = (name: string, value: string) => [0x00, ...raw(name), ...raw(value)];
  const cases: [string, number[][], RegExp][] = [
    ['a pseudo-header after a regular field', [literal('a', '1'), [0x83]], /:method after/],
    ['a repeated pseudo-header', [[0x83], [0x82]], /:method repeated/],
    ['connection', [[0x83], literal('connection', 'keep-alive')], /connection-specific/],
    ['keep-alive', [literal('keep-alive', '5')], /connection-specific/],
    ['proxy-connection', [literal('proxy-connection', 'x')], /connection-specific/],
    ['transfer-encoding', [literal('transfer-encoding', 'chunked')], /connection-specific/],
    ['upgrade', [literal('upgrade', 'h2c')], /connection-specific/],
    ['te other than trailers', [literal('te', 'gzip')], /te other than/],
  ];
  for (const [name, fields, message] of cases) {
    it(`${name} is MalformedHeaderList, after the whole block`, () => {
      const decoder = new HpackDecoder();
      const block = Buffer.from([...fields.flat(), 0x40, ...raw('kept'), ...raw('1')]);
      assert.throws(() => decoder.decode(block, 65_536), message);
      assert.throws(() => decoder.decode(block, 65_536), MalformedHeaderList);
      assert.deepEqual(table(decoder)[0], ['kept', '1'], 'the table took what followed');
    });
  }

  it('allows te: trailers and counts the pseudo-header fields', () => {
    const decoder = new HpackDecoder();
    const block = Buffer.from([0x83, 0x86, 0x84, ...literal('te', 'trailers')]);
    assert.deepEqual(
      decoder.decode(block, 65_536),
      headers([':method', 'POST'], [':scheme', 'http'], [':path', '/'], ['te', 'trailers']),
    );
    assert.equal(decoder.pseudoCount, 3);
    decoder.decode(Buffer.from(literal('a', '1')), 65_536);
    assert.equal(decoder.pseudoCount, 0);
  });

  it('stops at once, with HeaderListFlood, for a list twice the limit (an HPACK bomb)', () => {
    const decoder = new HpackDecoder();
    // One 4 KB entry, then references to it: the list grows 4 KB per octet.
    const entry = [0x40, ...raw('x'), ...raw('v'.repeat(4000))];
    const block = Buffer.from([...entry, ...Array.from({ length: 10_000 }, () => 0xbe)]);
    assert.throws(() => decoder.decode(block, 65_536), HeaderListFlood);
    assert.throws(
      () => new HpackDecoder().decode(Buffer.from([...entry, 0xbe, 0xbe]), 8_100),
      HeaderListTooLarge,
      'under twice the limit it is only too large',
    );
  });
});

describe('HpackEncoder: a connection table the peer keeps in step', () => {
  const RESPONSE = Object.freeze([
    Object.freeze([':status', '200'] as const),
    Object.freeze(['content-type', 'application/grpc'] as const),
  ]);
  const INDEXED = ['content-type', 'grpc-status'];

  it('sends a repeating field once, then one-octet references; per-call fields stay literals', () => {
    const encoder = new HpackEncoder(INDEXED);
    const decoder = new HpackDecoder();
    const first = encoder.encodeConstant(RESPONSE);
    assert.deepEqual(
      decoder.decode(first, Infinity),
      headers(...RESPONSE.map(([n, v]) => [n, v] as [string, string])),
    );
    const second = encoder.encodeConstant(RESPONSE);
    assert.deepEqual(
      [...second],
      [0x88, 0xbe],
      ':status 200 from the static table, content-type at 62',
    );
    assert.equal(
      encoder.encodeConstant(RESPONSE),
      second,
      'the same block while the table is unchanged',
    );
    const withId = encoder.encode([...RESPONSE, ['x-request-id', 'abc']]);
    assert.deepEqual(decoder.decode(withId, Infinity)['x-request-id'], 'abc');
    assert.deepEqual(table(decoder), [['content-type', 'application/grpc']]);
  });

  it('announces a smaller peer table at the start of the next block, smallest first', () => {
    const encoder = new HpackEncoder(INDEXED);
    encoder.encodeConstant(RESPONSE);
    encoder.setPeerTableSize(0);
    encoder.setPeerTableSize(1024);
    const block = encoder.encodeConstant(RESPONSE);
    assert.deepEqual([...block.subarray(0, 4)], [0x20, ...int(1024, 5, 0x20)]);
    const decoder = new HpackDecoder();
    assert.deepEqual(
      decoder.decode(block, Infinity),
      headers([':status', '200'], ['content-type', 'application/grpc']),
    );
    encoder.setPeerTableSize(8192);
    assert.deepEqual(
      [...encoder.encodeConstant(RESPONSE).subarray(0, 3)],
      int(4096, 5, 0x20),
      'up to its own ceiling',
    );
  });

  it('keeps any sequence of blocks and table changes decodable by the peer', () => {
    const value = fc.oneof(
      fc.constantFrom('0', '5', '14', 'application/grpc'),
      fc.string({ maxLength: 200 }).map((v) => v.replace(/[^\x20-\x7e]/g, 'x')),
    );
    const field = fc.tuple(
      fc.constantFrom('content-type', 'grpc-status', 'x-request-id', 'grpc-message'),
      value,
    );
    const step = fc.oneof(
      fc.record({ fields: fc.array(field, { maxLength: 5 }) }),
      fc.record({ size: fc.integer({ min: 0, max: 8192 }) }),
    );
    fc.assert(
      fc.property(fc.array(step, { maxLength: 60 }), (steps) => {
        const encoder = new HpackEncoder(INDEXED);
        const decoder = new HpackDecoder();
        let size = 4096;
        let owed = false;
        for (const next of steps) {
          if ('size' in next) {
            owed ||= Math.min(next.size, 4096) !== size;
            size = Math.min(next.size, 4096);
            encoder.setPeerTableSize(next.size);
            continue;
          }
          const block = encoder.encode(next.fields);
          if (owed) {
            // The first octet must be a size update; the decoder checks the table against it.
            assert.equal((block[0] as number) & 0xe0, 0x20);
            owed = false;
          }
          assert.deepEqual(decoder.decode(block, Infinity), headers(...next.fields));
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('HPACK decoder: malformed blocks', () => {
  const cases: [string, number[], RegExp][] = [
    ['a table size update above maxTableSize', int(4097, 5, 0x20), /table size 4097 above 4096/],
    ['a table size update after a field', [0x82, 0x20], /after a field/],
    ['index 0', [0x80], /index 0/],
    ['an index beyond the empty dynamic table', [0xbe], /index 62/],
    ['a literal name index beyond the dynamic table', [0x7e, ...raw('v')], /index 62/],
    ['an index beyond a large dynamic table', int(2 ** 31 - 1, 7, 0x80), /index 2147483647/],
    ['Huffman padding of 8 bits', [...withValue(huffman([0xff]))], /padding/],
    ["Huffman padding of 8 bits after an 'a'", [...withValue(huffman([0x1f, 0xff]))], /padding/],
    [
      'Huffman padding of 29 bits',
      [...withValue(huffman([0xff, 0x9f, 0xff, 0xff, 0xff]))],
      /padding/,
    ],
    ['Huffman padding that is not all ones', [...withValue(huffman([0x1e]))], /padding/],
    [
      'Huffman padding inside a longer code',
      [...withValue(huffman([0x52, 0xbc, 0x30, 0xff, 0xff, 0xff, 0xff]))],
      /Huffman/,
    ],
    ['the Huffman EOS symbol', [...withValue(huffman([0xff, 0xff, 0xff, 0xfc]))], /EOS/],
    ['an index of 2^31', int(2 ** 31, 7, 0x80), /overflow/],
    ['a string length of 2^32', [0x00, ...int(2 ** 32, 7)], /overflow/],
    [
      'an integer padded with zero continuation octets',
      [0xff, 0x80, 0x80, 0x80, 0x80, 0x80, 0x00],
      /overflow/,
    ],
    ['a truncated index', [0xff], /truncated/],
    ['a truncated integer continuation', [0xff, 0x80], /truncated/],
    ['a literal without its value', [0x41], /truncated/],
    ['a literal without its name', [0x00], /truncated/],
    ['a name shorter than its length', [0x00, 0x05, 0x61], /truncated/],
    ['a Huffman value shorter than its length', [0x41, 0x85, 0xff], /truncated/],
  ];
  for (const [what, block, message] of cases) {
    it(`throws HpackError for ${what}`, () => {
      assert.throws(
        () => new HpackDecoder().decode(Buffer.from(block), Infinity),
        (error: unknown) => {
          assert.ok(error instanceof HpackError);
          assert.match(error.message, message);
          return true;
        },
      );
    });
  }

  it('returns or throws HpackError for random bytes, never anything else', {
    timeout: 60_000,
  }, () => {
    const fragments = [
      [0x82],
      [0xbe],
      [0xc0],
      [0x40, ...raw('a'), ...raw('1')],
      [0x7e, ...raw('v')],
      [0x10, ...raw('b'), ...huffman([0x1f])],
      [0x04, ...hex('8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff')],
      int(4096, 5, 0x20),
      [0x20],
      [0x3f, 0xe1],
      [0x7f, 0x80, 0x80],
      [0xff, 0xff, 0xff, 0xfc],
    ].map((octets) => Uint8Array.from(octets));
    const part = fc.oneof(fc.uint8Array({ maxLength: 24 }), fc.constantFrom(...fragments));
    const block = fc.array(part, { maxLength: 8 }).map((parts) => Buffer.concat(parts));
    fc.assert(
      fc.property(
        fc.array(block, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (blocks, small) => {
          const decoder = new HpackDecoder(small ? 64 : 4096);
          for (const bytes of blocks) {
            try {
              const decoded = decoder.decode(bytes, small ? 100 : Infinity);
              for (const value of Object.values(decoded)) assert.equal(typeof value, 'string');
            } catch (error) {
              if (!(error instanceof HpackError)) throw error;
            }
          }
        },
      ),
      { numRuns: 5000 },
    );
  });
});

describe('HPACK encoder', () => {
  it('writes literals without indexing, by static name index where there is one', () => {
    const block = encodeHeaders([
      [':status', '200'],
      ['content-type', 'application/grpc'],
      ['x-custom', 'v'],
    ]);
    // 0x0f 0x10: name index 15 + 16 = 31, content-type.
    assert.deepEqual(
      block,
      Buffer.from([
        0x88,
        0x0f,
        0x10,
        ...raw('application/grpc'),
        0x00,
        ...raw('x-custom'),
        ...raw('v'),
      ]),
    );
    assert.deepEqual(encodeHeaders([[':status', '404']]), Buffer.from([0x08, ...raw('404')]));
  });

  it('round-trips any header list through the decoder', () => {
    const chars = (from: number, to: number) =>
      Array.from({ length: to - from + 1 }, (_, i) => String.fromCharCode(from + i));
    const nameChar = fc.constantFrom(...chars(0x21, 0x7e).filter((c) => c < 'A' || c > 'Z'));
    const valueChar = fc.constantFrom(...chars(0x20, 0x7e), ...chars(0xa0, 0xff));
    // Lists RFC 9113 8.2 allows: pseudo-header fields first and once each,
    // no connection-specific field; the rules themselves are tested below.
    const forbidden = new Set([
      'connection',
      'keep-alive',
      'proxy-connection',
      'te',
      'transfer-encoding',
      'upgrade',
    ]);
    const name = fc.oneof(
      fc.constantFrom(
        'content-type',
        'grpc-status',
        'www-authenticate',
        '__proto__',
        'constructor',
      ),
      fc
        .string({ unit: nameChar, minLength: 1, maxLength: 20 })
        .filter((n) => !n.startsWith(':') && !forbidden.has(n)),
    );
    const value = fc.oneof(
      fc.constantFrom('200', '404', ''),
      fc.string({ unit: valueChar, maxLength: 300 }),
    );
    const pseudo = fc.uniqueArray(
      fc.tuple(fc.constantFrom(':status', ':path', ':method', ':authority'), value),
      { selector: ([n]) => n, maxLength: 4 },
    );
    fc.assert(
      fc.property(pseudo, fc.array(fc.tuple(name, value), { maxLength: 12 }), (first, rest) => {
        const fields = [...first, ...rest];
        assert.deepEqual(
          new HpackDecoder().decode(encodeHeaders(fields), Infinity),
          headers(...fields),
        );
      }),
      { numRuns: 1000 },
    );
  });
});

// A raw HTTP/2 server, enough to read what a node:http2 client sends: it sends
// SETTINGS, acks the client's, and hands each complete header block over.
const SETTINGS = 4;
const HEADERS = 1;
const CONTINUATION = 9;
const ACK = 0x1;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const PADDED = 0x8;
const PRIORITY = 0x20;

type OnBlock = (block: Buffer, stream: number, socket: Socket) => void;

async function rawServer(onBlock: OnBlock, settings: Buffer = Buffer.alloc(0)) {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('error', () => {});
    socket.write(frame(SETTINGS, 0, 0, settings));
    let data = Buffer.alloc(0);
    let preface = true;
    let block: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      if (preface) {
        if (data.length < 24) return;
        assert.equal(data.subarray(0, 24).toString('latin1'), 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
        data = data.subarray(24);
        preface = false;
      }
      while (data.length >= 9 && data.length >= 9 + data.readUIntBE(0, 3)) {
        const length = data.readUIntBE(0, 3);
        const type = data[3];
        const flags = data[4] as number;
        const stream = data.readUInt32BE(5) & 0x7fffffff;
        let payload = data.subarray(9, 9 + length);
        data = data.subarray(9 + length);
        if (type === SETTINGS && !(flags & ACK))
          socket.write(frame(SETTINGS, ACK, 0, Buffer.alloc(0)));
        if (type === HEADERS) {
          if (flags & PADDED)
            payload = payload.subarray(1, payload.length - (payload[0] as number));
          if (flags & PRIORITY) payload = payload.subarray(5);
          block = [payload];
        } else if (type === CONTINUATION) {
          block.push(payload);
        } else {
          continue;
        }
        if (flags & END_HEADERS) onBlock(Buffer.concat(block), stream, socket);
      }
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Decodes, in order with one decoder, the first `count` header blocks a client sends. */
async function capture(
  count: number,
  maxTableSize: number,
  settings: Buffer,
  run: (port: number) => Promise<void> | void,
) {
  const decoder = new HpackDecoder(maxTableSize);
  const decoded: Record<string, string>[] = [];
  let done = () => {};
  const all = new Promise<void>((resolve) => {
    done = resolve;
  });
  const server = await rawServer((block) => {
    decoded.push(decoder.decode(block, 65536));
    if (decoded.length === count) done();
  }, settings);
  try {
    await run(server.port);
    await all;
  } finally {
    server.close();
  }
  return { decoded, port: server.port };
}

const alphanumeric = (length: number) =>
  Array.from(
    { length },
    () => 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'[randomInt(62)],
  ).join('');

describe('HPACK decoder: what real clients send', () => {
  for (const size of [4096, 256]) {
    it(`decodes node:http2 request header blocks in order (table size ${size})`, async () => {
      // A smaller table than the default makes the client send a size update, and evict.
      const settings = Buffer.from(size === 4096 ? [] : [0, 1, 0, 0, size >> 8, size & 0xff]);
      const long = alphanumeric(300);
      const requests: OutgoingHttpHeaders[] = [
        {
          ':method': 'POST',
          ':path': '/a',
          'content-type': 'application/grpc',
          'x-long': long,
          'x-multi': ['one', 'two'],
          ['__proto__']: 'p',
        },
        {
          ':method': 'POST',
          ':path': '/a',
          'content-type': 'application/grpc',
          'x-long': long,
          'x-multi': ['one', 'two'],
          ['__proto__']: 'p',
        },
        {
          ':method': 'GET',
          ':path': '/b?c=d',
          'x-long': alphanumeric(120),
          authorization: 'secret',
          'user-agent': 'test/1.0',
        },
      ];
      const { decoded, port } = await capture(3, size, settings, async (port) => {
        const client = connect(`http://127.0.0.1:${port}`);
        client.on('error', () => {});
        await once(client, 'remoteSettings');
        for (const request of requests)
          client.request(request, { endStream: true }).on('error', () => {});
      });
      const expect = (request: OutgoingHttpHeaders) => {
        const fields: [string, string][] = [
          [':scheme', 'http'],
          [':authority', `127.0.0.1:${port}`],
        ];
        for (const [name, value] of Object.entries(request)) {
          for (const one of [value].flat()) fields.push([name, String(one)]);
        }
        return fields;
      };
      assert.equal(decoded.length, 3);
      for (const [i, request] of requests.entries()) {
        assert.deepEqual(decoded[i], headers(...expect(request)), `request ${i + 1}`);
      }
    });
  }

  it('decodes the header blocks of grpc-js calls', async () => {
    const method = '/sessionmanager.v1.SessionManagerService/GetSession';
    const metadata = new Metadata();
    metadata.add('x-request-id', 'req-1');
    metadata.add('x-multi', 'a');
    metadata.add('x-multi', 'b');
    metadata.add('trace-bin', Buffer.from([0, 1, 2, 255]));
    let client: Client | undefined;
    const { decoded, port } = await capture(3, 4096, Buffer.alloc(0), (port) => {
      client = new Client(`127.0.0.1:${port}`, credentials.createInsecure());
      for (let i = 0; i < 3; i++) {
        const pass = (message: Buffer) => message;
        client.makeUnaryRequest(
          method,
          pass,
          pass,
          Buffer.alloc(0),
          metadata,
          { deadline: Date.now() + 60_000 },
          () => {},
        );
      }
    });
    client?.close();
    // What gRPC needs and what the call set; grpc-js adds encodings of its own choice.
    const want = {
      ':method': 'POST',
      ':scheme': 'http',
      ':path': method,
      ':authority': `127.0.0.1:${port}`,
      'content-type': 'application/grpc',
      te: 'trailers',
      'x-request-id': 'req-1',
      'x-multi': 'a, b',
    };
    for (const headers of decoded) {
      for (const [name, value] of Object.entries(want)) assert.equal(headers[name], value, name);
      assert.match(headers['user-agent'] ?? '', /^grpc-node-js\//);
      assert.match(headers['grpc-timeout'] ?? '', /^\d{1,8}[HMSmun]$/);
      assert.deepEqual(
        Buffer.from(headers['trace-bin'] ?? '', 'base64'),
        Buffer.from([0, 1, 2, 255]),
      );
    }
  });
});

describe('HPACK encoder: what a real client reads', () => {
  it('node:http2 reads a response header block from encodeHeaders', async () => {
    const server = await rawServer((_block, stream, socket) => {
      const block = encodeHeaders([
        [':status', '200'],
        ['content-type', 'application/grpc'],
        ['x-custom', 'v'],
      ]);
      socket.write(frame(HEADERS, END_HEADERS | END_STREAM, stream, block));
    });
    const client = connect(`http://127.0.0.1:${server.port}`);
    try {
      const request = client.request({ ':path': '/' }, { endStream: true });
      const [response] = (await once(request, 'response')) as [IncomingHttpHeaders];
      assert.equal(response[':status'], 200);
      assert.equal(response['content-type'], 'application/grpc');
      assert.equal(response['x-custom'], 'v');
      request.resume();
      await once(request, 'end');
    } finally {
      client.close();
      server.close();
    }
  });
});
