import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, status } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import {
  Authenticator,
  digestToken,
  METHOD_PERMISSION,
  type Permission,
  requiredPermission,
  type SessionMethod,
} from '../../src/auth.ts';
import { ConfigError, insecureExposure, loadConfig } from '../../src/config.ts';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { type RawClient, rawClient, rejectsWithStatus } from '../support/grpc.ts';
import { REFLECTION_PROTO_FILE } from '../support/proto.ts';
import { startServer, type TestServer } from '../support/server.ts';

const WRITER = 'writer-token-0123456789abcdef';
const READER = 'reader-token-0123456789abcdef';
const ADMIN = 'admin-token-0123456789abcdef';
const AUTH_TOKENS = `${WRITER}:write, ${READER}:read`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

function grantsFor(entries: Array<[string, Permission]>) {
  return entries.map(([token, permission]) => ({ digest: digestToken(token), permission }));
}

function throwsCode(run: () => void, code: ErrorCode, message: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof SessionError);
    assert.equal(error.code, code);
    assert.match(error.message, message);
    return true;
  });
}

describe('the permission table', () => {
  it('read is GetSession without touch; the owner calls are admin; everything else, GetSession with touch included, is write', () => {
    assert.deepEqual(METHOD_PERMISSION, {
      GetSession: 'read',
      SetSession: 'write',
      UpdateSession: 'write',
      TouchSession: 'write',
      ConsumeSession: 'write',
      DeleteSession: 'write',
      RotateSessionKey: 'write',
      ListSessions: 'admin',
      RevokeSessions: 'admin',
    });
    assert.equal(requiredPermission('GetSession', false), 'read');
    assert.equal(requiredPermission('GetSession', true), 'write');
    assert.equal(requiredPermission('TouchSession', true), 'write');
  });

  it('the docs/security.md table lists every method with its permission', async () => {
    const { readFileSync } = await import('node:fs');
    const doc = readFileSync(new URL('../../docs/security.md', import.meta.url), 'utf8');
    for (const [method, permission] of Object.entries(METHOD_PERMISSION)) {
      const row = new RegExp(`\\| \`${method}\`[^\\n]*\\| \`${permission}\` \\|`);
      assert.ok(
        row.test(doc),
        `docs/security.md: the permission table lacks ${method} → ${permission}`,
      );
    }
  });
});

