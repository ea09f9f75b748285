// `npm run bench`: the service against its baselines, measured in one run,
// alternating targets round by round so that the noise of a shared machine
// hits every one of them. Settings (environment):
//
//   BENCH_OPS          set,get,mixed,update,consume   (short run: mixed)
//   BENCH_CONCURRENCY  in-flight calls, e.g. 1,16,64,256 (short run: 1,64)
//   BENCH_ROUNDS       rounds per cell                  (short run: 2)
//   BENCH_DURATION     measured seconds per run         (short run: 5)
//   BENCH_WARMUP       warm-up seconds per run          (2)
//   BENCH_PAYLOAD      bytes in each of the two payloads (1024)
//   BENCH_WORKERS      WORKERS values of the Redis-backed service, e.g. 1,2 (1)
//   BENCH_CONNS        HTTP/2 connections the Go loadgen spreads its calls over (1);
//                      WORKERS > 1 needs several: node:cluster hands out connections
//   BENCH_TARGETS      which of: redis, no-http, memory, grpc-js, go, store (all available but no-http)
//   GO_REFERENCE       directory holding bin/sessionmanager and bin/loadgen (unset: no Go target)
//   BENCH_BASELINE     another checkout of this service, built (npm ci && npm run build): adds
//                      the target `ts-baseline`, run like `ts-redis`, and ratios against it
//   BENCH_LONG=1       the long matrix: every op, c = 1,16,64,256, 3 rounds of 10 s
//   BENCH_RESULTS      write the tables and the machine description to this Markdown file
//
// Targets: `ts-redis` (the service on Redis), `ts-memory` (on the in-memory
// store: the transport's own cost), `ts-grpc-js` (GRPC_TRANSPORT=grpc-js on
// Redis), `go` (the Go reference on the same Redis), `store` (the Redis
// store's own command mix through the service's own Redis link, no gRPC: the
// storage cost) and `ts-baseline` (another build of the service: before and
// after a change, in one run). Set/get/mixed go through the Go loadgen when
// it exists, the same client for every server; update and consume (which it
// lacks) through bench/loadgen.ts.
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../src/logger.ts';
import { RedisStore } from '../src/store/redis/redis-store.ts';
import { freePort, waitFor } from '../test/support/ports.ts';
import { startRedis } from '../test/support/redis.ts';
import { GO_SERVER, goLoadgen, goServerEnv, hasGo } from './go-reference.ts';
import { type LoadResult, type Op, runLoad } from './loadgen.ts';
import { cpuTicks, machineTicks, processTree, rssMb, TICKS_PER_S } from './proc-stat.ts';
import { serviceEnv, startTarget, type Target } from './targets.ts';

const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const env = process.env;
const long = env.BENCH_LONG === '1';
const list = (value: string | undefined, fallback: string) =>
  (value ?? fallback).split(',').filter((item) => item !== '');
const OPS = list(env.BENCH_OPS, long ? 'set,get,mixed,update,consume' : 'mixed') as Op[];
const CONCURRENCY = list(env.BENCH_CONCURRENCY, long ? '1,16,64,256' : '1,64').map(Number);
const ROUNDS = Number(env.BENCH_ROUNDS ?? (long ? 3 : 2));
const DURATION_S = Number(env.BENCH_DURATION ?? (long ? 10 : 5));
const WARMUP_S = Number(env.BENCH_WARMUP ?? 2);
const PAYLOAD = Number(env.BENCH_PAYLOAD ?? 1024);
const WORKERS = list(env.BENCH_WORKERS, '1').map(Number);
const CONNS = Number(env.BENCH_CONNS ?? 1);
const TARGETS = list(env.BENCH_TARGETS, 'redis,memory,grpc-js,go,store');
const BASELINE = env.BENCH_BASELINE ? resolve(env.BENCH_BASELINE, 'dist/main.js') : undefined;
/** The Go reference serves Set, Get and Delete only: it has no row for update or consume. */
const GO_OPS: readonly Op[] = ['set', 'get', 'mixed'];

