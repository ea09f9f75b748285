import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { createClient, SessionError } from '@sessionmanager/client';
import { makePki, type TestPki } from '../support/certs.ts';
import { runCli } from '../support/cli.ts';
import {
  type RawClient,
  rawClient,
  rejectsWithStatus,
  STORE_TRANSPORT_MATRIX,
} from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

const WRITER = 'rotation-writer-0123456789';
const READER = 'rotation-reader-0123456789';
const AUTH_TOKENS = `${WRITER}:write,${READER}:read`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The JSON of SetSession and RotateSessionKey over HTTP. */
interface Rotated {
  sessionKey: string;
  expiresAtUnixMs: string;
  version: string;
}

for (const [storeName, transport] of STORE_TRANSPORT_MATRIX) {
  describe(`RotateSessionKey on the ${storeName} store, ${transport} transport`, () => {
    let redis: TestRedis | undefined;
    let server: TestServer;
    let client: RawClient;
    const metadata = bearer(WRITER);

    before(async () => {
      redis = storeName === 'redis' ? await startRedis() : undefined;
      server = await startServer({
        ...(redis && { redisPort: redis.port }),
        env: { GRPC_TRANSPORT: transport, AUTH_TOKENS },
      });
      client = rawClient(server.address);
    });

    after(async () => {
      client.close();
      await server.close();
      await redis?.dispose();
    });

    it('moves the session to a new generated key; the old key is NOT_FOUND for every rpc', async () => {
      const oldKey = `rotate-${storeName}-${transport}`;
      await client.call(
        'SetSession',
        { session_key: oldKey, fleet_list_request: Buffer.from('quote'), ttl_seconds: 120 },
        { metadata },
      );
      const before = await client.call('GetSession', { session_key: oldKey }, { metadata });
      const rotated = await client.call('RotateSessionKey', { session_key: oldKey }, { metadata });
      assert.match(rotated.session_key, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(rotated.version, before.version);
      assert.equal(rotated.expires_at_unix_ms, before.expires_at_unix_ms);
      const moved = await client.call(
        'GetSession',
        { session_key: rotated.session_key },
        { metadata },
      );
      assert.deepEqual(moved.fleet_list_request, Buffer.from('quote'));
      assert.equal(moved.created_at_unix_ms, before.created_at_unix_ms);
      const gone = /^session_key: no such session/;
      for (const method of [
        'GetSession',
        'UpdateSession',
        'TouchSession',
        'ConsumeSession',
        'RotateSessionKey',
      ])
        await rejectsWithStatus(
          client.call(method, { session_key: oldKey }, { metadata }),
          status.NOT_FOUND,
          gone,
        );
      assert.equal(
        (await client.call('DeleteSession', { session_key: oldKey }, { metadata })).deleted,
        false,
      );
    });

    it('a malformed key is INVALID_ARGUMENT naming session_key', async () => {
      await rejectsWithStatus(
        client.call('RotateSessionKey', { session_key: '' }, { metadata }),
        status.INVALID_ARGUMENT,
        /^session_key: is required/,
      );
      await rejectsWithStatus(
        client.call('RotateSessionKey', { session_key: 'a b' }, { metadata }),
        status.INVALID_ARGUMENT,
        /^session_key: must be/,
      );
    });

    it('needs the write permission: a read token is PERMISSION_DENIED, no token UNAUTHENTICATED', async () => {
      const { session_key } = await client.call('SetSession', {}, { metadata });
      await rejectsWithStatus(
        client.call('RotateSessionKey', { session_key }, { metadata: bearer(READER) }),
        status.PERMISSION_DENIED,
        /^authorization: the token grants "read"; RotateSessionKey needs "write"$/,
      );
      await rejectsWithStatus(
        client.call('RotateSessionKey', { session_key }),
        status.UNAUTHENTICATED,
        /^authorization: missing/,
      );
      await client.call('GetSession', { session_key }, { metadata: bearer(READER) });
    });

    it('counts rotated events', async () => {
      const text = await server.server.metrics.registry.metrics();
      assert.match(text, /sessionmanager_session_events_total\{event="rotated"\} [1-9]/);
      assert.match(
        text,
        /sessionmanager_calls_total\{transport="grpc",method="RotateSessionKey",code="OK"\} [1-9]/,
      );
    });
  });
}

describe('RotateSessionKey over HTTP, through the TypeScript client and the CLI', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ env: { AUTH_TOKENS } });
  });
  after(() => server.close());

  it('POST /v1/sessions/{key}:rotate answers the new key; the old one is 404', async () => {
    const headers = { 'content-type': 'application/json', ...bearer(WRITER) };
    const created = await fetch(`${server.httpUrl}/v1/sessions`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ sessionKey: 'http-rotate', ttlSeconds: '90' }),
    }).then((r) => r.json() as Promise<Rotated>);
    const reply = await fetch(`${server.httpUrl}/v1/sessions/http-rotate:rotate`, {
      method: 'POST',
      headers,
    });
    assert.equal(reply.status, 200);
    const rotated = (await reply.json()) as Rotated;
    assert.match(rotated.sessionKey, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(rotated.version, '1');
    assert.equal(rotated.expiresAtUnixMs, created.expiresAtUnixMs);
    const old = await fetch(`${server.httpUrl}/v1/sessions/http-rotate`, { headers });
    assert.equal(old.status, 404);
    const fresh = await fetch(`${server.httpUrl}/v1/sessions/${rotated.sessionKey}`, { headers });
    assert.equal(fresh.status, 200);
    const denied = await fetch(`${server.httpUrl}/v1/sessions/${rotated.sessionKey}:rotate`, {
      method: 'POST',
      headers: bearer(READER),
    });
    assert.equal(denied.status, 403);
    const absent = await fetch(`${server.httpUrl}/v1/sessions/http-rotate:rotate`, {
      method: 'POST',
      headers,
    });
    assert.equal(absent.status, 404);
    assert.equal(((await absent.json()) as { code: string }).code, 'NOT_FOUND');
  });

  it('client.rotateSessionKey returns the new key and throws NOT_FOUND for the old one', async () => {
    const client = createClient({ address: server.address, metadata: bearer(WRITER) });
    try {
      const { sessionKey } = await client.setSession({ attributes: { role: 'guest' } });
      const rotated = await client.rotateSessionKey({ sessionKey });
      assert.notEqual(rotated.sessionKey, sessionKey);
      assert.equal(rotated.version, 1);
      assert.deepEqual((await client.getSession({ sessionKey: rotated.sessionKey }))?.attributes, {
        role: 'guest',
      });
      assert.equal(await client.getSession({ sessionKey }), null);
      await assert.rejects(client.rotateSessionKey({ sessionKey }), (error: unknown) => {
        assert.ok(error instanceof SessionError);
        assert.equal(error.code, 'NOT_FOUND');
        return true;
      });
    } finally {
      client.close();
    }
  });
});

