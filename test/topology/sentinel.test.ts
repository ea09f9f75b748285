import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { secretKey } from '../../src/store/redis/keys.ts';
import type { SentinelTopology } from '../../src/store/redis/redis-config.ts';
import type { RedisStore } from '../../src/store/redis/redis-store.ts';
import { ACL_PASSWORD, ACL_USER, aclDenials, sentinelAclRules } from '../support/acl.ts';
import { assertFailedOverCleanly, exerciseEveryRpc, measureFailover } from '../support/failover.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { ownerIndexOnTopology } from '../support/owner-topology.ts';
import { waitFor } from '../support/ports.ts';
import { startServer, type TestServer } from '../support/server.ts';
import { draft, storeContract, uniqueKey } from '../support/store-contract.ts';
import { assertAgreesWithModel } from '../support/store-model.ts';
import {
  openStore,
  openTopologyStores,
  startSentinelGroup,
  type TestSentinelGroup,
  topologyConfig,
} from '../support/topology.ts';

/**
 * Everything on one real Sentinel group (1 master, 1 replica, 3 sentinels),
 * started once for the file: the store contract, the model test, the owner
 * index's model and race tests, the gRPC server, and last (it changes the
 * topology) a failover under load.
 */

let group: TestSentinelGroup;
let store: RedisStore;
/** The same group as the least-privilege ACL user, defined on both data nodes. */
let aclStore: RedisStore;
/** The default user's store with atOwnerLimit=refuse. */
let refusing: RedisStore;
let closeStores: (() => Promise<void>) | undefined;
const prefix = `sentinel-${process.pid}:`;

before(async () => {
  group = await startSentinelGroup();
  ({ store, aclStore, refusing, close: closeStores } = await openTopologyStores(group, prefix));
});

after(async () => {
  await closeStores?.();
  await group?.dispose();
});

storeContract('redis sentinel store', () => ({ store, refusing, now: Date.now }));

storeContract('redis sentinel store as the least-privilege ACL user', () => ({
  store: aclStore,
  now: Date.now,
}));

describe('redis sentinel: least-privilege ACL', () => {
  it('the contract suite needed nothing outside the ACL on the data nodes', () => {
    for (const node of group.nodes) assert.deepEqual(aclDenials(node.cli), [], `node ${node.port}`);
  });

  it('the sentinels accept a least-privilege user of their own (REDIS_SENTINEL_USERNAME)', async () => {
    const sentinels = group.sentinels.split(',').map((s) => Number(s.split(':')[1]));
    const clis = sentinels.map(
      (port) =>
        (...args: string[]) =>
          execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
            encoding: 'utf8',
            timeout: 5000,
          }).trim(),
    );
    for (const cli of clis) {
      const reply = cli('ACL', 'SETUSER', ACL_USER, ...sentinelAclRules(cli));
      assert.equal(reply, 'OK', reply);
    }
    const config = topologyConfig(group, prefix);
    const guarded = await openStore({
      ...config,
      username: ACL_USER,
      password: ACL_PASSWORD,
      topology: {
        ...(config.topology as SentinelTopology),
        sentinelUsername: ACL_USER,
        sentinelPassword: ACL_PASSWORD,
      },
    });
    try {
      const key = uniqueKey();
      await guarded.put(key, draft(), Date.now());
      assert.ok(await guarded.get(key, Date.now(), false));
      for (const [i, cli] of clis.entries())
        assert.deepEqual(aclDenials(cli), [], `sentinel ${sentinels[i]}`);
    } finally {
      await guarded.close();
    }
  });
});

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
    // The idempotency secret alone lives on: one small key per prefix (keys.ts).
    for (const key of keys.filter((name) => name !== secretKey(prefix))) {
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

ownerIndexOnTopology('redis sentinel', () => ({ topology: group, prefix }), 60);

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