describe('Authenticator', () => {
  const auth = new Authenticator(
    grantsFor([
      [WRITER, 'write'],
      [READER, 'read'],
      [ADMIN, 'admin'],
    ]),
  );

  it('without tokens every call passes', () => {
    const open = new Authenticator(undefined);
    assert.equal(open.enabled, false);
    open.check(undefined, 'DeleteSession');
  });

  it('a missing, malformed, repeated or unknown token is UNAUTHENTICATED naming the header', () => {
    const cases: Array<[string | string[] | undefined, RegExp]> = [
      [undefined, /^authorization: missing/],
      [[], /^authorization: missing/],
      [`Basic ${WRITER}`, /^authorization: expected "Bearer <token>"/],
      [WRITER, /^authorization: expected "Bearer <token>"/],
      ['Bearer ', /^authorization: expected "Bearer <token>"/],
      ['Bearer a b', /^authorization: expected "Bearer <token>"/],
      [[`Bearer ${WRITER}`, `Bearer ${WRITER}`], /^authorization: sent more than once/],
      ['Bearer not-a-configured-token-000', /^authorization: unknown token$/],
      [`Bearer ${WRITER}x`, /^authorization: unknown token$/],
      [`Bearer ${WRITER.slice(0, -1)}`, /^authorization: unknown token$/],
    ];
    for (const [header, message] of cases) {
      throwsCode(() => auth.check(header, 'GetSession'), ErrorCode.Unauthenticated, message);
    }
  });

  it('the scheme is case-insensitive, the token is not', () => {
    auth.check(`bearer ${READER}`, 'GetSession');
    auth.check(`BEARER ${READER}`, 'GetSession');
    throwsCode(
      () => auth.check(`Bearer ${READER.toUpperCase()}`, 'GetSession'),
      ErrorCode.Unauthenticated,
      /unknown token/,
    );
  });

  it('a read token may only GetSession without touch; a write token everything but the owner calls; an admin token everything', () => {
    for (const method of Object.keys(METHOD_PERMISSION) as SessionMethod[]) {
      auth.check(`Bearer ${ADMIN}`, method, true);
      auth.check(`Bearer ${ADMIN}`, method, false);
      const needed = METHOD_PERMISSION[method];
      if (needed === 'admin') {
        for (const [token, granted] of [
          [WRITER, 'write'],
          [READER, 'read'],
        ])
          throwsCode(
            () => auth.check(`Bearer ${token}`, method),
            ErrorCode.PermissionDenied,
            new RegExp(`^authorization: the token grants "${granted}"; ${method} needs "admin"$`),
          );
        continue;
      }
      auth.check(`Bearer ${WRITER}`, method, true);
      auth.check(`Bearer ${WRITER}`, method, false);
      if (method === 'GetSession') auth.check(`Bearer ${READER}`, method, false);
      else
        throwsCode(
          () => auth.check(`Bearer ${READER}`, method),
          ErrorCode.PermissionDenied,
          new RegExp(`^authorization: the token grants "read"; ${method} needs "write"$`),
        );
    }
    throwsCode(
      () => auth.check(`Bearer ${READER}`, 'GetSession', true),
      ErrorCode.PermissionDenied,
      /GetSession with touch needs "write"/,
    );
  });

  it('no error message contains a token', () => {
    const messages: string[] = [];
    for (const header of [`Bearer ${READER}`, `Bearer ${WRITER}zz`, `Basic ${WRITER}`]) {
      try {
        auth.check(header, 'SetSession');
      } catch (error) {
        messages.push((error as Error).message);
      }
    }
    assert.equal(messages.length, 3);
    for (const message of messages) {
      assert.ok(!message.includes(READER) && !message.includes(WRITER), message);
    }
  });
});

