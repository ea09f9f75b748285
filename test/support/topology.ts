import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createLogger } from '../../src/logger.ts';
import type { RedisConfig } from '../../src/store/redis/redis-config.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import { ACL_PASSWORD, ACL_USER, createAclUser } from './acl.ts';
import { freePort, waitFor } from './ports.ts';
import { answersPing, startRedis, type TestRedis } from './redis.ts';
import { redisConfig, untilAnswers } from './redis-config.ts';
import { LIMITS } from './store-contract.ts';

/**
 * Real Redis topologies for the tests, built from redis-server processes on
 * free loopback ports: a Cluster of masters with replicas, and a Sentinel
 * group. Readiness is polled; dispose() kills every process it started.
 */

// Every process registers an exit hook that kills it; a topology has many.
process.setMaxListeners(Math.max(process.getMaxListeners(), 64));

const cli = (port: number, ...args: string[]) =>
  execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], {
    encoding: 'utf8',
    timeout: 5000,
  }).trim();

/** `field:value` lines (INFO, CLUSTER INFO) as a map. */
function fields(text: string): Map<string, string> {
  const map = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const at = line.indexOf(':');
    if (at > 0) map.set(line.slice(0, at), line.slice(at + 1).trim());
  }
  return map;
}

async function disposeAll(nodes: Array<{ dispose(): Promise<void> }>): Promise<void> {
  await Promise.allSettled(nodes.map((node) => node.dispose()));
}

export interface TestCluster {
  readonly nodes: readonly TestRedis[];
  /** REDIS_CLUSTER_NODES for this cluster. */
  readonly seeds: string;
  /** The nodes that are masters now, as a live node reports them. */
  masters(): TestRedis[];
  /** Polls until every live node reports cluster_state:ok with every slot served. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  dispose(): Promise<void>;
}

export const CLUSTER_NODE_TIMEOUT_MS = 1000;

/** A Redis Cluster: `masters` masters, each with `replicasPerMaster` replicas. */
export async function startCluster(masters = 3, replicasPerMaster = 1): Promise<TestCluster> {
  const count = masters * (1 + replicasPerMaster);
  const nodes: TestRedis[] = [];
  try {
    const started = await Promise.allSettled(
      Array.from({ length: count }, () =>
        startRedis([
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          'nodes.conf',
          '--cluster-node-timeout',
          String(CLUSTER_NODE_TIMEOUT_MS),
          '--cluster-replica-validity-factor',
          '0',
          '--appendonly',
          'no',
        ]),
      ),
    );
    for (const result of started) if (result.status === 'fulfilled') nodes.push(result.value);
    const failed = started.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    execFileSync(
      'redis-cli',
      [
        '--cluster',
        'create',
        ...nodes.map((n) => `127.0.0.1:${n.port}`),
        '--cluster-replicas',
        String(replicasPerMaster),
        '--cluster-yes',
      ],
      { stdio: 'ignore', timeout: 20_000 },
    );
  } catch (error) {
    await disposeAll(nodes);
    throw error;
  }
  const alive = () => nodes.filter((n) => n.running);
  const cluster: TestCluster = {
    nodes,
    seeds: nodes.map((n) => `127.0.0.1:${n.port}`).join(','),
    masters() {
      const lines = cli(alive()[0]?.port ?? 0, 'CLUSTER', 'NODES').split('\n');
      const ports = lines
        .filter((l) => /\bmaster\b/.test(l) && !/\bfail\b/.test(l))
        .map((l) => Number(/:(\d+)@/.exec(l)?.[1]));
      return nodes.filter((n) => ports.includes(n.port));
    },
    async waitHealthy(timeoutMs = 20_000) {
      await waitFor(
        'the cluster to report state ok on every node, with every replica in sync',
        async () =>
          alive().every((node) => {
            const info = fields(cli(node.port, 'CLUSTER', 'INFO'));
            if (info.get('cluster_state') !== 'ok') return false;
            if (info.get('cluster_slots_ok') !== '16384') return false;
            const replication = fields(cli(node.port, 'INFO', 'replication'));
            return (
              replication.get('role') === 'master' || replication.get('master_link_status') === 'up'
            );
          }) && cluster.masters().length === masters,
        timeoutMs,
      );
    },
    dispose: () => disposeAll(nodes),
  };
  try {
    await cluster.waitHealthy();
  } catch (error) {
    await cluster.dispose();
    throw error;
  }
  return cluster;
}

/** `redis-server conf --sentinel` where the build supports it (Debian's does), else redis-sentinel. */
function sentinelCommand(file: string): string[] {
  const help = spawnSync('redis-server', ['--help'], { encoding: 'utf8' });
  return `${help.stdout}${help.stderr}`.includes('--sentinel')
    ? ['redis-server', file, '--sentinel']
    : ['redis-sentinel', file];
}

interface Sentinel {
  readonly port: number;
  dispose(): Promise<void>;
}

async function startSentinel(masterName: string, masterPort: number): Promise<Sentinel> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sessionmanager-sentinel-'));
  const file = join(dir, 'sentinel.conf');
  writeFileSync(
    file,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 10000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n'),
  );
  const [command, ...args] = sentinelCommand(file);
  const child: ChildProcess = spawn(command ?? 'redis-server', args, { stdio: 'ignore' });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  const dispose = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      kill();
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(`redis sentinel on port ${port}`, () => answersPing(port));
  } catch (error) {
    await dispose();
    throw error;
  }
  return { port, dispose };
}

