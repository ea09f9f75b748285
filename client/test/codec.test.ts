import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import fc from 'fast-check';
import { type Codec, createClient, jsonCodec, rawCodec, SessionError } from '../src/index.ts';
import { type ScriptedServer, startScriptedServer } from './scripted-server.ts';

describe('jsonCodec', () => {
  test('round-trips every JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue().map(withoutNegativeZero), (value) => {
        assert.deepStrictEqual(jsonCodec.decode(jsonCodec.encode(value)), value);
      }),
    );
  });

  test('reads -0 back as 0, since JSON has no negative zero', () => {
    assert.ok(Object.is(jsonCodec.decode(jsonCodec.encode(-0)), 0));
  });

  test('encodes as UTF-8 JSON text', () => {
    assert.equal(Buffer.from(jsonCodec.encode({ city: 'Zürich' })).toString(), '{"city":"Zürich"}');
  });

  test('refuses values JSON cannot represent', () => {
    assert.throws(() => jsonCodec.encode(undefined), TypeError);
    assert.throws(() => jsonCodec.encode(() => 1), TypeError);
  });

  test('refuses bytes that are not UTF-8 JSON', () => {
    assert.throws(() => jsonCodec.decode(Buffer.from([0xff, 0xfe])), TypeError);
    assert.throws(() => jsonCodec.decode(Buffer.from('{nope')), SyntaxError);
  });
});

describe('rawCodec', () => {
  test('passes bytes through both ways', () => {
    fc.assert(
      fc.property(fc.uint8Array(), (bytes) => {
        const decoded = rawCodec.decode(rawCodec.encode(bytes));
        assert.ok(Buffer.isBuffer(decoded));
        assert.deepStrictEqual(new Uint8Array(decoded), bytes);
      }),
    );
  });
});

describe('codecs in the client', () => {
  let server: ScriptedServer;
  const stored = {
    session_key: 'k1',
    fleet_list_request: Buffer.from('{"from":"A"}'),
    fleet_list_response: Buffer.from('not json'),
    attributes: { ok: Buffer.from('1') },
    ttl_seconds: 60,
    expires_at_unix_ms: 1,
    version: 1,
    created_at_unix_ms: 1,
  };

  before(async () => {
    server = await startScriptedServer({
      SetSession: () => ({ session_key: 'k1', expires_at_unix_ms: 1, version: 1 }),
      GetSession: () => stored,
    });
  });
  after(() => server.close());

  test('a payload that does not decode fails with INVALID_PAYLOAD naming the field', async () => {
    const client = createClient({ address: server.address });
    try {
      await assert.rejects(client.getSession({ sessionKey: 'k1' }), (error: unknown) => {
        assert.ok(error instanceof SessionError);
        assert.equal(error.code, 'INVALID_PAYLOAD');
        assert.match(error.message, /^fleetListResponse could not be decoded/);
        assert.ok(error.cause instanceof SyntaxError);
        return true;
      });
    } finally {
      client.close();
    }
  });

  test('a value that does not encode fails with INVALID_PAYLOAD before anything is sent', async () => {
    const failing: Codec<string> = {
      encode: () => {
        throw new Error('boom');
      },
      decode: (bytes) => Buffer.from(bytes).toString(),
    };
    const client = createClient<unknown, unknown, string>({
      address: server.address,
      codec: { attributes: failing },
    });
    const before = server.callsTo('SetSession').length;
    try {
      await assert.rejects(
        client.setSession({ sessionKey: 'k1', attributes: { seat: '12A' } }),
        (error: unknown) =>
          error instanceof SessionError &&
          error.code === 'INVALID_PAYLOAD' &&
          error.message === 'attributes.seat could not be encoded: boom',
      );
      assert.equal(server.callsTo('SetSession').length, before);
    } finally {
      client.close();
    }
  });

  test('each payload uses its own codec', async () => {
    const client = createClient<Buffer, Buffer, string>({
      address: server.address,
      codec: {
        fleetListRequest: rawCodec,
        fleetListResponse: rawCodec,
        attributes: { encode: (v) => Buffer.from(v), decode: (b) => Buffer.from(b).toString() },
      },
    });
    try {
      const session = await client.getSession({ sessionKey: 'k1' });
      assert.deepStrictEqual(session?.fleetListRequest, Buffer.from('{"from":"A"}'));
      assert.deepStrictEqual(session?.fleetListResponse, Buffer.from('not json'));
      assert.deepStrictEqual(session?.attributes, { ok: '1' });
    } finally {
      client.close();
    }
  });
});

function withoutNegativeZero(value: unknown): unknown {
  if (Object.is(value, -0)) {
    return 0;
  }
  if (Array.isArray(value)) {
    return value.map(withoutNegativeZero);
  }
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([key, inner]) => [key, withoutNegativeZero(inner)]),
    );
  }
  return value;
}
