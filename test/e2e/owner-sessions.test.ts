// Owners end to end: SetSession's owner, ListSessions and RevokeSessions,
// SESSION_MAX_PER_OWNER, the admin permission, over gRPC (grpc-js built from
// the .proto) on both server transports, over HTTP/JSON, through the
// TypeScript client on both of its transports, and the logs.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { createClient, SessionError } from '@sessionmanager/client';
import { sessionHandle } from '../../src/session-keys.ts';
import {
  type Message,
  type RawClient,
  rawClient,
  rejectsWithStatus,
  STORE_TRANSPORT_MATRIX,
} from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

const WRITER = 'owner-writer-0123456789';
const READER = 'owner-reader-0123456789';
const ADMIN = 'owner-admin-0123456789';
const AUTH_TOKENS = `${WRITER}:write,${READER}:read,${ADMIN}:admin`;
const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
const admin = { metadata: bearer(ADMIN) };

const OWNED_KEY = /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{3}$/;
const gone = /^session_key: no such session/;

/** Owner ids a test may not find again in any log or error message. */
const BAD_OWNERS = ['tab\there', 'nul\u0000byte', 'del\u007f', 'x'.repeat(257)];

async function metricsOf(server: TestServer): Promise<string> {
  return server.server.metrics.registry.metrics();
}

