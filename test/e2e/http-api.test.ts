import assert from 'node:assert/strict';
import { createServer, request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { CallScope } from '../../src/call-scope.ts';
import { httpCallScope } from '../../src/http/http-server.ts';
import { openApiDocument } from '../../src/http/openapi.ts';
import { waitFor } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

interface Reply {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked field by field
  body: any;
  headers: Headers;
}

const b64 = (text: string | Uint8Array) => Buffer.from(text).toString('base64');

for (const storeName of ['memory', 'redis'] as const) {
  describe(`HTTP/JSON API on the ${storeName} store`, () => {
    let redis: TestRedis | undefined;
    let server: TestServer;

    const call = async (
      method: string,
      path: string,
      body?: unknown,
      headers: Record<string, string> = {},
    ) => {
      const response = await fetch(`${server.httpUrl}${path}`, {
        method,
        headers: { 'content-type': 'application/json', ...headers },
        ...(body === undefined
          ? {}
          : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await response.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {}
      return { status: response.status, body: parsed, headers: response.headers } as Reply;
    };

    before(async () => {
      redis = storeName === 'redis' ? await startRedis() : undefined;
      server = await startServer({
        ...(redis && { redisPort: redis.port }),
        env: { SESSION_MAX_BYTES: '65536' },
      });
    });

    after(async () => {
      await server.close();
      await redis?.dispose();
    });

    it('every route works, with base64 payloads that round-trip byte for byte', async () => {
      const binary = new Uint8Array([0, 255, 128, 10, 13]);
      const created = await call('POST', '/v1/sessions', {
        fleetListRequest: b64('{"pickup":"A"}'),
        fleetListResponse: b64(binary),
        attributes: { rider: b64('r-1') },
        ttlSeconds: '120',
      });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      const key: string = created.body.sessionKey;
      assert.match(key, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(created.body.version, '1');
      assert.match(created.body.expiresAtUnixMs, /^\d+$/);

      const got = await call('GET', `/v1/sessions/${key}`);
      assert.equal(got.status, 200);
      assert.deepEqual(Buffer.from(got.body.fleetListResponse, 'base64'), Buffer.from(binary));
      assert.equal(Buffer.from(got.body.fleetListRequest, 'base64').toString(), '{"pickup":"A"}');
      assert.deepEqual(got.body.attributes, { rider: b64('r-1') });
      assert.equal(got.body.ttlSeconds, '120');

      const patched = await call('PATCH', `/v1/sessions/${key}`, {
        setAttributes: { order: b64('o-9') },
        removeAttributes: ['rider'],
        expectedVersion: '1',
      });
      assert.equal(patched.status, 200, JSON.stringify(patched.body));
      assert.equal(patched.body.version, '2');
      assert.deepEqual(patched.body.attributes, { order: b64('o-9') });

      const touched = await call('POST', `/v1/sessions/${key}:touch`, { ttlSeconds: 600 });
      assert.equal(touched.status, 200);
      assert.ok(Number(touched.body.expiresAtUnixMs) > Date.now() + 590_000);

      const read = await call('GET', `/v1/sessions/${key}?touch=true`);
      assert.equal(read.body.ttlSeconds, '600');

      const stale = await call('POST', `/v1/sessions/${key}:consume`, { expectedVersion: '1' });
      assert.equal(stale.status, 409, JSON.stringify(stale.body));
      assert.equal(stale.body.code, 'ABORTED');
      const consumed = await call('POST', `/v1/sessions/${key}:consume`, { expectedVersion: 2 });
      assert.equal(consumed.status, 200);
      assert.equal(consumed.body.sessionKey, key);
      assert.equal((await call('POST', `/v1/sessions/${key}:consume`)).status, 404);

      await call('POST', '/v1/sessions', { sessionKey: 'order:42' });
      const kept = await call('DELETE', '/v1/sessions/order:42', { expectedVersion: '5' });
      assert.equal(kept.status, 409, JSON.stringify(kept.body));
      assert.deepEqual((await call('DELETE', '/v1/sessions/order:42')).body, { deleted: true });
      assert.deepEqual((await call('DELETE', '/v1/sessions/order:42')).body, { deleted: false });
    });

    it('an Idempotency-Key makes a repeat return the first outcome; another request under it is a 422', async () => {
      const once = { 'idempotency-key': `http-${Date.now()}-${Math.random()}` };
      const body = { fleetListResponse: b64('quote'), ttlSeconds: '60' };
      const created = await call('POST', '/v1/sessions', body, once);
      assert.equal(created.status, 200, JSON.stringify(created.body));
      assert.deepEqual((await call('POST', '/v1/sessions', body, once)).body, created.body);
      const fresh = await call('POST', '/v1/sessions', body);
      assert.notEqual(fresh.body.sessionKey, created.body.sessionKey);

      const reused = await call('POST', '/v1/sessions', { ...body, ttlSeconds: '61' }, once);
      assert.equal(reused.status, 422, JSON.stringify(reused.body));
      assert.equal(reused.body.code, 'FAILED_PRECONDITION');
      assert.match(reused.body.message, /^idempotency-key: was used for a different request/);

      const key = created.body.sessionKey;
      const consume = { 'idempotency-key': `${once['idempotency-key']}-consume` };
      const consumed = await call('POST', `/v1/sessions/${key}:consume`, undefined, consume);
      assert.equal(consumed.status, 200);
      const again = await call('POST', `/v1/sessions/${key}:consume`, undefined, consume);
      assert.deepEqual(again.body, consumed.body, 'the repeat gets the consumed data');
      assert.equal((await call('GET', `/v1/sessions/${key}`)).status, 404);

      const bad = await call('POST', '/v1/sessions', body, { 'idempotency-key': 'has space' });
      assert.equal(bad.status, 400);
      assert.match(bad.body.message, /^idempotency-key:/);
    });

    it('errors carry the HTTP status and the same stable code as gRPC, naming the field', async () => {
      const cases: Array<[Promise<Reply>, number, string, RegExp]> = [
        [call('GET', '/v1/sessions/absent'), 404, 'NOT_FOUND', /^session_key:/],
        [call('GET', '/v1/sessions/bad%20key'), 400, 'INVALID_ARGUMENT', /^session_key:/],
        [
          call('POST', '/v1/sessions', { ttlSeconds: -1 }),
          400,
          'INVALID_ARGUMENT',
          /^ttl_seconds:/,
        ],
        [
          call('POST', '/v1/sessions', { fleetListRequest: 'not base64!' }),
          400,
          'INVALID_ARGUMENT',
          /^fleet_list_request:/,
        ],
        [
          call('POST', '/v1/sessions', { unknownField: 1 }),
          400,
          'INVALID_ARGUMENT',
          /^body:|unknown_field/,
        ],
        [call('POST', '/v1/sessions', '{not json'), 400, 'INVALID_ARGUMENT', /^body:/],
        [
          call('POST', '/v1/sessions', { fleetListRequest: b64(Buffer.alloc(70_000)) }),
          413,
          'RESOURCE_EXHAUSTED',
          /^session:/,
        ],
        [
          call('POST', '/v1/sessions', { fleetListRequest: b64(Buffer.alloc(300_000)) }),
          413,
          'RESOURCE_EXHAUSTED',
          /^body:/,
        ],
        [call('PUT', '/v1/sessions/x'), 405, 'UNIMPLEMENTED', /PUT/],
        [call('POST', '/v1/sessions/x:explode'), 404, 'NOT_FOUND', /:touch, :consume or :rotate/],
      ];
      for (const [reply, status, code, message] of cases) {
        const { status: actual, body } = await reply;
        assert.equal(actual, status, JSON.stringify(body));
        assert.equal(body.code, code);
        assert.match(body.message, message);
      }
      const created = await call('POST', '/v1/sessions', {});
      await call('PATCH', `/v1/sessions/${created.body.sessionKey}`, { expectedVersion: '1' });
      const conflict = await call('PATCH', `/v1/sessions/${created.body.sessionKey}`, {
        expectedVersion: '1',
      });
      assert.equal(conflict.status, 409);
      assert.equal(conflict.body.code, 'ABORTED');
      assert.match(conflict.body.message, /^expected_version:/);
    });

    it('echoes x-request-id, or makes one', async () => {
      const given = await call('GET', '/v1/sessions/absent', undefined, {
        'x-request-id': 'trace-123',
      });
      assert.equal(given.headers.get('x-request-id'), 'trace-123');
      const made = await call('GET', '/v1/sessions/absent');
      assert.match(made.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/);
    });

    it('probes: /healthz and /readyz answer 200 while the store answers', async () => {
      assert.equal((await call('GET', '/healthz')).status, 200);
      assert.equal((await call('GET', '/readyz')).status, 200);
    });

    it('every operation in /openapi.json is served, and the served document is the source', async () => {
      const served = await call('GET', '/openapi.json');
      assert.deepEqual(served.body, JSON.parse(JSON.stringify(openApiDocument)));
      const created = await call('POST', '/v1/sessions', {});
      const key = created.body.sessionKey as string;
      let operations = 0;
      for (const [template, item] of Object.entries(openApiDocument.paths)) {
        for (const verb of Object.keys(item)) {
          const path = template.replace('{key}', key);
          const reply = await call(
            verb.toUpperCase(),
            path,
            verb === 'get' || verb === 'delete' ? undefined : {},
          );
          assert.ok(
            reply.status !== 405 &&
              !(reply.status === 404 && /no route/.test(reply.body?.message ?? '')),
            `${verb} ${template} is routed (${reply.status})`,
          );
          operations++;
        }
      }
      assert.equal(operations, 13);
      const routes = Object.entries(openApiDocument.paths).flatMap(([p, item]) =>
        Object.keys(item).map((verb) => `${verb} ${p}`),
      );
      assert.deepEqual(routes.sort(), [
        'delete /v1/sessions/{key}',
        'get /healthz',
        'get /metrics',
        'get /openapi.json',
        'get /readyz',
        'get /v1/sessions/{key}',
        'patch /v1/sessions/{key}',
        'post /v1/owner-sessions:list',
        'post /v1/owner-sessions:revoke',
        'post /v1/sessions',
        'post /v1/sessions/{key}:consume',
        'post /v1/sessions/{key}:rotate',
        'post /v1/sessions/{key}:touch',
      ]);
    });
  });
}

describe('/readyz follows Redis', () => {
  it('flips to 503 when Redis stops and back to 200 when it returns', async () => {
    const redis = await startRedis();
    const server = await startServer({ redisPort: redis.port });
    try {
      const ready = async () => (await fetch(`${server.httpUrl}/readyz`)).status;
      assert.equal(await ready(), 200);
      await redis.stop();
      await waitFor('readyz 503', async () => (await ready()) === 503, 3000);
      assert.equal((await fetch(`${server.httpUrl}/healthz`)).status, 200, 'still alive');
      await redis.restart();
      await waitFor('readyz 200', async () => (await ready()) === 200, 5000);
    } finally {
      await server.close();
      await redis.dispose();
    }
  });
});

describe('HTTP/JSON is strict where the proto3 JSON mapping is, and accepts what it accepts', () => {
  let server: TestServer;
  const call = async (method: string, path: string, body?: string) => {
    const response = await fetch(`${server.httpUrl}${path}`, {
      method,
      ...(body === undefined ? {} : { body }),
    });
    const text = await response.text();
    return { status: response.status, headers: response.headers, body: JSON.parse(text) };
  };

  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('int64 fields take JSON numbers and strings; bytes take URL-safe base64 without padding', async () => {
    const created = await call(
      'POST',
      '/v1/sessions',
      JSON.stringify({
        ttlSeconds: 900,
        fleetListRequest: Buffer.from([251, 255]).toString('base64url'),
      }),
    );
    assert.equal(created.status, 200, JSON.stringify(created.body));
    const key = created.body.sessionKey as string;
    const read = await call('GET', `/v1/sessions/${key}`);
    assert.equal(read.body.ttlSeconds, '900');
    assert.equal(read.body.fleetListRequest, Buffer.from([251, 255]).toString('base64'));
    const patched = await call(
      'PATCH',
      `/v1/sessions/${key}`,
      JSON.stringify({ expected_version: 1, ttl_seconds: '600' }),
    );
    assert.equal(patched.status, 200, JSON.stringify(patched.body));
    assert.equal(patched.body.ttlSeconds, '600');
  });

  it('a bytes field that is not base64, a loose flag or an unknown parameter is a 400 naming it', async () => {
    const created = await call('POST', '/v1/sessions', '{}');
    const key = created.body.sessionKey as string;
    const cases: Array<
      [Promise<{ status: number; body: { code: string; message: string } }>, RegExp]
    > = [
      [
        call('PATCH', `/v1/sessions/${key}`, '{"setAttributes": {"orderId": "o-1"}}'),
        /^set_attributes: the value of "orderId"/,
      ],
      [call('POST', '/v1/sessions', '{"fleetListResponse": "a+b_"}'), /^fleet_list_response:/],
      [call('GET', `/v1/sessions/${key}?touch=yes`), /^touch: expected true or false/],
      [call('GET', `/v1/sessions/${key}?touch=1`), /^touch:/],
      [call('GET', `/v1/sessions/${key}?tuch=true`), /^query: unknown parameter "tuch"/],
      [call('POST', '/v1/sessions', '{"ttlSeconds": 1.5}'), /^ttl_seconds: expected an integer/],
      [
        call('POST', '/v1/sessions', '{"ttlSeconds": 1, "ttl_seconds": 1}'),
        /^ttl_seconds: given twice/,
      ],
      [call('POST', '/v1/sessions', '[]'), /^body: expected a JSON object/],
    ];
    for (const [reply, message] of cases) {
      const { status, body } = await reply;
      assert.equal(status, 400, JSON.stringify(body));
      assert.equal(body.code, 'INVALID_ARGUMENT');
      assert.match(body.message, message);
    }
    assert.equal((await call('GET', `/v1/sessions/${key}?touch=false`)).status, 200);
  });

  it('a wrong verb is a 405 whose Allow header lists the verbs the path takes', async () => {
    const cases: Array<[string, string, string]> = [
      ['PUT', '/v1/sessions/some-key', 'GET, PATCH, DELETE'],
      ['POST', '/v1/sessions/some-key:touch:x', ''],
      ['GET', '/v1/sessions', 'POST'],
      ['DELETE', '/v1/sessions', 'POST'],
      ['POST', '/healthz', 'GET'],
      ['DELETE', '/metrics', 'GET'],
    ];
    for (const [verb, path, allow] of cases) {
      const reply = await call(verb, path);
      if (allow === '') {
        assert.equal(reply.status, 404, `${verb} ${path}`);
        continue;
      }
      assert.equal(reply.status, 405, `${verb} ${path}`);
      assert.equal(reply.headers.get('allow'), allow, `${verb} ${path}`);
      assert.equal(reply.body.code, 'UNIMPLEMENTED');
    }
  });
});

describe("an HTTP call's scope", () => {
  it('is cancelled once the client closes the connection before the reply, and once the reply is sent', async () => {
    const scopes: CallScope[] = [];
    const held: Array<() => void> = [];
    const server = createServer((request, response) => {
      scopes.push(httpCallScope(request, response));
      held.push(() => response.end('done'));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as AddressInfo;
    try {
      const gone = httpRequest({ port, host: '127.0.0.1', path: '/' });
      gone.on('error', () => {});
      gone.end();
      await waitFor('the first request', async () => scopes.length === 1);
      assert.equal(scopes[0]?.cancelled, false);
      assert.equal(scopes[0]?.deadlineMs, Number.POSITIVE_INFINITY);
      gone.destroy();
      await waitFor(
        'the closed connection to cancel the scope',
        async () => scopes[0]?.cancelled === true,
      );

      const answered = fetch(`http://127.0.0.1:${port}/`).then((r) => r.text());
      await waitFor('the second request', async () => scopes.length === 2);
      assert.equal(scopes[1]?.cancelled, false);
      held[1]?.();
      assert.equal(await answered, 'done');
      assert.equal(scopes[1]?.cancelled, true);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
