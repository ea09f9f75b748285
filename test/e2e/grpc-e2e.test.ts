import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type Metadata, status } from '@grpc/grpc-js';
import {
  type RawClient,
  rawClient,
  rejectsWithStatus,
  STORE_TRANSPORT_MATRIX,
} from '../support/grpc.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

const SESSION_MAX_BYTES = '65536';

/** Fails with this status and a message that starts with the field at fault. */
const failsWith = (promise: Promise<unknown>, code: status, field: string) =>
  rejectsWithStatus(promise, code, new RegExp(`^${field}:`));

for (const [storeName, transport] of STORE_TRANSPORT_MATRIX) {
  describe(`gRPC end to end on the ${storeName} store, ${transport} transport`, () => {
    let redis: TestRedis | undefined;
    let server: TestServer;
    let client: RawClient;

    before(async () => {
      redis = storeName === 'redis' ? await startRedis() : undefined;
      server = await startServer({
        ...(redis && { redisPort: redis.port }),
        env: { SESSION_MAX_BYTES, SESSION_MAX_LIFETIME: '1h', GRPC_TRANSPORT: transport },
      });
      client = rawClient(server.address);
    });

    after(async () => {
      client.close();
      await server.close();
      await redis?.dispose();
    });

    it('SetSession with no key generates one; GetSession returns exactly what was stored', async () => {
      const before = Date.now();
      const set = await client.call('SetSession', {
        fleet_list_request: Buffer.from('{"from":"A","to":"B"}'),
        fleet_list_response: Buffer.from([0, 159, 146, 150, 255]),
        attributes: { rider: Buffer.from('r-42'), blob: Buffer.from([0, 0, 1]) },
        ttl_seconds: 120,
      });
      assert.match(set.session_key, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(set.version, 1);
      assert.ok(set.expires_at_unix_ms >= before + 120_000);
      assert.ok(set.expires_at_unix_ms <= Date.now() + 120_000);

      const got = await client.call('GetSession', { session_key: set.session_key });
      assert.equal(got.session_key, set.session_key);
      assert.deepEqual(got.fleet_list_request, Buffer.from('{"from":"A","to":"B"}'));
      assert.deepEqual(got.fleet_list_response, Buffer.from([0, 159, 146, 150, 255]));
      assert.deepEqual(got.attributes, {
        rider: Buffer.from('r-42'),
        blob: Buffer.from([0, 0, 1]),
      });
      assert.equal(got.ttl_seconds, 120);
      assert.equal(got.version, 1);
      assert.equal(got.expires_at_unix_ms, set.expires_at_unix_ms);
      assert.ok(got.created_at_unix_ms >= before && got.created_at_unix_ms <= Date.now());
    });

    it('SetSession with a caller key replaces the whole session; ttl 0 means SESSION_TTL', async () => {
      const key = `order:${storeName}.replace-1`;
      await client.call('SetSession', {
        session_key: key,
        attributes: { old: Buffer.from('x') },
      });
      const second = await client.call('SetSession', {
        session_key: key,
        fleet_list_request: Buffer.from('new'),
      });
      assert.equal(second.session_key, key);
      assert.equal(second.version, 2);
      const got = await client.call('GetSession', { session_key: key });
      assert.deepEqual(got.attributes, {});
      assert.deepEqual(got.fleet_list_request, Buffer.from('new'));
      assert.equal(got.ttl_seconds, 900);
    });

    it('UpdateSession merges, checks expected_version and returns the session', async () => {
      const { session_key } = await client.call('SetSession', {
        fleet_list_request: Buffer.from('quote'),
        attributes: { a: Buffer.from('1'), b: Buffer.from('2') },
      });
      const updated = await client.call('UpdateSession', {
        session_key,
        fleet_list_response: Buffer.from('response'),
        set_attributes: { c: Buffer.from('3') },
        remove_attributes: ['a'],
        expected_version: 1,
        ttl_seconds: 300,
      });
      assert.equal(updated.version, 2);
      assert.equal(updated.ttl_seconds, 300);
      assert.deepEqual(updated.fleet_list_request, Buffer.from('quote'));
      assert.deepEqual(updated.fleet_list_response, Buffer.from('response'));
      assert.deepEqual(updated.attributes, { b: Buffer.from('2'), c: Buffer.from('3') });
      await failsWith(
        client.call('UpdateSession', { session_key, expected_version: 1 }),
        status.ABORTED,
        'expected_version',
      );
      const plain = await client.call('UpdateSession', {
        session_key,
        fleet_list_request: Buffer.alloc(0),
      });
      assert.equal(plain.version, 3);
      assert.equal(plain.fleet_list_request.length, 0);
    });

    it('UpdateSession of an absent or deleted session is NOT_FOUND and creates nothing', async () => {
      const { session_key } = await client.call('SetSession', {});
      assert.equal((await client.call('DeleteSession', { session_key })).deleted, true);
      await failsWith(
        client.call('UpdateSession', { session_key, set_attributes: { x: Buffer.from('y') } }),
        status.NOT_FOUND,
        'session_key',
      );
      await failsWith(client.call('GetSession', { session_key }), status.NOT_FOUND, 'session_key');
    });

    it('TouchSession and GetSession(touch) extend the expiry', async () => {
      const { session_key, expires_at_unix_ms } = await client.call('SetSession', {
        ttl_seconds: 10,
      });
      const touched = await client.call('TouchSession', { session_key, ttl_seconds: 600 });
      assert.ok(touched.expires_at_unix_ms >= expires_at_unix_ms + 590_000);
      const got = await client.call('GetSession', { session_key, touch: true });
      assert.equal(got.ttl_seconds, 600);
      assert.ok(got.expires_at_unix_ms >= touched.expires_at_unix_ms);
      await failsWith(
        client.call('TouchSession', { session_key: 'absent-key' }),
        status.NOT_FOUND,
        'session_key',
      );
    });

    it('ConsumeSession hands the session to exactly one of two racing consumers', async () => {
      const { session_key } = await client.call('SetSession', {
        fleet_list_response: Buffer.from('quote'),
      });
      const results = await Promise.allSettled([
        client.call('ConsumeSession', { session_key }),
        client.call('ConsumeSession', { session_key }),
      ]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r) => r.status === 'rejected');
      assert.equal(won.length, 1);
      assert.equal(lost.length, 1);
      assert.deepEqual(
        won[0]?.status === 'fulfilled' && won[0].value.fleet_list_response,
        Buffer.from('quote'),
      );
      assert.equal((lost[0] as PromiseRejectedResult).reason.code, status.NOT_FOUND);
    });

    it('DeleteSession is idempotent', async () => {
      const { session_key } = await client.call('SetSession', {});
      assert.equal((await client.call('DeleteSession', { session_key })).deleted, true);
      assert.equal((await client.call('DeleteSession', { session_key })).deleted, false);
    });

    it('bad input is INVALID_ARGUMENT naming the field', async () => {
      await failsWith(
        client.call('GetSession', { session_key: '' }),
        status.INVALID_ARGUMENT,
        'session_key',
      );
      await failsWith(
        client.call('GetSession', { session_key: 'has space' }),
        status.INVALID_ARGUMENT,
        'session_key',
      );
      await failsWith(
        client.call('SetSession', { session_key: 'k'.repeat(129) }),
        status.INVALID_ARGUMENT,
        'session_key',
      );
      await failsWith(
        client.call('SetSession', { ttl_seconds: -5 }),
        status.INVALID_ARGUMENT,
        'ttl_seconds',
      );
      await failsWith(
        client.call('SetSession', { attributes: { 'bad\nname': Buffer.from('v') } }),
        status.INVALID_ARGUMENT,
        'attributes',
      );
    });

    it('a session over SESSION_MAX_BYTES is RESOURCE_EXHAUSTED; a message far over it is refused by gRPC', async () => {
      await failsWith(
        client.call('SetSession', {
          fleet_list_request: Buffer.alloc(Number(SESSION_MAX_BYTES) + 1),
        }),
        status.RESOURCE_EXHAUSTED,
        'session',
      );
      await assert.rejects(
        client.call('SetSession', { fleet_list_request: Buffer.alloc(4 * 1024 * 1024) }),
        { code: status.RESOURCE_EXHAUSTED },
      );
      assert.equal(await client.health(), 'SERVING', 'the server is still up');
    });

    it("echoes the caller's x-request-id; a failure without one gets a generated id", async () => {
      const echoed = (metadata: Metadata) => metadata.get('x-request-id')[0];
      const withId: unknown[] = [];
      await client.call(
        'DeleteSession',
        { session_key: 'any' },
        { metadata: { 'x-request-id': 'trace-42' }, onMetadata: (m) => withId.push(echoed(m)) },
      );
      assert.deepEqual(withId, ['trace-42']);

      const withoutId: unknown[] = [];
      await client.call(
        'DeleteSession',
        { session_key: 'any' },
        { onMetadata: (m) => withoutId.push(echoed(m)) },
      );
      assert.deepEqual(withoutId, [undefined], 'a success without an id gets none');

      await assert.rejects(
        client.call('GetSession', { session_key: 'absent' }),
        (error: { code: number; metadata: Metadata }) => {
          assert.equal(error.code, status.NOT_FOUND);
          assert.match(String(echoed(error.metadata)), /^[0-9a-f-]{36}$/);
          return true;
        },
      );
      await assert.rejects(
        client.call(
          'GetSession',
          { session_key: 'absent' },
          { metadata: { 'x-request-id': 'trace-43' } },
        ),
        (error: { metadata: Metadata }) => echoed(error.metadata) === 'trace-43',
      );
    });

    it('health reports SERVING for the server and the session service', async () => {
      assert.equal(await client.health(''), 'SERVING');
      assert.equal(await client.health('sessionmanager.v1.SessionManagerService'), 'SERVING');
    });
  });
}