interface Row extends LoadResult {
  target: string;
  op: Op;
  concurrency: number;
  round: number;
  serverCpuPct: number;
  redisCpuPct: number;
  othersPct: number;
  rssMb: number;
}

/** Measures the CPU of `pids`, redis and the whole machine over the measured window. */
async function measured(
  pids: number[],
  redisPid: number,
  load: () => Promise<LoadResult>,
  loadIsSeparate: boolean,
) {
  let start:
    | { server: number; redis: number; own: number; machine: number; at: number }
    | undefined;
  let end: typeof start;
  const sample = () => ({
    server: pids.reduce((sum, pid) => sum + cpuTicks(pid), 0),
    redis: cpuTicks(redisPid),
    own: cpuTicks(process.pid),
    machine: machineTicks(),
    at: performance.now(),
  });
  const first = setTimeout(() => {
    start = sample();
  }, WARMUP_S * 1000);
  const second = setTimeout(
    () => {
      end = sample();
    },
    (WARMUP_S + DURATION_S) * 1000,
  );
  const result = await load();
  clearTimeout(first);
  clearTimeout(second);
  const a = start ?? sample();
  const b = end ?? sample();
  const seconds = (b.at - a.at) / 1000;
  const pct = (ticks: number) => (ticks / TICKS_PER_S / seconds) * 100;
  const server = pct(b.server - a.server);
  const redis = pct(b.redis - a.redis);
  return {
    result,
    serverCpuPct: server,
    redisCpuPct: redis,
    othersPct:
      pct(b.machine - a.machine) - server - redis - (loadIsSeparate ? pct(b.own - a.own) : 0),
    rssMb: pids.reduce((sum, pid) => sum + rssMb(pid), 0),
  };
}

function goLoad(target: Target, op: Op, concurrency: number, watch: string) {
  return goLoadgen(
    [
      '-addr',
      `127.0.0.1:${target.port}`,
      '-op',
      op,
      '-c',
      String(concurrency),
      '-conns',
      String(CONNS),
      '-d',
      `${DURATION_S}s`,
      '-warmup',
      `${WARMUP_S}s`,
      '-payload',
      String(PAYLOAD),
      '-attrs',
      '2',
      '-watch',
      watch,
    ],
    (DURATION_S + 60) * 1000,
  );
}

async function runOne(
  target: Target,
  redisPid: number,
  op: Op,
  concurrency: number,
  round: number,
) {
  const pids = processTree(target.pid);
  const base = { target: target.name, op, concurrency, round };
  const rss = () => pids.reduce((sum, pid) => sum + rssMb(pid), 0);
  if (hasGo && (op === 'set' || op === 'get' || op === 'mixed')) {
    const watch = [...pids.map((pid, i) => `s${i}=${pid}`), `redis=${redisPid}`].join(',');
    const json = goLoad(target, op, concurrency, watch);
    const cpu = json.cpu_pct;
    return {
      ...json,
      // After the loadgen's JSON, whose own `target` is the address.
      ...base,
      serverCpuPct: pids.reduce((sum, _, i) => sum + (cpu[`s${i}`] ?? 0), 0),
      redisCpuPct: cpu.redis ?? 0,
      othersPct: cpu.others ?? 0,
      rssMb: rss(),
    } satisfies Row;
  }
  const m = await measured(
    pids,
    redisPid,
    () =>
      runLoad({
        address: `127.0.0.1:${target.port}`,
        op,
        concurrency,
        warmupMs: WARMUP_S * 1000,
        durationMs: DURATION_S * 1000,
        payloadBytes: PAYLOAD,
        threads: 2,
      }),
    // The load generator's threads run in this process: not the neighbours' CPU.
    true,
  );
  return {
    ...base,
    ...m.result,
    serverCpuPct: m.serverCpuPct,
    redisCpuPct: m.redisCpuPct,
    othersPct: m.othersPct,
    rssMb: m.rssMb,
  } satisfies Row;
}