for (const [storeName, transport] of STORE_TRANSPORT_MATRIX) {
  describe(`owners over gRPC on the ${storeName} store, ${transport} transport`, () => {
    let redis: TestRedis | undefined;
    let server: TestServer;
    let client: RawClient;
    const set = (request: object) => client.call('SetSession', request, admin);
    const list = (owner: string, include_content = false) =>
      client.call('ListSessions', { owner, include_content }, admin);
    const revoke = (owner: string, metadata: Record<string, string> = {}) =>
      client.call('RevokeSessions', { owner }, { metadata: { ...bearer(ADMIN), ...metadata } });

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

    it('ListSessions shows the handles and metadata, oldest first, the content only on request', async () => {
      const owner = `rider-list-${transport}`;
      const first = await set({
        owner,
        fleet_list_request: Buffer.from('quote-1'),
        attributes: { seat: Buffer.from('12A') },
        ttl_seconds: 300,
      });
      const second = await set({ owner, fleet_list_response: Buffer.from('fleet-2') });
      for (const { session_key } of [first, second]) assert.match(session_key, OWNED_KEY);
      await set({ owner: `${owner}-other` });

      const { sessions } = await list(owner);
      assert.deepEqual(
        sessions.map((session: Message) => session.handle),
        [sessionHandle(first.session_key), sessionHandle(second.session_key)],
      );
      const stored = await client.call('GetSession', { session_key: first.session_key }, admin);
      const [oldest] = sessions;
      assert.equal(oldest.created_at_unix_ms, stored.created_at_unix_ms);
      assert.equal(oldest.expires_at_unix_ms, stored.expires_at_unix_ms);
      assert.equal(oldest.version, 1);
      assert.equal(oldest.ttl_seconds, 300);
      assert.equal(oldest.size_bytes, 'quote-1'.length + 'seat'.length + '12A'.length);
      assert.equal(oldest.fleet_list_request.length, 0, 'no content unless asked');
      assert.deepEqual(oldest.attributes, {});

      const full = (await list(owner, true)).sessions;
      assert.deepEqual(full[0].fleet_list_request, Buffer.from('quote-1'));
      assert.deepEqual(full[0].attributes, { seat: Buffer.from('12A') });
      assert.deepEqual(full[1].fleet_list_response, Buffer.from('fleet-2'));

      assert.deepEqual((await list(`${owner}-nobody`)).sessions, []);
      await rejectsWithStatus(
        client.call('GetSession', { session_key: oldest.handle }, admin),
        status.NOT_FOUND,
        gone,
      );
    });

    it('RevokeSessions deletes them all and says how many; their keys are NOT_FOUND after', async () => {
      const owner = `rider-revoke-${transport}`;
      const keys = [(await set({ owner })).session_key, (await set({ owner })).session_key];
      const other = await set({ owner: `${owner}-other` });
      assert.equal((await revoke(owner)).revoked, 2);
      for (const session_key of keys) {
        for (const method of ['GetSession', 'TouchSession', 'ConsumeSession', 'RotateSessionKey'])
          await rejectsWithStatus(
            client.call(method, { session_key }, admin),
            status.NOT_FOUND,
            gone,
          );
      }
      assert.deepEqual((await list(owner)).sessions, []);
      assert.equal((await revoke(owner)).revoked, 0);
      const kept = await client.call('GetSession', { session_key: other.session_key }, admin);
      assert.equal(kept.version, 1, "another owner's session stays");
    });

    it('a repeat of RevokeSessions under its idempotency key returns the first count and deletes nothing new', async () => {
      const owner = `rider-repeat-${transport}`;
      await set({ owner });
      await set({ owner });
      const key = { 'idempotency-key': `revoke-${transport}` };
      assert.equal((await revoke(owner, key)).revoked, 2);
      const later = await set({ owner });
      assert.equal((await revoke(owner, key)).revoked, 2, 'the first outcome');
      assert.equal(
        (await client.call('GetSession', { session_key: later.session_key }, admin)).version,
        1,
      );
    });

    it('RotateSessionKey keeps the session listed, under the new handle', async () => {
      const owner = `rider-rotate-${transport}`;
      const { session_key } = await set({ owner, fleet_list_request: Buffer.from('q') });
      const rotated = await client.call('RotateSessionKey', { session_key }, admin);
      assert.match(rotated.session_key, OWNED_KEY);
      assert.equal(rotated.session_key.slice(-4), session_key.slice(-4), 'the owner tag stays');
      const { sessions } = await list(owner, true);
      assert.deepEqual(
        sessions.map((session: Message) => session.handle),
        [sessionHandle(rotated.session_key)],
      );
      assert.deepEqual(sessions[0].fleet_list_request, Buffer.from('q'));
      assert.equal((await revoke(owner)).revoked, 1);
      await rejectsWithStatus(
        client.call('GetSession', { session_key: rotated.session_key }, admin),
        status.NOT_FOUND,
        gone,
      );
    });

    it('with an owner, a caller-chosen session_key is INVALID_ARGUMENT naming session_key; a key generated for that owner may be set again', async () => {
      const owner = `rider-keys-${transport}`;
      await rejectsWithStatus(
        set({ owner, session_key: 'my-own-key' }),
        status.INVALID_ARGUMENT,
        /^session_key: a session with an owner needs a key this service generated/,
      );
      const plain = await set({});
      await rejectsWithStatus(
        set({ owner, session_key: plain.session_key }),
        status.INVALID_ARGUMENT,
        /^session_key:/,
      );
      const { session_key } = await set({ owner });
      const replaced = await set({ owner, session_key, fleet_list_request: Buffer.from('v2') });
      assert.equal(replaced.version, 2);
      assert.equal((await list(owner)).sessions.length, 1);
    });

    it('a malformed owner is INVALID_ARGUMENT naming owner on every call, and never echoed', async () => {
      for (const method of ['ListSessions', 'RevokeSessions'])
        await rejectsWithStatus(
          client.call(method, { owner: '' }, admin),
          status.INVALID_ARGUMENT,
          /^owner: is required/,
        );
      for (const owner of BAD_OWNERS) {
        for (const [method, request] of [
          ['SetSession', { owner }],
          ['ListSessions', { owner }],
          ['RevokeSessions', { owner }],
        ] as const) {
          await assert.rejects(client.call(method, request, admin), (error: Message) => {
            assert.equal(error.code, status.INVALID_ARGUMENT, `${method}: ${error.details}`);
            assert.match(error.details, /^owner: must be 1-256 characters/);
            assert.ok(!error.details.includes(owner), error.details);
            return true;
          });
        }
      }
      assert.equal((await list('x'.repeat(256))).sessions.length, 0, '256 characters is fine');
    });

    it('ListSessions and RevokeSessions need the admin permission; write and read tokens are PERMISSION_DENIED', async () => {
      const owner = `rider-admin-${transport}`;
      await client.call('SetSession', { owner }, { metadata: bearer(WRITER) });
      for (const [token, granted] of [
        [WRITER, 'write'],
        [READER, 'read'],
      ] as const) {
        for (const method of ['ListSessions', 'RevokeSessions'])
          await rejectsWithStatus(
            client.call(method, { owner }, { metadata: bearer(token) }),
            status.PERMISSION_DENIED,
            new RegExp(`^authorization: the token grants "${granted}"; ${method} needs "admin"$`),
          );
      }
      await rejectsWithStatus(
        client.call('ListSessions', { owner }),
        status.UNAUTHENTICATED,
        /^authorization: missing/,
      );
      assert.equal((await list(owner)).sessions.length, 1, 'the refused revoke changed nothing');
      assert.equal((await revoke(owner)).revoked, 1);
    });

    it('counts the calls per method and the revoked sessions as events', async () => {
      const text = await metricsOf(server);
      for (const method of ['ListSessions', 'RevokeSessions']) {
        assert.match(
          text,
          new RegExp(
            `sessionmanager_calls_total\\{transport="grpc",method="${method}",code="OK"\\} [1-9]`,
          ),
        );
        assert.match(
          text,
          new RegExp(`grpc_server_handled_total\\{[^}]*grpc_method="${method}"[^}]*\\} [1-9]`),
        );
      }
      assert.match(text, /sessionmanager_session_events_total\{event="revoked"\} [1-9]/);
      assert.match(
        text,
        /sessionmanager_store_operation_duration_seconds_count\{operation="list_owned",outcome="ok"\} [1-9]/,
      );
      assert.match(
        text,
        /sessionmanager_store_operation_duration_seconds_count\{operation="revoke_owned",outcome="ok"\} [1-9]/,
      );
    });
  });
}

