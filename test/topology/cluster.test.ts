import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  compactKey,
  keySlot,
  recordKey,
  sameSlotKey,
  secretKey,
} from '../../src/store/redis/keys.ts';
import type { RedisStore } from '../../src/store/redis/redis-store.ts';
import { Scripts } from '../../src/store/redis/scripts.ts';
import { createTokenGenerator } from '../../src/token.ts';
import { aclDenials } from '../support/acl.ts';
import { assertFailedOverCleanly, exerciseEveryRpc, measureFailover } from '../support/failover.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { ownerIndexOnTopology } from '../support/owner-topology.ts';
import { waitFor } from '../support/ports.ts';
import { startServer, type TestServer } from '../support/server.ts';
import { draft, storeContract, uniqueKey } from '../support/store-contract.ts';
import { assertAgreesWithModel } from '../support/store-model.ts';
import { openTopologyStores, startCluster, type TestCluster } from '../support/topology.ts';

/**
 * Everything on one real Redis Cluster (3 masters, 3 replicas), started once
 * for the file: the store contract, the model test, the key layout, the gRPC
 * server, and last (it changes the topology) a master failure under load.
 */

let cluster: TestCluster;
let store: RedisStore;
/** The same cluster as the least-privilege ACL user (docs/security.md, Redis least privilege). */
let aclStore: RedisStore;
/** The default user's store with atOwnerLimit=refuse. */
let refusing: RedisStore;
let closeStores: (() => Promise<void>) | undefined;
const prefix = `cluster-${process.pid}:`;

before(async () => {
  cluster = await startCluster(3, 1);
  ({ store, aclStore, refusing, close: closeStores } = await openTopologyStores(cluster, prefix));
});

after(async () => {
  await closeStores?.();
  await cluster?.dispose();
});

storeContract('redis cluster store', () => ({ store, refusing, now: Date.now }));
storeContract('redis cluster store as the least-privilege ACL user', () => ({
  store: aclStore,
  now: Date.now,
}));

describe('redis cluster: least-privilege ACL', () => {
  it('the contract suite needed nothing outside the ACL on any node', () => {
    for (const node of cluster.nodes)
      assert.deepEqual(aclDenials(node.cli), [], `node ${node.port}`);
  });
});

describe('redis cluster: layout and scripts', () => {
  it('sends each command straight to the master of its slot: no MOVED or ASK redirections', async () => {
    for (const node of cluster.nodes) node.cli('CONFIG', 'RESETSTAT');
    for (let i = 0; i < 30; i++) {
      const key = uniqueKey();
      await store.put(key, draft(), Date.now());
      assert.ok(await store.get(key, Date.now(), false));
      assert.equal(await store.delete(key, Date.now()), true);
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
      // The idempotency secret alone lives on: one small key per prefix (keys.ts).
      for (const key of keys.filter((name) => name !== secretKey(prefix))) {
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
      assert.ok(await store.consume(key, Date.now()));
    }
    for (const master of cluster.masters()) {
      const loaded = master.cli(
        'SCRIPT',
        'EXISTS',
        Scripts.compactPut.sha1,
        Scripts.compactConsume.sha1,
      );
      assert.equal(loaded, '1\n1', `scripts reloaded on master ${master.port}`);
    }
  });

  it("an idempotency record lies in its session's slot, with or without a tagged prefix", async () => {
    const node = cluster.nodes[0];
    assert.ok(node);
    const generate = createTokenGenerator();
    for (const keyPrefix of [prefix, '{tenant-7}:sm:', 'a{b}c:']) {
      for (let i = 0; i < 20; i++) {
        const session = compactKey(keyPrefix, generate());
        const record = recordKey(keyPrefix, session, generate());
        assert.equal(
          node.cli('CLUSTER', 'KEYSLOT', record),
          node.cli('CLUSTER', 'KEYSLOT', session),
        );
      }
    }
  });

  it('keySlot agrees with CLUSTER KEYSLOT, hash tags included', async () => {
    const node = cluster.nodes[0];
    assert.ok(node);
    const generate = createTokenGenerator();
    const keys = [
      ...Array.from({ length: 50 }, () => compactKey(prefix, generate())),
      'foo',
      '{user1000}.following',
      'foo{}{bar}',
      'foo{{bar}}zap',
      'foo{bar}{zap}',
      'naïve-🚕',
      '',
    ];
    for (const key of keys)
      assert.equal(keySlot(key), Number(node.cli('CLUSTER', 'KEYSLOT', key)), key);
  });

  it('rotation keeps both Redis keys in one slot: the cost of the same-slot key search', async (t) => {
    const generate = createTokenGenerator();
    const tries: number[] = [];
    const searchMs: number[] = [];
    for (let i = 0; i < 200; i++) {
      const old = uniqueKey();
      const started = performance.now();
      const found = await sameSlotKey((key) => compactKey(prefix, key), old, generate);
      searchMs.push(performance.now() - started);
      tries.push(found.tries);
      assert.equal(keySlot(compactKey(prefix, found.key)), keySlot(compactKey(prefix, old)));
    }
    const rotateMs: number[] = [];
    for (let i = 0; i < 50; i++) {
      const key = uniqueKey();
      await store.put(key, draft(), Date.now());
      const started = performance.now();
      const rotated = await store.rotate(key, generate, Date.now());
      rotateMs.push(performance.now() - started);
      assert.ok(rotated && (await store.get(rotated.sessionKey, Date.now(), false)));
    }
    const sorted = (values: number[]) => [...values].sort((a, b) => a - b);
    const at = (values: number[], q: number) =>
      sorted(values)[Math.min(values.length - 1, Math.floor(q * values.length))] ?? 0;
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const figures = {
      searches: tries.length,
      triesMean: Math.round(mean(tries)),
      triesP50: at(tries, 0.5),
      triesP99: at(tries, 0.99),
      searchMsMean: Number(mean(searchMs).toFixed(1)),
      searchMsP99: Number(at(searchMs, 0.99).toFixed(1)),
      usPerTry: Number(((mean(searchMs) * 1000) / mean(tries)).toFixed(2)),
      rotations: rotateMs.length,
      rotateMsP50: Number(at(rotateMs, 0.5).toFixed(1)),
      rotateMsP99: Number(at(rotateMs, 0.99).toFixed(1)),
    };
    t.diagnostic(`rotation figures: ${JSON.stringify(figures)}`);
    console.log(`ROTATE ${JSON.stringify(figures)}`);
    // Geometric with p = 1/16384: the mean of 200 draws lies within ±30 % of 16384.
    assert.ok(
      figures.triesMean > 16384 * 0.7 && figures.triesMean < 16384 * 1.3,
      `${figures.triesMean}`,
    );
  });

  it('agrees with the in-memory reference on random operation sequences', async () => {
    await assertAgreesWithModel(store, 60);
  });
});

ownerIndexOnTopology('redis cluster', () => ({ topology: cluster, prefix }), 60);

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