/** The Redis store's own command mix through its standalone link, no gRPC: the storage cost. */
async function storeOnly(redisPort: number, redisPid: number, op: Op, concurrency: number) {
  const store = new RedisStore(
    {
      topology: { kind: 'standalone' },
      host: '127.0.0.1',
      port: redisPort,
      database: 5,
      username: undefined,
      password: undefined,
      tls: false,
      keyPrefix: 'bench:',
      layout: (env.BENCH_LAYOUT ?? 'compact') as 'compact' | 'legacy',
      payloadPieces: env.BENCH_PAYLOAD_PIECES !== 'off',
      commandTimeoutMs: 5000,
      connectTimeoutMs: 2000,
    },
    {
      maxLifetimeMs: 86_400_000,
      maxBytes: 1 << 20,
      maxAttributes: 1000,
      idempotencyTtlMs: 600_000,
      maxPerOwner: 100,
      atOwnerLimit: 'evict-oldest',
    },
    createLogger('warn'),
  );
  await waitFor('the store', () => store.ping().then(() => true));
  const draft = {
    fleetListRequest: Buffer.alloc(PAYLOAD, 1),
    fleetListResponse: Buffer.alloc(PAYLOAD, 2),
    attributes: new Map([
      ['a', Buffer.alloc(16, 3)],
      ['b', Buffer.alloc(16, 4)],
    ]),
    ttlSeconds: 300,
  };
  const load = async (): Promise<LoadResult> => {
    const begin = performance.now();
    const from = begin + WARMUP_S * 1000;
    const until = from + DURATION_S * 1000;
    const latencies: number[] = [];
    let sequence = 0;
    const timed = async (work: () => Promise<unknown>) => {
      const t0 = performance.now();
      await work();
      const t1 = performance.now();
      if (t0 >= from && t1 <= until) latencies.push(t1 - t0);
    };
    const loop = async () => {
      const key = `k${sequence++}`;
      await store.put(key, draft, Date.now());
      while (performance.now() < until) {
        const now = Date.now();
        if (op === 'get') await timed(() => store.get(key, now, false));
        else if (op === 'update') {
          await timed(() =>
            store.update(
              key,
              { setAttributes: draft.attributes, removeAttributes: [], ttlSeconds: 0 },
              now,
            ),
          );
        } else {
          await timed(() => store.put(key, draft, now));
          if (op === 'mixed') await timed(() => store.get(key, Date.now(), false));
          if (op === 'consume') await timed(() => store.consume(key, Date.now()));
        }
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
    latencies.sort((a, b) => a - b);
    const at = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? 0;
    const round = (ms: number) => Math.round(ms * 1000) / 1000;
    return {
      ok: latencies.length,
      errors: 0,
      rps: Math.round(latencies.length / DURATION_S),
      p50_ms: round(at(0.5)),
      p90_ms: round(at(0.9)),
      p99_ms: round(at(0.99)),
      max_ms: round(latencies[latencies.length - 1] ?? 0),
      windowMs: DURATION_S * 1000,
    };
  };
  // The load runs in this process: count its CPU as the "server" of this row.
  const m = await measured([process.pid], redisPid, load, false);
  await store.close();
  return m;
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)] ?? 0;
};
const fixed = (value: number, digits = 0) => (Number.isFinite(value) ? value.toFixed(digits) : '–');

