import { after, before, describe, it } from 'node:test';
import { createClient, createCluster } from '@redis/client';
import type { OwnerLimitPolicy, StoreLimits } from '../../src/store/store.ts';
import { type RedisCommand, redisProbe } from './owner-index.ts';
import { assertOwnerIndexHolds } from './owner-property.ts';
import { raceOwner } from './owner-race.ts';
import { LIMITS } from './store-contract.ts';
import { openStore, type TestCluster, type TestSentinelGroup, topologyConfig } from './topology.ts';

const POLICIES: readonly OwnerLimitPolicy[] = ['evict-oldest', 'refuse'];
/** Writers in the race, and the stores (each with its own connections) they share. */
const WRITERS = 50;
const RACING_STORES = 10;
const RACE_LIMIT = 5;

/** Commands straight to the topology's current master(s) of a key, beside the store. */
async function direct(
  topology: TestCluster | TestSentinelGroup,
): Promise<{ command: RedisCommand; close(): void }> {
  if ('seeds' in topology) {
    const cluster = createCluster({
      rootNodes: topology.masters().map((node) => ({
        socket: { host: '127.0.0.1', port: node.port },
      })),
    });
    await cluster.connect();
    return {
      command: (key, args) => cluster.sendCommand(key, false, args),
      close: () => cluster.destroy(),
    };
  }
  const client = createClient({
    socket: { host: '127.0.0.1', port: topology.masterPort() },
    database: 5,
  });
  await client.connect();
  return { command: (_, args) => client.sendCommand(args), close: () => client.destroy() };
}

/**
 * The owner index on a Sentinel group or a Cluster (issue 18): the property
 * test for both limit policies, and 50 writers racing on one owner at its
 * limit through 10 stores. Run before anything changes the topology.
 */
export function ownerIndexOnTopology(
  name: string,
  harness: () => { topology: TestCluster | TestSentinelGroup; prefix: string },
  numRuns: number,
): void {
  describe(`${name}: owner index`, () => {
    let redis: Awaited<ReturnType<typeof direct>>;

    before(async () => {
      redis = await direct(harness().topology);
    });

    after(() => redis?.close());

    const open = async (limits: StoreLimits) => {
      const { topology, prefix } = harness();
      return openStore(topologyConfig(topology, prefix), limits);
    };

    for (const policy of POLICIES) {
      it(`agrees with the model on random operation sequences, ${policy}`, async () => {
        const limits: StoreLimits = { ...LIMITS, maxPerOwner: 2, atOwnerLimit: policy };
        const store = await open(limits);
        try {
          const probe = redisProbe(redis.command, harness().prefix);
          await assertOwnerIndexHolds(store, limits, { numRuns, probe });
        } finally {
          await store.close();
        }
      });
    }

    for (const policy of POLICIES) {
      it(`${WRITERS} writers on one owner at its limit, ${policy}`, async () => {
        const limits: StoreLimits = { ...LIMITS, maxPerOwner: RACE_LIMIT, atOwnerLimit: policy };
        const stores = await Promise.all(Array.from({ length: RACING_STORES }, () => open(limits)));
        try {
          const figures = await raceOwner({
            stores,
            limit: RACE_LIMIT,
            policy,
            held: RACE_LIMIT,
            writers: WRITERS,
            probe: redisProbe(redis.command, harness().prefix),
          });
          console.log(`owner race figures: ${JSON.stringify({ store: name, ...figures })}`);
        } finally {
          await Promise.all(stores.map((store) => store.close()));
        }
      });
    }
  });
}