const cli = runCli;

describe('the CLI against a server with mutual TLS and tokens', () => {
  let pki: TestPki;
  let server: TestServer;

  before(async () => {
    pki = makePki();
    server = await startServer({
      env: {
        AUTH_TOKENS,
        TLS_CERT_FILE: pki.server.certFile,
        TLS_KEY_FILE: pki.server.keyFile,
        TLS_CLIENT_CA_FILE: pki.ca.certFile,
      },
    });
  });
  after(async () => {
    await server.close();
    pki.dispose();
  });

  it('sessionmanager rotate KEY prints the new key; the old key is then not found (exit 3)', async () => {
    const tls = [
      '--addr',
      server.address,
      '--tls-ca',
      pki.ca.certFile,
      '--tls-cert',
      pki.client.certFile,
      '--tls-key',
      pki.client.keyFile,
    ];
    const env = { SESSIONMANAGER_TOKEN: WRITER };
    const set = await cli(['set', '--key', 'cli-rotate', '--request', 'q', ...tls], env);
    assert.equal(set.code, 0, set.stderr);
    const rotated = await cli(['rotate', 'cli-rotate', ...tls], env);
    assert.equal(rotated.code, 0, rotated.stderr);
    const { sessionKey, version } = JSON.parse(rotated.stdout);
    assert.match(sessionKey, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(version, 1);
    assert.equal((await cli(['get', 'cli-rotate', ...tls], env)).code, 3);
    const fresh = await cli(['get', ...tls, '--', sessionKey], env);
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.equal(JSON.parse(fresh.stdout).fleetListRequest, 'q');
    const health = await cli(['health', ...tls], {});
    assert.equal(health.code, 0, health.stderr);
    const noToken = await cli(['get', ...tls, '--', sessionKey], {});
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /UNAUTHENTICATED: authorization: missing/);
    const noCert = await cli(
      [
        'get',
        '--addr',
        server.address,
        '--tls-ca',
        pki.ca.certFile,
        '--timeout',
        '2000',
        '--',
        sessionKey,
      ],
      env,
    );
    assert.equal(noCert.code, 5, noCert.stderr);
    const usage = await cli(['rotate', ...tls], env);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /rotate needs a session KEY/);
  });
});

