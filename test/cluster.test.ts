import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RedisConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { RedisStore } from '../src/store/redis/redis-store.ts';
import { Scripts } from '../src/store/redis/scripts.ts';
import { assertFailedOverCleanly, exerciseEveryRpc, measureFailover } from './support/failover.ts';
import { type RawClient, rawClient } from './support/grpc.ts';
import { waitFor } from './support/ports.ts';
import { startServer, type TestServer } from './support/server.ts';
import { draft, LIMITS, storeContract, uniqueKey } from './support/store-contract.ts';
import { assertAgreesWithModel } from './support/store-model.ts';
import { startCluster, type TestCluster } from './support/topology.ts';

/**
 * Everything on one real Redis Cluster (3 masters, 3 replicas), started once
 * for the file: the store contract, the model test, the key layout, the gRPC
 * server, and last (it changes the topology) a master failure under load.
 */

let cluster: TestCluster;
let store: RedisStore;
const prefix = `cluster-${process.pid}:`;

const clusterConfig = (keyPrefix: string): RedisConfig => ({
  topology: {
    kind: 'cluster',
    nodes: cluster.nodes.map((node) => ({ host: '127.0.0.1', port: node.port })),
  },
  host: '',
  port: 6379,
  database: 0,
  username: undefined,
  password: undefined,
  tls: false,
  keyPrefix,
  commandTimeoutMs: 1000,
  connectTimeoutMs: 1000,
});

const answers = (s: RedisStore) =>
  s.ping().then(
    () => true,
    () => false,
  );

before(async () => {
  cluster = await startCluster(3, 1);
  store = new RedisStore(clusterConfig(prefix), LIMITS, createLogger('silent'));
  await waitFor('the cluster store to answer', () => answers(store));
});

after(async () => {
  await store?.close();
  await cluster?.dispose();
});

storeContract('redis cluster store', () => ({ store, now: Date.now }));

describe('redis cluster: layout and scripts', () => {
  it('sends each command straight to the master of its slot: no MOVED or ASK redirections', async () => {
    for (const node of cluster.nodes) node.cli('CONFIG', 'RESETSTAT');
    for (let i = 0; i < 30; i++) {
      const key = uniqueKey();
      await store.put(key, draft(), Date.now());
      assert.ok(await store.get(key, Date.now(), false));
      assert.equal(await store.delete(key), true);
    }
    let commands = 0;
    for (const node of cluster.nodes) {
      const stats = node.cli('INFO', 'errorstats');
      assert.doesNotMatch(stats, /errorstat_(MOVED|ASK)/, `node ${node.port}: ${stats}`);
      commands += Number(
        /cmdstat_evalsha:calls=(\d+)/.exec(node.cli('INFO', 'commandstats'))?.[1] ?? 0,
      );
    }
    assert.equal(commands, 60, 'every put and delete (both scripts) ran once, on one node');
  });

  it('spreads sessions over every master, and every key on every master has a TTL (connect-redis#404)', async () => {
    for (let i = 0; i < 60; i++) await store.put(uniqueKey(), draft(), Date.now());
    const masters = cluster.masters();
    assert.equal(masters.length, 3);
    let total = 0;
    for (const master of masters) {
      const keys = master.cli('--scan', '--pattern', `${prefix}*`).split('\n').filter(Boolean);
      assert.ok(keys.length > 0, `master ${master.port} holds sessions`);
      total += keys.length;
      for (const key of keys) {
        const ttl = Number(master.cli('PTTL', key));
        assert.ok(ttl > 0 || ttl === -2, `${key} on ${master.port} has PTTL ${ttl}`);
      }
    }
    assert.ok(total >= 60);
  });

  it('runs the scripts on a node that lost them (EVALSHA → NOSCRIPT → EVAL per node)', async () => {
    for (const node of cluster.nodes) node.cli('SCRIPT', 'FLUSH');
    const keys = Array.from({ length: 30 }, () => uniqueKey());
    for (const key of keys) {
      assert.equal((await store.put(key, draft(), Date.now())).version, 1);
      assert.ok(await store.touch(key, 30, Date.now()));
      assert.ok(await store.consume(key));
    }
    for (const master of cluster.masters()) {
      const loaded = master.cli('SCRIPT', 'EXISTS', Scripts.put.sha1, Scripts.consume.sha1);
      assert.equal(loaded, '1\n1', `scripts reloaded on master ${master.port}`);
    }
  });

  it('agrees with the in-memory reference on random operation sequences', async () => {
    await assertAgreesWithModel(store, 60);
  });
});

describe('redis cluster: gRPC server and master failover', () => {
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    server = await startServer({ env: { REDIS_CLUSTER_NODES: cluster.seeds } });
    client = rawClient(server.address);
  });

  after(async () => {
    client?.close();
    await server?.close();
  });

  it('serves every rpc end to end', () => exerciseEveryRpc(client));

  it('a master killed under load: calls fail with UNAVAILABLE, then succeed on the promoted replica without a restart', async (t) => {
    const victim = cluster.masters()[0];
    assert.ok(victim);
    const report = await measureFailover({
      topology: 'cluster',
      client,
      kill: () => victim.stop('SIGKILL'),
    });
    t.diagnostic(`failover figures: ${JSON.stringify(report)}`);
    console.log(`FAILOVER ${JSON.stringify(report)}`);
    assertFailedOverCleanly(report, 15);
    await waitFor('health SERVING again', async () => (await client.health()) === 'SERVING');
    assert.equal(cluster.masters().length, 3, 'a replica took the dead master over');
    assert.ok(!cluster.masters().includes(victim));
  });
});
