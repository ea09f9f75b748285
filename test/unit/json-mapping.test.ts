import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import {
  bytes,
  decodeBase64,
  int64,
  parseFlags,
  parseMessage,
} from '../../src/http/json-mapping.ts';
import { messages } from '../../src/rpc/methods.ts';

/** Asserts `run` throws INVALID_ARGUMENT whose message starts with `field:`. */
function rejects(run: () => unknown, field: string): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof SessionError, String(error));
    assert.equal(error.code, ErrorCode.InvalidArgument);
    assert.ok(error.message.startsWith(`${field}:`), error.message);
    return true;
  });
}

const encodings = (value: Buffer) => {
  const standard = value.toString('base64');
  const urlSafe = value.toString('base64url');
  return [
    standard,
    standard.replace(/=+$/, ''),
    urlSafe,
    `${urlSafe}${'='.repeat((4 - (urlSafe.length % 4)) % 4)}`,
  ];
};

describe('proto3 JSON mapping: bytes', () => {
  it('accepts standard and URL-safe base64, padded or not, and decodes every one to the same bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 40 }), (array) => {
        const value = Buffer.from(array);
        for (const text of encodings(value)) assert.deepEqual(decodeBase64(text), value, text);
      }),
    );
  });

  it('accepts a string exactly when it is one of those four encodings of some bytes', () => {
    const alphabet = fc.constantFrom(...'AQgwBz09+/-_=a !.\n'.split(''));
    fc.assert(
      fc.property(
        fc.array(alphabet, { maxLength: 12 }).map((chars) => chars.join('')),
        (text) => {
          const lenient = Buffer.from(text, 'base64');
          const valid = encodings(lenient).includes(text);
          assert.equal(decodeBase64(text) !== undefined, valid, JSON.stringify(text));
        },
      ),
      { numRuns: 2000 },
    );
  });

  it('refuses text that is not base64, naming the field: "o-1" is not an order id in bytes', () => {
    for (const text of [
      'o-1',
      'not base64!',
      'ab+_',
      'QQ=',
      'QQ===',
      'Q',
      '=QQ=',
      'QR==',
      ' QQ==',
    ]) {
      assert.equal(decodeBase64(text), undefined, text);
      rejects(() => bytes.parse(text, 'fleet_list_request'), 'fleet_list_request');
    }
    rejects(() => bytes.parse(12, 'fleet_list_request'), 'fleet_list_request');
    rejects(
      () => parseMessage(messages.UpdateSessionRequest, { setAttributes: { orderId: 'o-1' } }),
      'set_attributes',
    );
  });
});

describe('proto3 JSON mapping: int64', () => {
  it('accepts a JSON number or a decimal string for any integer, alike', () => {
    fc.assert(
      fc.property(fc.maxSafeInteger(), (value) => {
        assert.equal(int64.parse(value, 'ttl_seconds'), value);
        assert.equal(int64.parse(String(value), 'ttl_seconds'), value);
      }),
    );
  });

  it('accepts the whole int64 range as a string, and nothing past it', () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 64n), max: 2n ** 64n }), (value) => {
        const inRange = value >= -(2n ** 63n) && value < 2n ** 63n;
        if (inRange) assert.equal(int64.parse(String(value), 'version'), Number(value));
        else rejects(() => int64.parse(String(value), 'version'), 'version');
      }),
    );
  });

  it('refuses fractions, junk and other types, naming the field', () => {
    for (const value of [1.5, '1.5', '1e3', ' 1', '+1', '0x10', '', 'nine', true, null, [], {}]) {
      rejects(() => int64.parse(value, 'ttl_seconds'), 'ttl_seconds');
    }
  });
});

describe('proto3 JSON mapping: messages and flags', () => {
  it('reads JSON names and proto names, null as the default, and leaves optional fields absent', () => {
    const parsed = parseMessage(messages.UpdateSessionRequest, {
      set_attributes: { a: 'YQ' },
      removeAttributes: ['b'],
      ttlSeconds: 900,
      fleetListRequest: null,
    });
    assert.deepEqual(parsed, {
      setAttributes: new Map([['a', Buffer.from('a')]]),
      removeAttributes: ['b'],
      ttlSeconds: 900,
    });
    assert.equal('expectedVersion' in parsed, false);
    assert.equal(
      parseMessage(messages.UpdateSessionRequest, { expectedVersion: '0' }).expectedVersion,
      0,
    );
  });

  it('refuses unknown fields, a field given twice, wrong types and non-objects', () => {
    rejects(() => parseMessage(messages.SetSessionRequest, { sessionkey: 'x' }), 'body');
    rejects(
      () => parseMessage(messages.SetSessionRequest, { ttlSeconds: 1, ttl_seconds: 2 }),
      'ttl_seconds',
    );
    rejects(() => parseMessage(messages.SetSessionRequest, { sessionKey: 7 }), 'session_key');
    rejects(
      () => parseMessage(messages.UpdateSessionRequest, { removeAttributes: [1] }),
      'remove_attributes',
    );
    rejects(() => parseMessage(messages.SetSessionRequest, { attributes: [] }), 'attributes');
    for (const body of [null, [], 'x', 3]) {
      rejects(() => parseMessage(messages.SetSessionRequest, body), 'body');
    }
  });

  it('a repeated message is an array of objects, each read as that message', () => {
    const listed = parseMessage(messages.ListSessionsResponse, {
      sessions: [{ handle: 'h1', version: '2', attributes: { a: 'YQ' } }, {}],
    });
    assert.equal(listed.sessions.length, 2);
    assert.equal(listed.sessions[0]?.handle, 'h1');
    assert.equal(listed.sessions[0]?.version, 2);
    assert.deepEqual(listed.sessions[0]?.attributes, new Map([['a', Buffer.from('a')]]));
    assert.equal(listed.sessions[1]?.handle, '');
    assert.deepEqual(parseMessage(messages.ListSessionsResponse, {}).sessions, []);
    rejects(() => parseMessage(messages.ListSessionsResponse, { sessions: {} }), 'sessions');
    rejects(
      () => parseMessage(messages.ListSessionsResponse, { sessions: [{ handle: 1 }] }),
      'handle',
    );
    rejects(() => parseMessage(messages.ListSessionsResponse, { sessions: [{ x: 1 }] }), 'body');
  });

  it('query flags are "true" or "false", once; any other parameter is refused', () => {
    assert.deepEqual(parseFlags(['touch'], new URLSearchParams('touch=true')), { touch: true });
    assert.deepEqual(parseFlags(['touch'], new URLSearchParams('')), { touch: false });
    for (const query of [
      'touch=yes',
      'touch=1',
      'touch=',
      'touch',
      'touch=TRUE',
      'touch=true&touch=true',
    ]) {
      rejects(() => parseFlags(['touch'], new URLSearchParams(query)), 'touch');
    }
    rejects(() => parseFlags(['touch'], new URLSearchParams('toch=true')), 'query');
    rejects(() => parseFlags([], new URLSearchParams('touch=true')), 'query');
  });
});
