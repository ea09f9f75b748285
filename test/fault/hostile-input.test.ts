import assert from 'node:assert/strict';
import { type ClientHttp2Session, connect as http2Connect } from 'node:http2';
import { connect as tcpConnect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { Client, credentials, Metadata, type ServiceError, status } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import fc from 'fast-check';
import {
  assertAlive,
  assertNoKeysInLogs,
  assertNoUnhandled,
  LONG,
  sleep,
  watchRss,
} from '../support/faults.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { type ServiceProcess, spawnService } from '../support/process.ts';
import { PROTO_FILE } from '../support/proto.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const RUNS = LONG ? 1500 : 30;
const SERVICE = 'sessionmanager.v1.SessionManagerService';
const definition = protoLoader.loadSync(PROTO_FILE, {
  keepCase: true,
  longs: Number,
  bytes: Buffer,
  defaults: true,
});
const rpcs = definition[SERVICE] as protoLoader.ServiceDefinition;
const METHODS = Object.keys(rpcs);

/** Answers a well-formed request may get: never INTERNAL, UNKNOWN or a hang. */
const WELL_FORMED = new Set([
  status.OK,
  status.INVALID_ARGUMENT,
  status.RESOURCE_EXHAUSTED,
  status.NOT_FOUND,
  status.ABORTED,
]);
/** Bytes that may not decode at all: also INTERNAL, the protocol-error answer (grpc-js). */
const MALFORMED = new Set([...WELL_FORMED, status.INTERNAL]);

// ---- generators --------------------------------------------------------------

const globKey = fc
  .array(fc.constantFrom('*', '?', '[', ']', '\\', '^', '-', '!', 'a', ':'), {
    minLength: 1,
    maxLength: 40,
  })
  .map((chars) => chars.join(''));
const sessionKey = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 200, unit: 'binary' }),
  globKey,
  fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
  fc.integer({ min: 129, max: 300_000 }).map((n) => 'k'.repeat(n)),
);
const int64 = fc.oneof(
  fc.integer({ min: -(2 ** 31), max: 2 ** 31 }),
  fc.constantFrom(
    0,
    -1,
    1,
    86_401,
    Number.MAX_SAFE_INTEGER,
    '9223372036854775807',
    '-9223372036854775808',
  ),
);
const bytes = fc.oneof(
  fc.uint8Array({ maxLength: 256 }).map(Buffer.from),
  fc.integer({ min: 1, max: 1_200_000 }).map((n) => Buffer.alloc(n, 7)),
);
const owner = fc.oneof(
  fc.constant(''),
  fc.string({ maxLength: 300, unit: 'binary' }),
  fc.integer({ min: 257, max: 300_000 }).map((n) => 'o'.repeat(n)),
);
const attributeName = fc.oneof(fc.string({ maxLength: 140, unit: 'binary' }), globKey);
const attributes = fc.oneof(
  fc.dictionary(attributeName, fc.uint8Array({ maxLength: 64 }).map(Buffer.from), { maxKeys: 12 }),
  // More attributes than SESSION_MAX_ATTRIBUTES (1000).
  fc
    .integer({ min: 990, max: 3000 })
    .map((n) =>
      Object.fromEntries(Array.from({ length: n }, (_, i) => [`a${i}`, Buffer.from('x')])),
    ),
);

const requests: Record<string, fc.Arbitrary<object>> = {
  SetSession: fc.record({
    session_key: sessionKey,
    fleet_list_request: bytes,
    fleet_list_response: bytes,
    attributes,
    ttl_seconds: int64,
    owner,
  }),
  GetSession: fc.record({ session_key: sessionKey, touch: fc.boolean() }),
  UpdateSession: fc.record(
    {
      session_key: sessionKey,
      fleet_list_request: bytes,
      fleet_list_response: bytes,
      set_attributes: attributes,
      remove_attributes: fc.array(attributeName, { maxLength: 20 }),
      expected_version: int64,
      ttl_seconds: int64,
    },
    { requiredKeys: ['session_key'] },
  ),
  TouchSession: fc.record({ session_key: sessionKey, ttl_seconds: int64 }),
  ConsumeSession: fc.record({ session_key: sessionKey }),
  DeleteSession: fc.record({ session_key: sessionKey }),
  RotateSessionKey: fc.record({ session_key: sessionKey }),
  ListSessions: fc.record({ owner, include_content: fc.boolean() }),
  RevokeSessions: fc.record({ owner }),
};