describe('AUTH_TOKENS and AUTH_TOKENS_FILE', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sessionmanager-auth-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('AUTH_TOKENS is a comma list of token:permission, kept as digests only', () => {
    const config = loadConfig({ AUTH_TOKENS });
    assert.deepEqual(
      config.auth?.tokens.map((t) => t.permission),
      ['write', 'read'],
    );
    assert.deepEqual(
      loadConfig({ AUTH_TOKENS: `${ADMIN}:admin` }).auth?.tokens.map((t) => t.permission),
      ['admin'],
    );
    assert.deepEqual(config.auth?.tokens[0]?.digest, digestToken(WRITER));
    assert.ok(!JSON.stringify(config).includes(WRITER), 'the config holds no token');
    assert.equal(loadConfig({}).auth, undefined);
    assert.equal(loadConfig({ AUTH_TOKENS: '' }).auth, undefined);
  });

  it('AUTH_TOKENS_FILE has one entry a line; blank lines and comments are skipped', () => {
    const file = join(dir, 'tokens');
    writeFileSync(file, `# callers\n${WRITER}:write\r\n\n  ${READER}:read  \n`);
    const config = loadConfig({ AUTH_TOKENS_FILE: file });
    assert.deepEqual(
      config.auth?.tokens.map((t) => t.permission),
      ['write', 'read'],
    );
    assert.throws(
      () => loadConfig({ AUTH_TOKENS_FILE: join(dir, 'absent') }),
      /AUTH_TOKENS_FILE=".*absent": cannot read it \(ENOENT\)/,
    );
    writeFileSync(join(dir, 'empty'), '# nothing\n');
    assert.throws(
      () => loadConfig({ AUTH_TOKENS_FILE: join(dir, 'empty') }),
      /AUTH_TOKENS_FILE: lists no token/,
    );
    assert.throws(
      () => loadConfig({ AUTH_TOKENS, AUTH_TOKENS_FILE: file }),
      /AUTH_TOKENS and AUTH_TOKENS_FILE are both set/,
    );
  });

  it('the start warns when the server listens beyond loopback with neither TLS nor tokens', () => {
    assert.equal(insecureExposure(loadConfig({})), true, 'HOST defaults to 0.0.0.0');
    assert.equal(insecureExposure(loadConfig({ HOST: '10.0.0.5' })), true);
    assert.equal(insecureExposure(loadConfig({ AUTH_TOKENS })), false);
    const tls = { cert: Buffer.alloc(0), key: Buffer.alloc(0), clientCa: undefined };
    assert.equal(insecureExposure({ host: '0.0.0.0', tls, auth: undefined }), false);
    for (const HOST of ['127.0.0.1', '127.0.0.2', '::1', 'localhost'])
      assert.equal(insecureExposure(loadConfig({ HOST })), false, HOST);
  });

  it('bad entries stop the start with a message naming the entry, never the token', () => {
    const cases: Array<[string, RegExp]> = [
      [
        `${WRITER}:root`,
        /AUTH_TOKENS: entry 1: expected token:permission with permission read, write or admin/,
      ],
      [`${WRITER}`, /AUTH_TOKENS: entry 1: expected token:permission/],
      [
        `${READER}:read,short:write`,
        /AUTH_TOKENS: entry 2: the token has 5 characters; use at least 16/,
      ],
      [`${READER}:read,${READER}:write`, /AUTH_TOKENS: entry 2: the same token is listed twice/],
      [`with space 0123456789:read`, /AUTH_TOKENS: entry 1: a token is made of/],
    ];
    for (const [value, message] of cases) {
      assert.throws(
        () => loadConfig({ AUTH_TOKENS: value }),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError);
          assert.match(error.message, message);
          assert.ok(!error.message.includes(READER) && !error.message.includes(WRITER));
          assert.ok(!error.message.includes('with space'));
          return true;
        },
      );
    }
  });
});

