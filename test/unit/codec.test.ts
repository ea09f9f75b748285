import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import { statusOf } from '../../src/rpc/call.ts';
import {
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
} from '../../src/rpc/codec.ts';
import { Status } from '../../src/wire/grpc-status.ts';
import { ProtobufError } from '../../src/wire/protobuf.ts';
import { PROTO_FILE, SERVICE_NAME } from '../support/proto.ts';

// The hand-written codec against protobufjs (through proto-loader, as the
// grpc-js transport uses it): whatever protobufjs encodes, in whatever field
// order, with unknown fields and repeated map entries mixed in, decodes to the
// same values; whatever the codec encodes, protobufjs reads back. The session
// messages have no repeated numeric fields, so packed encoding does not arise.

const definition = protoLoader.loadSync(PROTO_FILE, {
  keepCase: true,
  longs: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: false,
});
const methods = definition[SERVICE_NAME] as protoLoader.ServiceDefinition;
const rpc = (name: string) => methods[name] as protoLoader.MethodDefinition<object, object>;
// biome-ignore lint/suspicious/noExplicitAny: protobufjs output is compared field by field
type Decoded = Record<string, any>;
const pbDecode = (name: string, bytes: Buffer) => rpc(name).requestDeserialize(bytes) as Decoded;
const pbDecodeReply = (name: string, framed: Buffer) => {
  assert.equal(framed[0], 0);
  assert.equal(framed.readUInt32BE(1), framed.length - 5);
  return rpc(name).responseDeserialize(framed.subarray(5)) as Decoded;
};

/** One field encoded on its own, so tests can reorder, repeat and interleave fields. */
const field = (name: string, message: object) => rpc(name).requestSerialize(message);

const key = fc.stringMatching(/^[A-Za-z0-9._:-]{0,40}$/);
const text = fc.string({ unit: 'binary', maxLength: 20 }).filter((s) => s !== '__proto__');
const bytes = fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a));
const int64 = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
  fc.maxSafeInteger(),
  fc.integer({ min: Number.MIN_SAFE_INTEGER, max: 0 }),
);

/** Unknown fields of every wire type, with numbers the messages do not use. */
const unknownField = fc.oneof(
  fc
    .tuple(fc.integer({ min: 20, max: 2000 }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }))
    .map(([n, v]) => {
      const out = [...varint(BigInt(n << 3))];
      for (let rest = v; ; rest >>= 7n) {
        if (rest < 128n) {
          out.push(Number(rest));
          break;
        }
        out.push(Number(rest & 127n) | 128);
      }
      return Buffer.from(out);
    }),
  fc
    .tuple(fc.integer({ min: 20, max: 2000 }), bytes)
    .map(([n, b]) => Buffer.concat([varint(BigInt((n << 3) | 2)), varint(BigInt(b.length)), b])),
  fc
    .tuple(fc.integer({ min: 20, max: 2000 }), fc.boolean())
    .map(([n, wide]) =>
      Buffer.concat([varint(BigInt((n << 3) | (wide ? 1 : 5))), Buffer.alloc(wide ? 8 : 4, 7)]),
    ),
);

function varint(value: bigint): Buffer {
  const out: number[] = [];
  let rest = value;
  while (rest >= 128n) {
    out.push(Number(rest & 127n) | 128);
    rest >>= 7n;
  }
  out.push(Number(rest));
  return Buffer.from(out);
}

/** Shuffles encoded fields and mixes in unknown ones: a valid encoding of the same message. */
const scrambled = (parts: Buffer[]) =>
  fc
    .tuple(
      fc.shuffledSubarray(parts, { minLength: parts.length }),
      fc.array(unknownField, { maxLength: 4 }),
    )
    .chain(([ordered, unknown]) =>
      fc
        .array(fc.nat(ordered.length), { minLength: unknown.length, maxLength: unknown.length })
        .map((positions) => {
          const out = [...ordered];
          for (const [i, u] of unknown.entries()) out.splice(positions[i] ?? 0, 0, u);
          return Buffer.concat(out);
        }),
    );