describe('SESSION_MAX_PER_OWNER', () => {
  it('evict-oldest (the default): a third session of an owner at 2 evicts the first, counted as evicted', async () => {
    const server = await startServer({ env: { SESSION_MAX_PER_OWNER: '2' } });
    const client = rawClient(server.address);
    try {
      const owner = 'rider-evict';
      const keys: string[] = [];
      for (let i = 0; i < 3; i++)
        keys.push((await client.call('SetSession', { owner })).session_key);
      await rejectsWithStatus(
        client.call('GetSession', { session_key: keys[0] }),
        status.NOT_FOUND,
        gone,
      );
      const { sessions } = await client.call('ListSessions', { owner });
      assert.deepEqual(
        sessions.map((session: Message) => session.handle),
        keys.slice(1).map(sessionHandle),
      );
      const replaced = await client.call('SetSession', { owner, session_key: keys[1] });
      assert.equal(replaced.version, 2, 'replacing one of its sessions needs no room');
      assert.equal((await client.call('ListSessions', { owner })).sessions.length, 2);
      const text = await metricsOf(server);
      assert.match(text, /sessionmanager_session_events_total\{event="evicted"\} 1\n/);
    } finally {
      client.close();
      await server.close();
    }
  });

  it('refuse: a third session is RESOURCE_EXHAUSTED naming owner (HTTP 413), and the first two stay', async () => {
    const server = await startServer({
      env: { SESSION_MAX_PER_OWNER: '2', SESSION_OWNER_LIMIT: 'refuse' },
    });
    const client = rawClient(server.address);
    try {
      const owner = 'rider-refuse';
      const keys = [
        (await client.call('SetSession', { owner })).session_key,
        (await client.call('SetSession', { owner })).session_key,
      ];
      await rejectsWithStatus(
        client.call('SetSession', { owner }),
        status.RESOURCE_EXHAUSTED,
        /^owner: holds 2 live sessions; the limit is 2/,
      );
      const http = await fetch(`${server.httpUrl}/v1/sessions`, {
        method: 'POST',
        body: JSON.stringify({ owner }),
      });
      assert.equal(http.status, 413);
      assert.equal(((await http.json()) as { code: string }).code, 'RESOURCE_EXHAUSTED');
      const { sessions } = await client.call('ListSessions', { owner });
      assert.deepEqual(
        sessions.map((session: Message) => session.handle),
        keys.map(sessionHandle),
      );
      assert.equal((await client.call('SetSession', { owner, session_key: keys[0] })).version, 2);
      assert.equal((await client.call('RevokeSessions', { owner })).revoked, 2);
      assert.match((await client.call('SetSession', { owner })).session_key, OWNED_KEY);
    } finally {
      client.close();
      await server.close();
    }
  });
});