function table(rows: Row[]): string {
  const cells = new Map<string, Row[]>();
  for (const row of rows) {
    const key = `${row.op}|${row.concurrency}|${row.target}`;
    cells.set(key, [...(cells.get(key) ?? []), row]);
  }
  // Ratios against the Go reference, and against the baseline build of the
  // same WORKERS value when there is one.
  const bases: Array<[string, (target: string) => string]> = [['go', () => 'go']];
  if (BASELINE) bases.push(['baseline', (t) => `ts-baseline${/ w=\d+$/.exec(t)?.[0] ?? ''}`]);
  const ratioHeads = bases.flatMap(([b]) => [
    `vs ${b}: calls/s`,
    `vs ${b}: p99`,
    `vs ${b}: CPU/call`,
  ]);
  const lines = [
    `| op | c | target | calls/s | p50 ms | p90 ms | p99 ms | max ms | server CPU µs/call | redis CPU µs/call | RSS MB | errors | ${ratioHeads.join(' | ')} | others % |`,
    `|---|---:|---|${'---:|'.repeat(10 + ratioHeads.length)}`,
  ];
  const summary = (group: Row[]) => ({
    rps: median(group.map((r) => r.rps)),
    p50: median(group.map((r) => r.p50_ms)),
    p90: median(group.map((r) => r.p90_ms)),
    p99: median(group.map((r) => r.p99_ms)),
    max: Math.max(...group.map((r) => r.max_ms)),
    cpu: median(group.map((r) => (r.serverCpuPct * 1e4) / r.rps)),
    redis: median(group.map((r) => (r.redisCpuPct * 1e4) / r.rps)),
    rss: Math.max(...group.map((r) => r.rssMb)),
    errors: group.reduce((n, r) => n + r.errors, 0),
    others: median(group.map((r) => r.othersPct)),
  });
  for (const [key, group] of cells) {
    const [op, c, target] = key.split('|');
    const s = summary(group);
    const ratio = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}×` : '–');
    const ratios = bases.flatMap(([, nameOf]) => {
      const baseRows = cells.get(`${op}|${c}|${nameOf(target ?? '')}`);
      const base = baseRows ? summary(baseRows) : undefined;
      return [ratio(s.rps, base?.rps), ratio(s.p99, base?.p99), ratio(s.cpu, base?.cpu)];
    });
    lines.push(
      `| ${op} | ${c} | ${target} | ${fixed(s.rps)} | ${fixed(s.p50, 2)} | ${fixed(s.p90, 2)} | ${fixed(s.p99, 2)} | ${fixed(s.max, 1)} | ${fixed(s.cpu)} | ${fixed(s.redis)} | ${fixed(s.rss)} | ${s.errors} | ${ratios.join(' | ')} | ${fixed(s.others)} |`,
    );
  }
  return lines.join('\n');
}

/** The commit a build was made from, with `+` when its checkout has changes. */
function commit(path: string): string {
  const git = (...args: string[]) =>
    execFileSync('git', ['-C', dirname(path), ...args], { encoding: 'utf8' }).trim();
  try {
    return `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain') ? '+' : ''}`;
  } catch {
    return 'unknown';
  }
}

function machine(): string {
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  return [
    `- CPU: ${os.cpus()[0]?.model ?? 'unknown'} × ${os.availableParallelism()}; memory ${Math.round(os.totalmem() / 2 ** 30)} GiB; ${os.type()} ${os.release()}`,
    `- Node ${process.version}; ${redisVersion.split(' ').slice(0, 3).join(' ')}; Go reference: ${hasGo ? 'built (`GO_REFERENCE`)' : 'absent'}`,
    ...(BASELINE ? [`- builds: ts-redis ${commit(MAIN)}, ts-baseline ${commit(BASELINE)}`] : []),
    `- ${ROUNDS} round(s) of ${WARMUP_S} s warm-up + ${DURATION_S} s measured per cell, targets alternating; payload ${PAYLOAD} B × 2 + 2 attributes of 16 B; ${CONNS === 1 ? 'one HTTP/2 connection' : `${CONNS} HTTP/2 connections`} (Go loadgen); load generator: ${hasGo ? 'Go loadgen for set/get/mixed, ' : ''}bench/loadgen.ts (worker threads, grpc-js) otherwise`,
  ].join('\n');
}