for (const transport of ['lean', 'grpc-js'] as const) {
  describe(`bearer tokens on gRPC, ${transport} transport`, () => {
    let server: TestServer;
    let client: RawClient;

    before(async () => {
      server = await startServer({ env: { GRPC_TRANSPORT: transport, AUTH_TOKENS } });
      client = rawClient(server.address);
    });

    after(async () => {
      client.close();
      await server.close();
    });

    it('a call without a token, or with an unknown one, is UNAUTHENTICATED and does nothing', async () => {
      const request = { session_key: `${transport}-no-token`, attributes: { a: Buffer.from('1') } };
      await rejectsWithStatus(
        client.call('SetSession', request),
        status.UNAUTHENTICATED,
        /^authorization: missing/,
      );
      await rejectsWithStatus(
        client.call('SetSession', request, { metadata: bearer('unknown-token-0123456789') }),
        status.UNAUTHENTICATED,
        /^authorization: unknown token$/,
      );
      await rejectsWithStatus(
        client.call('SetSession', request, { metadata: { authorization: WRITER } }),
        status.UNAUTHENTICATED,
        /^authorization: expected "Bearer <token>"/,
      );
      await rejectsWithStatus(
        client.call(
          'GetSession',
          { session_key: request.session_key },
          { metadata: bearer(WRITER) },
        ),
        status.NOT_FOUND,
        /^session_key:/,
      );
    });

    it('a write token may call every RPC on a session it holds the key of', async () => {
      const metadata = bearer(WRITER);
      const key = `${transport}-writer`;
      const set = await client.call('SetSession', { session_key: key }, { metadata });
      assert.equal(set.version, 1);
      await client.call('GetSession', { session_key: key, touch: true }, { metadata });
      await client.call(
        'UpdateSession',
        { session_key: key, set_attributes: { a: Buffer.from('1') } },
        { metadata },
      );
      await client.call('TouchSession', { session_key: key }, { metadata });
      const consumed = await client.call('ConsumeSession', { session_key: key }, { metadata });
      assert.deepEqual(consumed.attributes, { a: Buffer.from('1') });
      const deleted = await client.call('DeleteSession', { session_key: key }, { metadata });
      assert.equal(deleted.deleted, false);
    });

    it('a read token may GetSession without touch and nothing else (PERMISSION_DENIED)', async () => {
      const key = `${transport}-reader`;
      await client.call(
        'SetSession',
        { session_key: key, ttl_seconds: 60 },
        { metadata: bearer(WRITER) },
      );
      const metadata = bearer(READER);
      const got = await client.call('GetSession', { session_key: key }, { metadata });
      assert.equal(got.version, 1);
      const denied = /^authorization: the token grants "read"; \w+( with touch)? needs "write"$/;
      await rejectsWithStatus(
        client.call('GetSession', { session_key: key, touch: true }, { metadata }),
        status.PERMISSION_DENIED,
        denied,
      );
      await rejectsWithStatus(
        client.call('SetSession', { session_key: key }, { metadata }),
        status.PERMISSION_DENIED,
        denied,
      );
      await rejectsWithStatus(
        client.call('UpdateSession', { session_key: key }, { metadata }),
        status.PERMISSION_DENIED,
        denied,
      );
      await rejectsWithStatus(
        client.call('TouchSession', { session_key: key }, { metadata }),
        status.PERMISSION_DENIED,
        denied,
      );
      await rejectsWithStatus(
        client.call('ConsumeSession', { session_key: key }, { metadata }),
        status.PERMISSION_DENIED,
        denied,
      );
      await rejectsWithStatus(
        client.call('DeleteSession', { session_key: key }, { metadata }),
        status.PERMISSION_DENIED,
        denied,
      );
      const after = await client.call('GetSession', { session_key: key }, { metadata });
      assert.equal(after.version, 1, 'nothing the reader tried changed the session');
      assert.equal(
        after.expires_at_unix_ms,
        got.expires_at_unix_ms,
        'the refused touch did not extend it',
      );
    });

    it('health and reflection stay open for orchestrator probes and tools', async () => {
      assert.equal(await client.health(), 'SERVING');
      assert.equal(await client.health('sessionmanager.v1.SessionManagerService'), 'SERVING');
      assert.ok(
        (await listServices(server.address)).includes('sessionmanager.v1.SessionManagerService'),
      );
    });

    it('refusals are counted in the metrics by code', async () => {
      const text = await server.server.metrics.registry.metrics();
      assert.match(
        text,
        /sessionmanager_calls_total\{transport="grpc",method="SetSession",code="UNAUTHENTICATED"\} [1-9]/,
      );
      assert.match(
        text,
        /sessionmanager_calls_total\{transport="grpc",method="SetSession",code="PERMISSION_DENIED"\} [1-9]/,
      );
    });
  });
}

describe('the lean transport refuses before reading the body', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ env: { AUTH_TOKENS } });
  });
  after(() => server.close());

  it('a call without a token that declares a large message and never sends it is refused at once', async () => {
    const session = connect(`http://${server.address}`);
    try {
      const stream = session.request({
        ':method': 'POST',
        ':path': '/sessionmanager.v1.SessionManagerService/SetSession',
        'content-type': 'application/grpc',
        te: 'trailers',
      });
      // A 5-byte prefix announcing 512 KiB, then nothing: a server that read
      // the body before checking the token would wait here until the deadline.
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(512 * 1024, 1);
      stream.write(prefix);
      const started = performance.now();
      const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        stream.once('response', resolve);
        stream.once('error', reject);
        setTimeout(() => reject(new Error('no answer within 2 s')), 2000).unref();
      });
      assert.equal(headers['grpc-status'], String(status.UNAUTHENTICATED));
      assert.match(String(headers['grpc-message']), /^authorization: missing/);
      assert.ok(performance.now() - started < 1000);
      stream.destroy();
    } finally {
      session.destroy();
    }
  });
});

