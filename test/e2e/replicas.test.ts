import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { waitFor } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

/** The service keeps no state of its own: any instance serves any session. */
describe('two service instances on one Redis', () => {
  let redis: TestRedis;
  let servers: TestServer[];
  let a: RawClient;
  let b: RawClient;

  before(async () => {
    redis = await startRedis();
    servers = [
      await startServer({ redisPort: redis.port }),
      await startServer({ redisPort: redis.port }),
    ];
    a = rawClient(servers[0]?.address ?? '');
    b = rawClient(servers[1]?.address ?? '');
  });

  after(async () => {
    a?.close();
    b?.close();
    await Promise.all(servers.map((s) => s.close()));
    await redis?.dispose();
  });

  it('a session written through one is read, updated and consumed through the other', async () => {
    const { session_key } = await a.call('SetSession', {
      fleet_list_request: Buffer.from('quote'),
      attributes: { rider: Buffer.from('r-1') },
    });
    const read = await b.call('GetSession', { session_key });
    assert.deepEqual(read.fleet_list_request, Buffer.from('quote'));
    assert.equal(Number(read.version), 1);

    const updated = await b.call('UpdateSession', {
      session_key,
      fleet_list_response: Buffer.from('fleet'),
      expected_version: 1,
    });
    assert.equal(Number(updated.version), 2);
    const seenByA = await a.call('GetSession', { session_key });
    assert.deepEqual(seenByA.fleet_list_response, Buffer.from('fleet'));
    await assert.rejects(
      a.call('UpdateSession', { session_key, expected_version: 1 }),
      { code: status.ABORTED },
      'a stale version written through the first instance conflicts',
    );

    const consumed = await b.call('ConsumeSession', { session_key });
    assert.deepEqual(consumed.attributes.rider, Buffer.from('r-1'));
    await assert.rejects(a.call('GetSession', { session_key }), { code: status.NOT_FOUND });
  });

  it('consumers racing through both instances: exactly one gets the session', async () => {
    const { session_key } = await a.call('SetSession', {});
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? a : b).call('ConsumeSession', { session_key }),
      ),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    for (const r of results)
      if (r.status === 'rejected')
        assert.equal((r.reason as { code: number }).code, status.NOT_FOUND);
  });

  it('compare-and-set through both instances: exactly one writer of a version wins', async () => {
    const { session_key } = await b.call('SetSession', {});
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? a : b).call('UpdateSession', {
          session_key,
          expected_version: 1,
          set_attributes: { writer: Buffer.from(String(i)) },
        }),
      ),
    );
    assert.equal(results.filter((r) => r.status === 'fulfilled').length, 1);
    assert.equal(Number((await a.call('GetSession', { session_key })).version), 2);
  });

  it('one instance stopping leaves the other serving the same sessions', async () => {
    const { session_key } = await a.call('SetSession', { fleet_list_request: Buffer.from('kept') });
    await servers[0]?.close();
    await assert.rejects(a.call('GetSession', { session_key }, { deadlineMs: 1000 }));
    const read = await b.call('GetSession', { session_key });
    assert.deepEqual(read.fleet_list_request, Buffer.from('kept'));
    await servers[0]?.restart();
    await waitFor('the restarted instance to serve the session', async () =>
      Buffer.from('kept').equals((await a.call('GetSession', { session_key })).fleet_list_request),
    );
  });
});