async function main(): Promise<void> {
  if (BASELINE && !existsSync(BASELINE)) {
    throw new Error(`BENCH_BASELINE: ${BASELINE} does not exist (npm ci && npm run build there)`);
  }
  const redis = await startRedis(['--appendonly', 'no']);
  const redisPid = redis.pid;
  const flush = () => redis.cli('FLUSHALL');

  const targets: Target[] = [];
  const add = async (
    name: string,
    command: string,
    args: string[],
    env: Record<string, string>,
  ) => {
    targets.push(await startTarget(name, command, args, env));
  };
  for (const workers of WORKERS) {
    // Only the Redis-backed service keeps its admin/HTTP port (the production
    // default); the `no-http` target measures what that port costs the gRPC path.
    const env = async () =>
      serviceEnv(redis.port, { HTTP_PORT: String(await freePort()), WORKERS: String(workers) });
    const suffix = WORKERS.length > 1 ? ` w=${workers}` : '';
    if (TARGETS.includes('redis')) {
      await add(`ts-redis${suffix}`, process.execPath, [MAIN], await env());
    }
    if (BASELINE) await add(`ts-baseline${suffix}`, process.execPath, [BASELINE], await env());
  }
  if (TARGETS.includes('no-http')) {
    await add(
      'ts-redis no-http',
      process.execPath,
      [MAIN],
      serviceEnv(redis.port, { WORKERS: '1' }),
    );
  }
  if (TARGETS.includes('memory')) {
    // Nothing flushes this store between runs, and the Go loadgen sets each
    // session's TTL itself: the store keeps every session of the bench, so
    // it gets a bound (2 GiB) that a run never reaches, and its RSS column
    // is not the service's.
    await add(
      'ts-memory',
      process.execPath,
      [MAIN],
      serviceEnv(undefined, { WORKERS: '1', MEMORY_MAX_BYTES: String(2 ** 31) }),
    );
  }
  if (TARGETS.includes('grpc-js')) {
    await add(
      'ts-grpc-js',
      process.execPath,
      [MAIN],
      serviceEnv(redis.port, { GRPC_TRANSPORT: 'grpc-js', WORKERS: '1' }),
    );
  }
  if (TARGETS.includes('go') && hasGo) await add('go', GO_SERVER, [], goServerEnv(redis.port));

  const rows: Row[] = [];
  for (const op of OPS) {
    for (const concurrency of CONCURRENCY) {
      for (let round = 1; round <= ROUNDS; round++) {
        // Alternate the order so that no target always runs first after a pause.
        const order = round % 2 === 1 ? targets : [...targets].reverse();
        for (const target of order) {
          if (target.name === 'go' && !GO_OPS.includes(op)) continue;
          flush();
          const row = await runOne(target, redisPid, op, concurrency, round);
          rows.push(row);
          process.stderr.write(
            `${op} c=${concurrency} round ${round} ${target.name}: ${row.rps} calls/s p99 ${row.p99_ms} ms, server ${fixed((row.serverCpuPct * 1e4) / row.rps)} µs/call, errors ${row.errors}, others ${fixed(row.othersPct)}%\n`,
          );
        }
        if (TARGETS.includes('store')) {
          flush();
          const m = await storeOnly(redis.port, redisPid, op, concurrency);
          rows.push({
            target: 'store (no gRPC)',
            op,
            concurrency,
            round,
            ...m.result,
            serverCpuPct: m.serverCpuPct,
            redisCpuPct: m.redisCpuPct,
            othersPct: m.othersPct,
            rssMb: m.rssMb,
          });
        }
      }
    }
  }
  for (const target of targets) await target.stop();
  await redis.dispose();

  const report = `${machine()}\n\n${table(rows)}\n`;
  process.stdout.write(`${report}\n`);
  if (env.BENCH_RESULTS) writeFileSync(env.BENCH_RESULTS, report);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench: ${String(error)}\n`);
    process.exit(1);
  },
);