const asRecord = (map: ReadonlyMap<string, Buffer>) => Object.fromEntries(map);

describe('hand-written protobuf codec', () => {
  it('SetSession: decodes what protobufjs encodes, in any field order, with unknown fields and repeated map keys', () => {
    fc.assert(
      fc.property(
        fc
          .record({
            key,
            req: bytes,
            res: bytes,
            attrs: fc.array(fc.tuple(text, bytes), { maxLength: 5 }),
            ttl: int64,
            out: int64,
            owner: text,
          })
          .chain((m) =>
            scrambled([
              field('SetSession', { session_key: m.key }),
              field('SetSession', { owner: m.owner }),
              field('SetSession', { fleet_list_request: m.req }),
              field('SetSession', { fleet_list_response: m.res }),
              field('SetSession', { ttl_seconds: m.ttl, version: m.out }),
              // Map entries one by one: the same name may come twice, the last wins.
              ...m.attrs.map(([name, value]) =>
                field('SetSession', { attributes: { [name]: value } }),
              ),
            ]),
          ),
        (wire) => {
          const ours = decodeSetSession(wire);
          const theirs = pbDecode('SetSession', wire);
          assert.equal(ours.sessionKey, theirs.session_key);
          assert.deepEqual(ours.fleetListRequest, theirs.fleet_list_request);
          assert.deepEqual(ours.fleetListResponse, theirs.fleet_list_response);
          assert.deepEqual(asRecord(ours.attributes), { ...theirs.attributes });
          assert.equal(ours.ttlSeconds, theirs.ttl_seconds);
          assert.equal(ours.owner, theirs.owner);
        },
      ),
    );
  });

  it('UpdateSession: optional fields keep their presence; removals keep their order', () => {
    fc.assert(
      fc.property(
        fc
          .record(
            {
              key,
              req: bytes,
              res: bytes,
              set: fc.array(fc.tuple(text, bytes), { maxLength: 4 }),
              remove: fc.array(text, { maxLength: 4 }),
              expected: int64,
              ttl: int64,
            },
            { requiredKeys: ['key', 'set', 'remove'] },
          )
          .chain((m) =>
            scrambled([
              field('UpdateSession', { session_key: m.key }),
              ...(m.req ? [field('UpdateSession', { fleet_list_request: m.req })] : []),
              ...(m.res ? [field('UpdateSession', { fleet_list_response: m.res })] : []),
              ...(m.expected === undefined
                ? []
                : [field('UpdateSession', { expected_version: m.expected })]),
              ...(m.ttl === undefined ? [] : [field('UpdateSession', { ttl_seconds: m.ttl })]),
              ...m.set.map(([n, v]) => field('UpdateSession', { set_attributes: { [n]: v } })),
            ]).map((wire) =>
              // Repeated strings keep their order, so they go last and in order.
              Buffer.concat([wire, field('UpdateSession', { remove_attributes: m.remove })]),
            ),
          ),
        (wire) => {
          const ours = decodeUpdateSession(wire);
          const theirs = pbDecode('UpdateSession', wire);
          assert.equal(ours.sessionKey, theirs.session_key);
          assert.deepEqual(ours.fleetListRequest, theirs.fleet_list_request ?? undefined);
          assert.deepEqual(ours.fleetListResponse, theirs.fleet_list_response ?? undefined);
          assert.equal(ours.expectedVersion, theirs.expected_version ?? undefined);
          assert.equal(ours.ttlSeconds, theirs.ttl_seconds);
          assert.deepEqual(asRecord(ours.setAttributes), { ...theirs.set_attributes });
          assert.deepEqual(ours.removeAttributes, theirs.remove_attributes);
        },
      ),
    );
  });

  it('Get, Touch, Consume and Delete requests', () => {
    fc.assert(
      fc.property(
        key,
        fc.boolean(),
        int64,
        fc.array(unknownField, { maxLength: 3 }),
        (k, touch, ttl, unknown) => {
          const tail = Buffer.concat(unknown);
          const get = Buffer.concat([field('GetSession', { session_key: k, touch }), tail]);
          assert.deepEqual(decodeGetSession(get), {
            sessionKey: pbDecode('GetSession', get).session_key,
            touch: pbDecode('GetSession', get).touch,
          });
          const touchWire = Buffer.concat([
            tail,
            field('TouchSession', { session_key: k, ttl_seconds: ttl }),
          ]);
          assert.deepEqual(decodeTouchSession(touchWire), {
            sessionKey: pbDecode('TouchSession', touchWire).session_key,
            ttlSeconds: pbDecode('TouchSession', touchWire).ttl_seconds,
          });
          for (const method of ['ConsumeSession', 'DeleteSession']) {
            const wire = Buffer.concat([field(method, { session_key: k }), tail]);
            assert.equal(decodeSessionKey(wire), pbDecode(method, wire).session_key);
          }
        },
      ),
    );
  });

  it('ListSessions and RevokeSessions requests', () => {
    fc.assert(
      fc.property(
        text,
        fc.boolean(),
        fc.array(unknownField, { maxLength: 3 }),
        (owner, includeContent, unknown) => {
          const tail = Buffer.concat(unknown);
          const list = Buffer.concat([
            tail,
            field('ListSessions', { owner, include_content: includeContent }),
          ]);
          const theirs = pbDecode('ListSessions', list);
          assert.deepEqual(decodeListSessions(list), {
            owner: theirs.owner,
            includeContent: theirs.include_content,
          });
          const revoke = Buffer.concat([field('RevokeSessions', { owner }), tail]);
          assert.equal(decodeOwner(revoke), pbDecode('RevokeSessions', revoke).owner);
        },
      ),
    );
  });

  it('ListSessions and RevokeSessions replies: protobufjs reads back what the codec encodes', () => {
    const nonNegative = fc.oneof(fc.nat(), fc.maxSafeInteger().map(Math.abs));
    const owned = fc.record(
      {
        handle: key,
        createdAtMs: nonNegative,
        expiresAtMs: nonNegative,
        version: nonNegative,
        ttlSeconds: nonNegative,
        sizeBytes: nonNegative,
        content: fc.record({
          fleetListRequest: bytes,
          fleetListResponse: bytes,
          attributes: fc.array(fc.tuple(text, bytes), { maxLength: 3 }).map((a) => new Map(a)),
        }),
      },
      {
        requiredKeys: [
          'handle',
          'createdAtMs',
          'expiresAtMs',
          'version',
          'ttlSeconds',
          'sizeBytes',
        ],
      },
    );
    fc.assert(
      fc.property(fc.array(owned, { maxLength: 5 }), nonNegative, (sessions, revoked) => {
        const got = pbDecodeReply('ListSessions', encodeListSessionsResponse(sessions));
        assert.equal(got.sessions.length, sessions.length);
        sessions.forEach((session, i) => {
          const listed = got.sessions[i];
          assert.equal(listed.handle, session.handle);
          assert.equal(listed.created_at_unix_ms, session.createdAtMs);
          assert.equal(listed.expires_at_unix_ms, session.expiresAtMs);
          assert.equal(listed.version, session.version);
          assert.equal(listed.ttl_seconds, session.ttlSeconds);
          assert.equal(listed.size_bytes, session.sizeBytes);
          const content = session.content;
          assert.deepEqual(listed.fleet_list_request, content?.fleetListRequest ?? Buffer.alloc(0));
          assert.deepEqual(
            listed.fleet_list_response,
            content?.fleetListResponse ?? Buffer.alloc(0),
          );
          assert.deepEqual({ ...listed.attributes }, asRecord(content?.attributes ?? new Map()));
        });
        const revokedReply = pbDecodeReply('RevokeSessions', encodeRevokeSessionsResponse(revoked));
        assert.equal(revokedReply.revoked, revoked);
      }),
    );
  });

  it('responses: protobufjs reads back exactly what the codec encodes', () => {
    const nonNegative = fc.oneof(fc.nat(), fc.maxSafeInteger().map(Math.abs));
    fc.assert(
      fc.property(
        fc.record({
          sessionKey: key,
          fleetListRequest: bytes,
          fleetListResponse: bytes,
          attributes: fc.array(fc.tuple(text, bytes), { maxLength: 5 }).map((a) => new Map(a)),
          ttlSeconds: nonNegative,
          expiresAtMs: nonNegative,
          version: nonNegative,
          createdAtMs: nonNegative,
        }),
        fc.boolean(),
        (session, deleted) => {
          const got = pbDecodeReply('GetSession', encodeSession(session));
          assert.equal(got.session_key, session.sessionKey);
          assert.deepEqual(got.fleet_list_request, session.fleetListRequest);
          assert.deepEqual(got.fleet_list_response, session.fleetListResponse);
          assert.deepEqual({ ...got.attributes }, asRecord(session.attributes));
          assert.equal(got.ttl_seconds, session.ttlSeconds);
          assert.equal(got.expires_at_unix_ms, session.expiresAtMs);
          assert.equal(got.version, session.version);
          assert.equal(got.created_at_unix_ms, session.createdAtMs);
          const set = pbDecodeReply('SetSession', encodeKeyVersion(session));
          assert.deepEqual(
            [set.session_key, set.expires_at_unix_ms, set.version],
            [session.sessionKey, session.expiresAtMs, session.version],
          );
          const touched = pbDecodeReply(
            'TouchSession',
            encodeTouchSessionResponse(session.version),
          );
          assert.equal(touched.expires_at_unix_ms, session.version);
          assert.equal(
            pbDecodeReply('DeleteSession', encodeDeleteSessionResponse(deleted)).deleted,
            deleted,
          );
        },
      ),
    );
  });

  it('invalid UTF-8 in a string is INVALID_ARGUMENT naming the field', () => {
    const wire = Buffer.from([0x0a, 2, 0xc3, 0x28]);
    assert.throws(() => decodeSessionKey(wire), /session_key: is not valid UTF-8/);
    const entry = Buffer.from([0x0a, 1, 0xff, 0x12, 0]);
    assert.throws(
      () => decodeSetSession(Buffer.concat([Buffer.from([0x22, entry.length]), entry])),
      /attributes: is not valid UTF-8/,
    );
  });

  it('truncated or random input is a ProtobufError (INVALID_ARGUMENT) or a valid message, never a crash', () => {
    const decoders = [
      decodeSetSession,
      decodeGetSession,
      decodeUpdateSession,
      decodeTouchSession,
      decodeSessionKey,
      decodeListSessions,
      decodeOwner,
    ];
    const valid = field('SetSession', {
      session_key: 'abc',
      fleet_list_request: Buffer.alloc(300, 1),
      attributes: { a: Buffer.from('b') },
      ttl_seconds: -5,
    });
    const onlyInvalidArgument = (run: () => unknown) => {
      try {
        run();
      } catch (error) {
        assert.ok(error instanceof ProtobufError, String(error));
        const status = statusOf(error);
        assert.equal(status.code, Status.INVALID_ARGUMENT);
        assert.match(status.details, /^(request: malformed message|\w+: is not valid UTF-8)/);
      }
    };
    for (let cut = 0; cut < valid.length; cut++) {
      for (const decode of decoders) onlyInvalidArgument(() => decode(valid.subarray(0, cut)));
    }
    assert.throws(() => decodeSetSession(valid.subarray(0, valid.length - 1)), /truncated/);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (random) => {
        for (const decode of decoders) onlyInvalidArgument(() => decode(Buffer.from(random)));
      }),
    );
  });
});
