import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RedisConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { RedisStore } from '../src/store/redis/redis-store.ts';
import { assertFailedOverCleanly, exerciseEveryRpc, measureFailover } from './support/failover.ts';
import { type RawClient, rawClient } from './support/grpc.ts';
import { waitFor } from './support/ports.ts';
import { startServer, type TestServer } from './support/server.ts';
import { draft, LIMITS, storeContract, uniqueKey } from './support/store-contract.ts';
import { assertAgreesWithModel } from './support/store-model.ts';
import { startSentinelGroup, type TestSentinelGroup } from './support/topology.ts';

/**
 * Everything on one real Sentinel group (1 master, 1 replica, 3 sentinels),
 * started once for the file: the store contract, the model test, the gRPC
 * server, and last (it changes the topology) a failover under load.
 */

let group: TestSentinelGroup;
let store: RedisStore;
const prefix = `sentinel-${process.pid}:`;

const sentinelConfig = (keyPrefix: string): RedisConfig => ({
  topology: {
    kind: 'sentinel',
    sentinels: group.sentinels
      .split(',')
      .map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })),
    masterName: group.masterName,
    sentinelUsername: undefined,
    sentinelPassword: undefined,
  },
  host: '',
  port: 6379,
  database: 5,
  username: undefined,
  password: undefined,
  tls: false,
  keyPrefix,
  commandTimeoutMs: 1000,
  connectTimeoutMs: 1000,
});

before(async () => {
  group = await startSentinelGroup();
  store = new RedisStore(sentinelConfig(prefix), LIMITS, createLogger('silent'));
  await waitFor('the sentinel store to answer', () =>
    store.ping().then(
      () => true,
      () => false,
    ),
  );
});

after(async () => {
  await store?.close();
  await group?.dispose();
});

storeContract('redis sentinel store', () => ({ store, now: Date.now }));

describe('redis sentinel: layout and replication', () => {
  it('writes go to the master in database 5 with a TTL, and reach the replica', async () => {
    const [master, replica] = group.nodes;
    assert.ok(master && replica);
    assert.equal(group.masterPort(), master.port);
    await store.put(uniqueKey(), draft(), Date.now());
    const keys = master
      .cli('-n', '5', '--scan', '--pattern', `${prefix}*`)
      .split('\n')
      .filter(Boolean);
    assert.ok(keys.length > 0);
    for (const key of keys) {
      const ttl = Number(master.cli('-n', '5', 'PTTL', key));
      assert.ok(ttl > 0 || ttl === -2, `${key} has PTTL ${ttl}`);
    }
    await waitFor('the replica to hold the same keys', async () =>
      keys.every(
        (key) =>
          replica.cli('-n', '5', 'EXISTS', key) === '1' ||
          master.cli('-n', '5', 'EXISTS', key) === '0',
      ),
    );
  });

  it('agrees with the in-memory reference on random operation sequences', async () => {
    await assertAgreesWithModel(store, 60);
  });
});

describe('redis sentinel: gRPC server and failover', () => {
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    server = await startServer({
      env: { REDIS_SENTINELS: group.sentinels, REDIS_SENTINEL_MASTER: group.masterName },
    });
    client = rawClient(server.address);
  });

  after(async () => {
    client?.close();
    await server?.close();
  });

  it('serves every rpc end to end', () => exerciseEveryRpc(client));

  it('the master killed under load: calls fail fast with UNAVAILABLE, then succeed on the promoted replica without a restart', async (t) => {
    const [master, replica] = group.nodes;
    assert.ok(master && replica);
    const report = await measureFailover({
      topology: 'sentinel',
      client,
      kill: () => master.stop('SIGKILL'),
    });
    t.diagnostic(`failover figures: ${JSON.stringify(report)}`);
    console.log(`FAILOVER ${JSON.stringify(report)}`);
    assertFailedOverCleanly(report, 20);
    assert.equal(group.masterPort(), replica.port, 'the sentinels promoted the replica');
    await waitFor('health SERVING again', async () => (await client.health()) === 'SERVING');
  });
});