for (const storeName of ['memory', 'redis'] as const) {
  describe(`owners over HTTP/JSON on the ${storeName} store`, () => {
    let redis: TestRedis | undefined;
    let server: TestServer;

    before(async () => {
      redis = storeName === 'redis' ? await startRedis() : undefined;
      server = await startServer({ ...(redis && { redisPort: redis.port }), env: { AUTH_TOKENS } });
    });
    after(async () => {
      await server.close();
      await redis?.dispose();
    });

    const post = async (path: string, body: unknown, headers: Record<string, string>) => {
      const response = await fetch(`${server.httpUrl}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
      // biome-ignore lint/suspicious/noExplicitAny: JSON bodies are checked field by field
      return { status: response.status, body: (await response.json()) as any };
    };

    it('POST /v1/owner-sessions:list and :revoke take the owner in the body', async () => {
      const owner = 'rider-http';
      const created = await post(
        '/v1/sessions',
        { owner, fleetListRequest: 'cXVvdGU=', attributes: { seat: 'MTJB' } },
        bearer(WRITER),
      );
      assert.equal(created.status, 200);
      assert.match(created.body.sessionKey, OWNED_KEY);

      const listed = await post('/v1/owner-sessions:list', { owner }, bearer(ADMIN));
      assert.equal(listed.status, 200);
      assert.deepEqual(listed.body.sessions, [
        {
          handle: sessionHandle(created.body.sessionKey),
          createdAtUnixMs: listed.body.sessions[0].createdAtUnixMs,
          expiresAtUnixMs: created.body.expiresAtUnixMs,
          version: '1',
          ttlSeconds: '900',
          sizeBytes: String('quote'.length + 'seat'.length + '12A'.length),
          fleetListRequest: '',
          fleetListResponse: '',
          attributes: {},
        },
      ]);
      const full = await post(
        '/v1/owner-sessions:list',
        { owner, include_content: true },
        bearer(ADMIN),
      );
      assert.equal(full.body.sessions[0].fleetListRequest, 'cXVvdGU=');
      assert.deepEqual(full.body.sessions[0].attributes, { seat: 'MTJB' });

      const key = { 'idempotency-key': 'http-revoke-1' };
      const revoked = await post(
        '/v1/owner-sessions:revoke',
        { owner },
        { ...bearer(ADMIN), ...key },
      );
      assert.deepEqual(revoked, { status: 200, body: { revoked: '1' } });
      const repeated = await post(
        '/v1/owner-sessions:revoke',
        { owner },
        { ...bearer(ADMIN), ...key },
      );
      assert.deepEqual(repeated, revoked);
      const old = await fetch(`${server.httpUrl}/v1/sessions/${created.body.sessionKey}`, {
        headers: bearer(WRITER),
      });
      assert.equal(old.status, 404);
      assert.deepEqual((await post('/v1/owner-sessions:list', { owner }, bearer(ADMIN))).body, {
        sessions: [],
      });
    });

    it('refusals: 403 below admin, 400 naming owner, 405 for another verb, 404 for another action', async () => {
      for (const path of ['/v1/owner-sessions:list', '/v1/owner-sessions:revoke']) {
        const denied = await post(path, { owner: 'r' }, bearer(WRITER));
        assert.equal(denied.status, 403, path);
        assert.match(
          denied.body.message,
          /^authorization: the token grants "write"; \w+ needs "admin"$/,
        );
        for (const body of [{}, { owner: '' }, { owner: 'a\nb' }, { owner: 7 }]) {
          const invalid = await post(path, body, bearer(ADMIN));
          assert.equal(invalid.status, 400, JSON.stringify(body));
          assert.match(invalid.body.message, /^owner: /);
        }
        const unknown = await post(path, { owner: 'r', sessionKey: 'k' }, bearer(ADMIN));
        assert.equal(unknown.status, 400);
        assert.match(unknown.body.message, /^body: unknown field "sessionKey"/);
        const get = await fetch(`${server.httpUrl}${path}`, { headers: bearer(ADMIN) });
        assert.equal(get.status, 405, path);
        assert.equal(get.headers.get('allow'), 'POST');
      }
      const other = await post('/v1/owner-sessions:count', { owner: 'r' }, bearer(ADMIN));
      assert.equal(other.status, 404);
    });
  });
}

for (const transport of ['lean', 'grpc-js'] as const) {
  describe(`owners through the TypeScript client, ${transport} transport`, () => {
    let server: TestServer;

    before(async () => {
      server = await startServer({ env: { AUTH_TOKENS } });
    });
    after(() => server.close());

    it('setSession({ owner }), listSessions with and without content, revokeSessions', async () => {
      const sessions = createClient<{ from: string }, { cars: string[] }, string>({
        address: server.address,
        transport,
        metadata: bearer(ADMIN),
      });
      try {
        const owner = `rider-client-${transport}`;
        const first = await sessions.setSession({
          owner,
          fleetListRequest: { from: 'Airport' },
          attributes: { seat: '12A' },
        });
        const second = await sessions.setSession({ owner, fleetListResponse: { cars: ['c1'] } });
        const listed = await sessions.listSessions(owner);
        assert.deepEqual(
          listed.map((session) => session.handle),
          [sessionHandle(first.sessionKey), sessionHandle(second.sessionKey)],
        );
        assert.equal(listed[0]?.version, 1);
        assert.equal(listed[0]?.expiresAtUnixMs, first.expiresAtUnixMs);
        assert.equal('attributes' in (listed[0] ?? {}), false, 'no content unless asked');
        const full = await sessions.listSessions(owner, { includeContent: true });
        assert.deepEqual(full[0]?.fleetListRequest, { from: 'Airport' });
        assert.deepEqual(full[0]?.attributes, { seat: '12A' });
        assert.deepEqual(full[1]?.fleetListResponse, { cars: ['c1'] });
        assert.deepEqual(await sessions.revokeSessions(owner), { revoked: 2 });
        assert.equal(await sessions.getSession({ sessionKey: first.sessionKey }), null);
        assert.deepEqual(await sessions.listSessions(owner), []);
        await assert.rejects(sessions.listSessions(''), (error: unknown) => {
          assert.ok(error instanceof SessionError);
          assert.equal(error.code, 'INVALID_ARGUMENT');
          assert.match(error.message, /^owner:/);
          return true;
        });
      } finally {
        sessions.close();
      }
    });

    it('a write token gets PERMISSION_DENIED from listSessions and revokeSessions', async () => {
      const writer = createClient({ address: server.address, transport, metadata: bearer(WRITER) });
      try {
        const owner = `rider-writer-${transport}`;
        await writer.setSession({ owner });
        for (const call of [writer.listSessions(owner), writer.revokeSessions(owner)])
          await assert.rejects(call, (error: unknown) => {
            assert.ok(error instanceof SessionError);
            assert.equal(error.code, 'PERMISSION_DENIED');
            return true;
          });
      } finally {
        writer.close();
      }
    });
  });
}

describe('owner ids never reach the logs', () => {
  it('a service at LOG_LEVEL=trace logs no owner id, whatever the calls and their outcomes', async () => {
    const service = await spawnService({
      PORT: '0',
      HTTP_PORT: String(await freePort()),
      LOG_LEVEL: 'trace',
      AUTH_TOKENS,
      SESSION_MAX_PER_OWNER: '2',
    });
    const owners = ['rider-5f3c9a77', 'user-91e0d4b2', 'quote-owner-c0ffee42'];
    try {
      const listening = service.logs.find((entry) => entry.msg === 'sessionmanager listening');
      const client = rawClient(`127.0.0.1:${Number(listening?.port)}`);
      const httpUrl = `http://127.0.0.1:${Number(listening?.httpPort)}`;
      try {
        await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
        for (const owner of owners) {
          for (let i = 0; i < 3; i++) await client.call('SetSession', { owner }, admin);
          await client.call('ListSessions', { owner, include_content: true }, admin);
          await client
            .call('ListSessions', { owner }, { metadata: bearer(WRITER) })
            .catch(() => undefined);
          await client
            .call('SetSession', { owner, session_key: 'chosen-key' }, admin)
            .catch(() => undefined);
          await fetch(`${httpUrl}/v1/owner-sessions:list`, {
            method: 'POST',
            headers: bearer(ADMIN),
            body: JSON.stringify({ owner, unknownField: owner }),
          });
          await fetch(`${httpUrl}/v1/owner-sessions:revoke`, {
            method: 'POST',
            headers: { ...bearer(ADMIN), 'idempotency-key': `log-test-${owners.indexOf(owner)}` },
            body: JSON.stringify({ owner }),
          });
          await client.call('RevokeSessions', { owner }, admin);
        }
        for (const owner of BAD_OWNERS)
          await client.call('SetSession', { owner }, admin).catch(() => undefined);
      } finally {
        client.close();
      }
      service.child.kill('SIGTERM');
      await service.exited();
      const text = `${JSON.stringify(service.logs)}\n${service.stderr()}`;
      assert.ok(
        service.logs.filter((entry) => entry.msg === 'call').length >= owners.length * 8,
        'the access log has a line per call',
      );
      const leaked = [...owners, ...BAD_OWNERS].filter((owner) =>
        text.includes(JSON.stringify(owner).slice(1, -1)),
      );
      assert.deepEqual(leaked, [], 'no owner id in the logs');
    } finally {
      service.child.kill('SIGKILL');
    }
  });
});