describe('keys and tokens never reach the logs', () => {
  it('a service at LOG_LEVEL=trace logs no session key (old or new) and no token', async () => {
    const redis = await startRedis();
    const service = await spawnService({
      PORT: '0',
      HTTP_PORT: String(await freePort()),
      LOG_LEVEL: 'trace',
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(redis.port),
      AUTH_TOKENS,
    });
    const secrets = [WRITER, READER, 'wrong-token-0123456789abc'];
    try {
      const listening = service.logs.find((entry) => entry.msg === 'sessionmanager listening');
      assert.equal(
        listening?.authTokens,
        2,
        'the start log says tokens are on (how many, not which)',
      );
      assert.equal(listening?.tls, 'off');
      assert.ok(
        !service.logs.some((entry) => entry.level === 40),
        'no security warning on loopback',
      );
      const port = Number(listening?.port);
      const httpPort = Number(listening?.httpPort);
      const client = rawClient(`127.0.0.1:${port}`);
      const metadata = bearer(WRITER);
      try {
        // The process listens before its Redis connection is up (no offline queue).
        await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
        for (let i = 0; i < 5; i++) {
          const { session_key } = await client.call(
            'SetSession',
            { attributes: { i: Buffer.from(String(i)) } },
            { metadata },
          );
          secrets.push(session_key);
          const rotated = await client.call('RotateSessionKey', { session_key }, { metadata });
          secrets.push(rotated.session_key);
          await client.call(
            'GetSession',
            { session_key: rotated.session_key, touch: true },
            { metadata },
          );
          await client.call('GetSession', { session_key }, { metadata }).catch(() => undefined);
          await client
            .call('RotateSessionKey', { session_key }, { metadata })
            .catch(() => undefined);
          await client
            .call(
              'GetSession',
              { session_key: rotated.session_key },
              { metadata: bearer('wrong-token-0123456789abc') },
            )
            .catch(() => undefined);
          await client
            .call(
              'ConsumeSession',
              { session_key: rotated.session_key },
              { metadata: bearer(READER) },
            )
            .catch(() => undefined);
          const http = await fetch(
            `http://127.0.0.1:${httpPort}/v1/sessions/${rotated.session_key}:rotate`,
            {
              method: 'POST',
              headers: metadata,
            },
          ).then((r) => r.json() as Promise<Rotated>);
          secrets.push(http.sessionKey);
          await fetch(`http://127.0.0.1:${httpPort}/v1/sessions/${session_key}:rotate`, {
            method: 'POST',
            headers: metadata,
          });
        }
        // Unexpected failures are logged with their cause: make some (Redis gone).
        await redis.stop('SIGKILL');
        for (const key of secrets.slice(3, 6))
          await client
            .call('RotateSessionKey', { session_key: key }, { metadata })
            .catch(() => undefined);
      } finally {
        client.close();
      }
      service.child.kill('SIGTERM');
      await service.exited();
      const text = `${JSON.stringify(service.logs)}\n${service.stderr()}`;
      assert.ok(service.logs.length >= 3, 'the service logged');
      assert.ok(secrets.length === 3 + 15, 'every issued key was collected');
      const leaked = secrets.filter((secret) => text.includes(secret));
      assert.deepEqual(leaked, [], 'no key or token in the logs');
    } finally {
      service.child.kill('SIGKILL');
      await redis.dispose();
    }
  });
});