export interface TestSentinelGroup {
  readonly masterName: string;
  /** The data nodes, first the initial master, then its replica. */
  readonly nodes: readonly TestRedis[];
  /** REDIS_SENTINELS for this group. */
  readonly sentinels: string;
  /** The master's port as the sentinels report it now. */
  masterPort(): number;
  dispose(): Promise<void>;
}

/** One master, one replica and three sentinels (quorum 2, master down after 1 s). */
export async function startSentinelGroup(masterName = 'sessions'): Promise<TestSentinelGroup> {
  const owned: Array<{ dispose(): Promise<void> }> = [];
  try {
    const master = await startRedis();
    owned.push(master);
    const replica = await startRedis(['--replicaof', '127.0.0.1', String(master.port)]);
    owned.push(replica);
    await waitFor('the replica to sync', async () => {
      return fields(replica.cli('INFO', 'replication')).get('master_link_status') === 'up';
    });
    const sentinels: Sentinel[] = [];
    for (let i = 0; i < 3; i++) {
      const sentinel = await startSentinel(masterName, master.port);
      sentinels.push(sentinel);
      owned.push(sentinel);
    }
    await waitFor(
      'every sentinel to know the master, its replica and the other sentinels',
      async () =>
        sentinels.every((s) => {
          const lines = cli(s.port, 'SENTINEL', 'MASTER', masterName).split('\n');
          const info = new Map<string, string>();
          for (let i = 0; i + 1 < lines.length; i += 2)
            info.set(lines[i] ?? '', lines[i + 1] ?? '');
          return info.get('num-other-sentinels') === '2' && info.get('num-slaves') === '1';
        }),
      20_000,
    );
    return {
      masterName,
      nodes: [master, replica],
      sentinels: sentinels.map((s) => `127.0.0.1:${s.port}`).join(','),
      masterPort: () =>
        Number(
          cli(sentinels[0]?.port ?? 0, 'SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName).split(
            '\n',
          )[1],
        ),
      dispose: () => disposeAll(owned),
    };
  } catch (error) {
    await disposeAll(owned);
    throw error;
  }
}

/** The store settings for a topology: host and port unused, database 0 on Cluster. */
export function topologyConfig(
  topology: TestCluster | TestSentinelGroup,
  keyPrefix: string,
): RedisConfig {
  const nodes = (list: string) =>
    list.split(',').map((node) => ({ host: '127.0.0.1', port: Number(node.split(':')[1]) }));
  const cluster = 'seeds' in topology;
  return {
    ...redisConfig(6379, keyPrefix),
    topology: cluster
      ? { kind: 'cluster', nodes: nodes(topology.seeds) }
      : {
          kind: 'sentinel',
          sentinels: nodes(topology.sentinels),
          masterName: topology.masterName,
          sentinelUsername: undefined,
          sentinelPassword: undefined,
        },
    host: '',
    database: cluster ? 0 : 5,
  };
}

/** A store on `config`, once it answers. */
export async function openStore(config: RedisConfig, limits = LIMITS): Promise<RedisStore> {
  const store = new RedisStore(config, limits, createLogger('silent'));
  await untilAnswers(store, `the ${config.topology.kind} store to answer`);
  return store;
}

/**
 * The stores every topology suite runs on: one as the default user, one as
 * the service's least-privilege ACL user, created on every data node (ACLs
 * are per node and not replicated: a replica needs the user after a
 * failover), and one as the default user that refuses a new session at an
 * owner's limit (the contract's refusal cases).
 */
export async function openTopologyStores(
  topology: TestCluster | TestSentinelGroup,
  keyPrefix: string,
): Promise<{
  store: RedisStore;
  aclStore: RedisStore;
  refusing: RedisStore;
  close(): Promise<void>;
}> {
  const config = topologyConfig(topology, keyPrefix);
  const store = await openStore(config);
  const refusing = await openStore(config, { ...LIMITS, atOwnerLimit: 'refuse' });
  for (const node of topology.nodes) createAclUser(node.cli, keyPrefix, 'seeds' in topology);
  const aclStore = await openStore({ ...config, username: ACL_USER, password: ACL_PASSWORD });
  return {
    store,
    aclStore,
    refusing,
    close: async () => {
      await Promise.all([store.close(), aclStore.close(), refusing.close()]);
    },
  };
}