function varint(n: number): Buffer {
  const out: number[] = [];
  let v = n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}
const lengthDelimited = (field: number, value: Buffer) =>
  Buffer.concat([varint((field << 3) | 2), varint(value.length), value]);

const invalidUtf8 = fc.constantFrom(
  Buffer.from([0xff]),
  Buffer.from([0xc3, 0x28]),
  Buffer.from([0xed, 0xa0, 0x80]), // a lone surrogate
  Buffer.from([0xf0, 0x28, 0x8c, 0x28]),
  Buffer.from('abc\xc0\xaf', 'latin1'),
);
/** Raw message bodies that are not what a conforming client sends. */
const malformedBody = (method: string) =>
  fc.oneof(
    fc.uint8Array({ maxLength: 2048 }).map(Buffer.from),
    // A well-formed message cut short.
    fc
      .tuple(requests[method] as fc.Arbitrary<object>, fc.double({ min: 0, max: 1, noNaN: true }))
      .map(([request, cut]) => {
        const full = (
          rpcs[method] as protoLoader.MethodDefinition<object, object>
        ).requestSerialize(request);
        return full.subarray(0, Math.floor(full.length * cut));
      }),
    // Invalid UTF-8 in the key (field 1), in an attribute name (field 4/5), or both.
    invalidUtf8.map((b) => lengthDelimited(1, b)),
    invalidUtf8.map((b) => lengthDelimited(4, lengthDelimited(1, b))),
    invalidUtf8.map((b) =>
      Buffer.concat([lengthDelimited(1, Buffer.from('ok')), lengthDelimited(5, b)]),
    ),
    // Lengths that run past the end, varints that never end, groups, fixed widths.
    fc.constantFrom(
      Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
      Buffer.from([0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
      Buffer.from([0x0b, 0x0c]),
      Buffer.from([0x0d, 1, 2]),
      Buffer.from([0x22, 0x05, 0x0a, 0x10, 0x61]),
    ),
  );

// ---- callers -----------------------------------------------------------------

/** Sends raw message bytes on a method through grpc-js; resolves to the status code. */
function rawUnary(
  client: Client,
  path: string,
  body: Buffer,
): Promise<{ code: number; reply?: Buffer }> {
  return new Promise((resolve) => {
    client.makeUnaryRequest(
      path,
      (b: Buffer) => b,
      (b: Buffer) => b,
      body,
      new Metadata(),
      { deadline: Date.now() + 10_000 },
      (error: ServiceError | null, reply?: Buffer) =>
        resolve(error ? { code: error.code } : { code: status.OK, ...(reply && { reply }) }),
    );
  });
}

interface RawAnswer {
  httpStatus: number | undefined;
  grpcStatus: number | undefined;
}

/** One HTTP/2 request with hand-made headers and body chunks; gives up (as a failure) after 5 s. */
function rawHttp2(
  session: ClientHttp2Session,
  headers: Record<string, string>,
  chunks: Buffer[],
  end = true,
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const answer: RawAnswer = { httpStatus: undefined, grpcStatus: undefined };
    const stream = session.request({
      ':method': 'POST',
      ':path': `/${SERVICE}/GetSession`,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    const timer = setTimeout(() => {
      stream.close();
      reject(new Error(`no answer within 5 s to ${JSON.stringify(headers)}`));
    }, 5000);
    // Settled by the status: grpc-js answers without resetting a stream the client left open.
    const read = (h: Record<string, unknown>) => {
      if (h[':status'] !== undefined) answer.httpStatus = Number(h[':status']);
      if (h['grpc-status'] === undefined) return;
      answer.grpcStatus = Number(h['grpc-status']);
      clearTimeout(timer);
      resolve(answer);
      stream.close();
    };
    stream.on('response', read);
    stream.on('trailers', read);
    stream.on('data', () => undefined);
    stream.on('error', () => undefined);
    stream.on('close', () => {
      clearTimeout(timer);
      resolve(answer);
    });
    for (const chunk of chunks) stream.write(chunk);
    if (end) stream.end();
  });
}

const prefix = (flag: number, length: number) => {
  const b = Buffer.alloc(5);
  b[0] = flag;
  b.writeUInt32BE(length, 1);
  return b;
};

// ---- the suite, on each transport -----------------------------------------------

for (const transport of ['lean', 'grpc-js'] as const) {
  describe(`hostile input (GRPC_TRANSPORT=${transport})`, () => {
    let redis: TestRedis;
    let service: ServiceProcess;
    let address: string;
    let grpcPort: number;
    let httpUrl: string;
    let client: Client;
    let health: RawClient;
    let rss: ReturnType<typeof watchRss>;
    const issuedKeys = new Set<string>();
    const codes: { [name: string]: number } = {};
    const tally = (code: number | undefined) => {
      const name = code === undefined ? 'none' : (status[code] ?? String(code));
      codes[name] = (codes[name] ?? 0) + 1;
    };

    before(async () => {
      redis = await startRedis();
      grpcPort = await freePort();
      const httpPort = await freePort();
      service = await spawnService({
        PORT: String(grpcPort),
        HTTP_PORT: String(httpPort),
        GRPC_TRANSPORT: transport,
        REDIS_HOST: '127.0.0.1',
        REDIS_PORT: String(redis.port),
      });
      address = `127.0.0.1:${grpcPort}`;
      httpUrl = `http://127.0.0.1:${httpPort}`;
      client = new Client(address, credentials.createInsecure(), {
        'grpc.max_send_message_length': -1,
        'grpc.max_receive_message_length': -1,
      });
      health = rawClient(address);
      await waitFor('SERVING', async () => (await health.health()) === 'SERVING');
      rss = watchRss(service.child.pid as number);
    });

    after(async () => {
      client.close();
      health.close();
      service.child.kill('SIGKILL');
      await service.exited();
      await redis.dispose();
    });

    it('fuzzed well-formed requests on every RPC get only client-error answers', async () => {
      for (const method of METHODS) {
        const rpc = rpcs[method] as protoLoader.MethodDefinition<object, object>;
        await fc.assert(
          fc.asyncProperty(requests[method] as fc.Arbitrary<object>, async (request) => {
            const { code, reply } = await rawUnary(client, rpc.path, rpc.requestSerialize(request));
            tally(code);
            if (reply && method === 'SetSession') {
              const decoded = rpc.responseDeserialize(reply) as { session_key: string };
              issuedKeys.add(decoded.session_key);
            }
            assert.ok(WELL_FORMED.has(code), `${method} answered ${status[code]}`);
          }),
          { numRuns: RUNS },
        );
      }
    });

    it('fuzzed malformed bytes (random, truncated, invalid UTF-8) are refused, never crash', async () => {
      for (const method of METHODS) {
        const path = `/${SERVICE}/${method}`;
        await fc.assert(
          fc.asyncProperty(malformedBody(method), async (body) => {
            const { code, reply } = await rawUnary(client, path, body);
            tally(code);
            if (reply && method === 'SetSession') {
              const decoded = rpcs.SetSession?.responseDeserialize(reply) as {
                session_key: string;
              };
              issuedKeys.add(decoded.session_key);
            }
            assert.ok(
              MALFORMED.has(code),
              `${method} answered ${status[code]} to ${body.toString('hex').slice(0, 40)}`,
            );
          }),
          { numRuns: RUNS },
        );
      }
      const { code } = await rawUnary(client, `/${SERVICE}/NoSuchMethod`, Buffer.alloc(0));
      assert.equal(code, status.UNIMPLEMENTED);
      // A map entry without its value (proto3 lets an encoder omit an empty one) is an empty value.
      const entry = lengthDelimited(4, lengthDelimited(1, Buffer.from('a')));
      const set = await rawUnary(client, `/${SERVICE}/SetSession`, entry);
      assert.equal(set.code, status.OK, 'an attribute sent without its value');
    });

    it('raw HTTP/2: oversized, truncated and malformed gRPC framing is refused', async () => {
      const session = http2Connect(`http://${address}`);
      session.on('error', () => undefined);
      try {
        const cases: Array<{ what: string; answer: Promise<RawAnswer>; expect: number[] }> = [
          {
            what: 'a 2 GB length prefix',
            answer: rawHttp2(session, {}, [prefix(0, 0x7fff_ffff), Buffer.alloc(1024)]),
            expect: [status.RESOURCE_EXHAUSTED],
          },
          {
            what: 'a 4 GB length prefix, the stream left open',
            answer: rawHttp2(session, {}, [prefix(0, 0xffff_ffff), Buffer.alloc(16_384)], false),
            expect: [status.RESOURCE_EXHAUSTED],
          },
          {
            what: 'a message shorter than its prefix',
            answer: rawHttp2(session, {}, [prefix(0, 100), Buffer.alloc(10)]),
            expect: [status.INTERNAL, status.UNIMPLEMENTED],
          },
          {
            what: 'half a prefix',
            answer: rawHttp2(session, {}, [Buffer.from([0, 0])]),
            expect: [status.INTERNAL, status.UNIMPLEMENTED],
          },
          {
            what: 'no message at all',
            answer: rawHttp2(session, {}, []),
            expect: [status.INTERNAL, status.UNIMPLEMENTED],
          },
          {
            what: 'two messages on a unary method',
            answer: rawHttp2(session, {}, [prefix(0, 0), prefix(0, 0)]),
            expect: [status.INTERNAL, status.UNIMPLEMENTED],
          },
          {
            what: 'an invalid flag byte',
            answer: rawHttp2(session, {}, [prefix(7, 0)]),
            // grpc-js reads past the flag's unused bits
            expect: [status.INTERNAL, status.INVALID_ARGUMENT],
          },
          {
            what: 'a compressed message without grpc-encoding',
            answer: rawHttp2(session, {}, [prefix(1, 3), Buffer.from('abc')]),
            // grpc-js hands the bytes over as they are; they do not decode
            expect: [status.INTERNAL, status.INVALID_ARGUMENT],
          },
          {
            what: 'an unknown grpc-encoding',
            answer: rawHttp2(session, { 'grpc-encoding': 'snappy' }, [
              prefix(1, 3),
              Buffer.from('abc'),
            ]),
            expect: [status.UNIMPLEMENTED],
          },
          {
            what: 'corrupt gzip',
            answer: rawHttp2(session, { 'grpc-encoding': 'gzip' }, [
              prefix(1, 3),
              Buffer.from('abc'),
            ]),
            expect: [status.INTERNAL],
          },
          {
            what: 'a gzip bomb (100 MB of zeros in ~100 KB)',
            answer: (() => {
              const bomb = gzipSync(Buffer.alloc(100 * 1024 * 1024));
              return rawHttp2(session, { 'grpc-encoding': 'gzip' }, [prefix(1, bomb.length), bomb]);
            })(),
            expect: [status.RESOURCE_EXHAUSTED],
          },
          {
            what: 'a malformed grpc-timeout',
            answer: rawHttp2(session, { 'grpc-timeout': 'soon' }, [prefix(0, 0)]),
            expect: [status.INTERNAL, status.NOT_FOUND, status.INVALID_ARGUMENT],
          },
          {
            what: 'an unknown method',
            answer: rawHttp2(session, { ':path': '/no.Such/Method' }, [prefix(0, 0)]),
            expect: [status.UNIMPLEMENTED],
          },
        ];
        const seen: Record<string, string> = {};
        for (const c of cases) {
          const answer = await c.answer;
          tally(answer.grpcStatus);
          seen[c.what] = status[answer.grpcStatus ?? -1] ?? `http ${answer.httpStatus}`;
        }
        console.log(`hostile-input http2 answers (${transport}): ${JSON.stringify(seen)}`);
        for (const c of cases) {
          const got = seen[c.what];
          assert.ok(
            c.expect.some((code) => status[code] === got),
            `${c.what}: ${got}, expected ${c.expect.map((code) => status[code]).join(' or ')}`,
          );
        }
        // Not gRPC at all: a wrong content type or method gets an HTTP error, no grpc-status.
        const plain = await rawHttp2(session, { 'content-type': 'text/plain' }, [
          Buffer.from('hi'),
        ]);
        assert.ok(plain.grpcStatus === undefined || plain.grpcStatus !== status.OK);
        assert.ok(
          plain.httpStatus === undefined ||
            plain.httpStatus >= 400 ||
            plain.grpcStatus !== undefined,
        );
        // Streams opened and reset at once, many of them.
        for (let i = 0; i < 200; i++) {
          const stream = session.request({
            ':method': 'POST',
            ':path': `/${SERVICE}/GetSession`,
            'content-type': 'application/grpc',
          });
          stream.on('error', () => undefined);
          stream.close(8);
        }
      } finally {
        session.destroy();
      }
    });

    it('raw garbage bytes on the gRPC port are dropped without harm', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.uint8Array({ minLength: 1, maxLength: 65_536 }).map(Buffer.from),
            // The HTTP/2 preface, then garbage frames.
            fc
              .uint8Array({ minLength: 1, maxLength: 4096 })
              .map((b) => Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), b])),
            fc.constant(Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n')),
          ),
          async (garbage) => {
            await new Promise<void>((resolve) => {
              const socket = tcpConnect(grpcPort, '127.0.0.1');
              const timer = setTimeout(() => socket.destroy(), 2000);
              socket.on('error', () => undefined);
              socket.on('data', () => undefined);
              socket.once('connect', () => socket.end(garbage));
              socket.once('close', () => {
                clearTimeout(timer);
                resolve();
              });
            });
          },
        ),
        { numRuns: RUNS },
      );
      assert.equal(await health.health(), 'SERVING');
    });

    it('the HTTP/JSON API refuses garbage bodies with 4xx, never 5xx', async () => {
      const answers: { [status: string]: number } = {};
      const body = fc.oneof(
        fc.string({ maxLength: 512, unit: 'binary' }),
        fc.json(),
        fc.uint8Array({ maxLength: 512 }).map((b) => Buffer.from(b).toString('latin1')),
        fc.constantFrom(
          '{"sessionKey": "*"}',
          '{"ttlSeconds": "9223372036854775807"}',
          '{"attributes": {"a": "!!notbase64"}}',
          '{"setAttributes": [1,2,3]}',
          '{"expectedVersion": -1}',
          '{"__proto__": {"polluted": true}}',
          '[]',
          'null',
          '"',
        ),
      );
      const target = fc.oneof(
        fc.constant({ method: 'POST', path: '/v1/sessions' }),
        sessionKey
          .filter((k) => k.length < 4000)
          .chain((k) =>
            fc.constantFrom(
              { method: 'PATCH', path: `/v1/sessions/${encodeURIComponent(k)}` },
              { method: 'POST', path: `/v1/sessions/${encodeURIComponent(k)}:touch` },
              { method: 'GET', path: `/v1/sessions/${encodeURIComponent(k)}?touch=true` },
              { method: 'DELETE', path: `/v1/sessions/${encodeURIComponent(k)}` },
              { method: 'PUT', path: `/v1/sessions/${encodeURIComponent(k)}` },
              { method: 'POST', path: '/v1/sessions/%E0%A4%A' },
            ),
          ),
      );
      await fc.assert(
        fc.asyncProperty(target, body, async ({ method, path }, text) => {
          const response = await fetch(`${httpUrl}${path}`, {
            method,
            ...(method === 'GET' ? {} : { body: text }),
          });
          const reply = await response.text();
          answers[response.status] = (answers[response.status] ?? 0) + 1;
          if (response.status === 200 && method === 'POST' && path === '/v1/sessions')
            issuedKeys.add((JSON.parse(reply) as { sessionKey: string }).sessionKey);
          assert.ok(
            response.status < 500,
            `${method} ${path} answered ${response.status}: ${reply}`,
          );
        }),
        { numRuns: RUNS * 3 },
      );
      // A body declared far over the limit is refused before it is read.
      const huge = await new Promise<number>((resolve, reject) => {
        const socket = tcpConnect(Number(new URL(httpUrl).port), '127.0.0.1');
        let text = '';
        socket.on('error', reject);
        socket.on('data', (d) => {
          text += d.toString();
        });
        socket.on('close', () => resolve(Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1])));
        socket.setTimeout(5000, () => socket.destroy());
        socket.write(
          'POST /v1/sessions HTTP/1.1\r\nHost: x\r\nContent-Length: 2147483648\r\nConnection: close\r\n\r\n{',
        );
      });
      answers[huge] = (answers[huge] ?? 0) + 1;
      assert.equal(huge, 413);
      console.log(`hostile-input http figures (${transport}): ${JSON.stringify(answers)}`);
    });

    it('afterwards: alive, SERVING, no unhandled rejections, bounded memory, no key in the logs', async () => {
      await sleep(200);
      const memory = rss.stop();
      assertAlive(service);
      assert.equal(await health.health(), 'SERVING');
      const { session_key } = await health.call('SetSession', {});
      issuedKeys.add(session_key);
      assertNoUnhandled(service);
      const failed = service.logs.filter((line) => line.msg === 'call failed');
      const logs = assertNoKeysInLogs([service], issuedKeys);
      console.log(
        `hostile-input figures (${transport}): ${JSON.stringify({ answers: codes, rss: memory, callFailedLogLines: failed.length, logLines: logs.lines, keysCheckedAgainstLogs: logs.keys })}`,
      );
      assert.deepEqual(failed.slice(0, 3), [], 'an unexpected error (INTERNAL) was logged');
      assert.ok(memory.growthMb < 200, `RSS grew ${memory.growthMb} MB`);
      assert.ok(issuedKeys.size > 0);
    });
  });
}