describe('bearer tokens on the HTTP/JSON API', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ env: { AUTH_TOKENS } });
  });
  after(() => server.close());

  const call = async (
    method: string,
    path: string,
    headers: Record<string, string> = {},
    body?: unknown,
  ) => {
    const response = await fetch(`${server.httpUrl}${path}`, {
      method,
      headers: { 'content-type': 'application/json', ...headers },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await response.text();
    let parsed: unknown = text;
    try {
      parsed = JSON.parse(text);
    } catch {}
    // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked field by field
    return { status: response.status, body: parsed as any, headers: response.headers };
  };

  it('no token: 401 with WWW-Authenticate and the {code, message} shape', async () => {
    const reply = await call('POST', '/v1/sessions', {}, { ttlSeconds: '60' });
    assert.equal(reply.status, 401);
    assert.equal(reply.headers.get('www-authenticate'), 'Bearer');
    assert.equal(reply.body.code, 'UNAUTHENTICATED');
    assert.match(reply.body.message, /^authorization: missing/);
    const unknown = await call('GET', '/v1/sessions/k1', {
      authorization: 'Bearer unknown-token-0123456789',
    });
    assert.equal(unknown.status, 401);
    assert.match(unknown.body.message, /^authorization: unknown token$/);
  });

  it('a read token: GET works, GET ?touch=true and every write is 403', async () => {
    const created = await call('POST', '/v1/sessions', bearer(WRITER), {
      sessionKey: 'http-reader',
    });
    assert.equal(created.status, 200);
    const read = bearer(READER);
    assert.equal((await call('GET', '/v1/sessions/http-reader', read)).status, 200);
    for (const [verb, path] of [
      ['GET', '/v1/sessions/http-reader?touch=true'],
      ['POST', '/v1/sessions'],
      ['PATCH', '/v1/sessions/http-reader'],
      ['POST', '/v1/sessions/http-reader:touch'],
      ['POST', '/v1/sessions/http-reader:consume'],
      ['DELETE', '/v1/sessions/http-reader'],
    ] as const) {
      const reply = await call(
        verb,
        path,
        read,
        verb === 'GET' || verb === 'DELETE' ? undefined : {},
      );
      assert.equal(reply.status, 403, `${verb} ${path}`);
      assert.equal(reply.body.code, 'PERMISSION_DENIED');
      assert.match(reply.body.message, /^authorization: the token grants "read"/);
    }
    const write = bearer(WRITER);
    assert.equal((await call('GET', '/v1/sessions/http-reader?touch=true', write)).status, 200);
    assert.equal((await call('POST', '/v1/sessions/http-reader:consume', write)).status, 200);
  });

  it('/healthz, /readyz, /metrics and /openapi.json need no token', async () => {
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
      const reply = await call('GET', path);
      assert.equal(reply.status, 200, path);
    }
    const metrics = await call('GET', '/metrics');
    assert.match(
      metrics.body,
      /sessionmanager_calls_total\{transport="http",method="SetSession",code="UNAUTHENTICATED"\} 1/,
    );
  });
});

/** The service names server reflection lists, without credentials. */
async function listServices(address: string): Promise<string[]> {
  const reflection = protoLoader.loadSync(REFLECTION_PROTO_FILE, {
    keepCase: true,
    defaults: true,
  });
  const info = (reflection['grpc.reflection.v1.ServerReflection'] as protoLoader.ServiceDefinition)
    .ServerReflectionInfo;
  assert.ok(info);
  const client = new Client(address, credentials.createInsecure());
  try {
    const stream = client.makeBidiStreamRequest(
      info.path,
      info.requestSerialize,
      info.responseDeserialize,
    );
    const names = new Promise<string[]>((resolve, reject) => {
      stream.once(
        'data',
        (message: { list_services_response?: { service: Array<{ name: string }> } }) =>
          resolve(message.list_services_response?.service.map((s) => s.name) ?? []),
      );
      stream.once('error', reject);
    });
    stream.write({ list_services: '' });
    const result = await names;
    stream.end();
    return result;
  } finally {
    client.close();
  }
}
