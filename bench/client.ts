// `npm run bench:client`: what a caller pays per call, side by side in one
// run against one server (the service on its lean transport, Redis store):
//
//   lean       @sessionmanager/client, the default (lean) transport, rawCodec
//   grpc-js    @sessionmanager/client with transport: 'grpc-js', rawCodec
//   go         the Go loadgen's client (grpc-go): its cpu_pct.loadgen over its calls/s
//   redis      node-redis hGetAll / hSet of the same 2 KB hash, from this process
//
// CPU per call is this process's CPU (process.cpuUsage) over the calls that
// completed in the measured window; `others %` is the rest of the machine's
// CPU minus this process, the server and Redis: rows where it is high were
// measured next to a neighbour's load. Settings (environment):
//
//   BENCH_OPS          get,set,mixed          (mixed: a set then a get of its key, 2 calls)
//   BENCH_CONCURRENCY  1,16,64,256
//   BENCH_ROUNDS       2                       rounds per cell, targets alternating
//   BENCH_DURATION     5                       measured seconds per run
//   BENCH_WARMUP       2                       warm-up seconds per run
//   BENCH_CLIENTS      lean,grpc-js,go,redis
//   GO_REFERENCE       directory holding bin/loadgen (unset: no Go row)
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient as createRedis } from '@redis/client';
import { createClient, rawCodec } from '../client/src/index.ts';
import { freePort, waitFor } from '../test/support/ports.ts';

type Op = 'get' | 'set' | 'mixed';
const env = process.env;
const list = (value: string | undefined, fallback: string) =>
  (value ?? fallback).split(',').filter((item) => item !== '');
const OPS = list(env.BENCH_OPS, 'get,set,mixed') as Op[];
const CONCURRENCY = list(env.BENCH_CONCURRENCY, '1,16,64,256').map(Number);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 2);
const DURATION_MS = Number(env.BENCH_DURATION ?? 5) * 1000;
const WARMUP_MS = Number(env.BENCH_WARMUP ?? 2) * 1000;
const GO_LOADGEN = join(env.GO_REFERENCE ?? '', 'bin/loadgen');
const hasGo = Boolean(env.GO_REFERENCE) && existsSync(GO_LOADGEN);
const CLIENTS = list(env.BENCH_CLIENTS, 'lean,grpc-js,go,redis').filter(
  (name) => name !== 'go' || hasGo,
);
const PAYLOAD = randomBytes(1024);
const ATTRIBUTES = { a: randomBytes(16), b: randomBytes(16) };
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TICKS_PER_S = 100;

const children: ChildProcess[] = [];
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

function spawnOwned(command: string, args: string[], extraEnv: Record<string, string>) {
  const child = spawn(command, args, {
    env: { PATH: env.PATH ?? '', ...extraEnv },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function machineTicks(): number {
  const [, ...values] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/);
  const numbers = values.filter((v) => v !== '').map(Number);
  return numbers.reduce((a, b) => a + b, 0) - (numbers[3] ?? 0) - (numbers[4] ?? 0);
}

interface Row {
  client: string;
  op: Op;
  concurrency: number;
  callsPerS: number;
  cpuUsPerCall: number;
  p99Ms: number;
  errors: number;
  othersPct: number;
}

/** A closed loop of `concurrency` workers, each running `one` back to back; counts calls and latencies. */
async function closedLoop(
  concurrency: number,
  one: (i: number) => Promise<number>,
): Promise<{ calls: number; errors: number; latencies: number[]; cpuUs: number; ms: number }> {
  let measuring = false;
  let stop = false;
  let calls = 0;
  let errors = 0;
  const latencies: number[] = [];
  const worker = async (w: number) => {
    for (let i = 0; !stop; i++) {
      const started = performance.now();
      try {
        const made = await one(w * 1_000_000 + i);
        if (measuring) {
          calls += made;
          latencies.push(performance.now() - started);
        }
      } catch {
        if (measuring) errors++;
      }
    }
  };
  const workers = Array.from({ length: concurrency }, (_, w) => worker(w));
  await new Promise((resolve) => setTimeout(resolve, WARMUP_MS));
  measuring = true;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await new Promise((resolve) => setTimeout(resolve, DURATION_MS));
  measuring = false;
  const used = process.cpuUsage(cpu);
  const ms = performance.now() - started;
  stop = true;
  await Promise.all(workers);
  return { calls, errors, latencies, cpuUs: used.user + used.system, ms };
}

function p99(latencies: number[]): number {
  const sorted = latencies.sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length * 0.99)] ?? 0;
}

async function sessionClientRow(
  name: 'lean' | 'grpc-js',
  port: number,
  op: Op,
  concurrency: number,
  keys: string[],
) {
  const client = createClient<Buffer, Buffer, Buffer>({
    address: `127.0.0.1:${port}`,
    transport: name,
    retries: false,
    codec: { fleetListRequest: rawCodec, fleetListResponse: rawCodec, attributes: rawCodec },
  });
  const set = () =>
    client.setSession({
      fleetListRequest: PAYLOAD,
      fleetListResponse: PAYLOAD,
      attributes: ATTRIBUTES,
      ttlSeconds: 300,
    });
  const one = async (i: number): Promise<number> => {
    if (op === 'get') {
      const found = await client.getSession({ sessionKey: keys[i % keys.length] as string });
      if (found === null) throw new Error('missing');
      return 1;
    }
    const { sessionKey } = await set();
    if (op === 'set') return 1;
    if ((await client.getSession({ sessionKey })) === null) throw new Error('missing');
    return 2;
  };
  try {
    return await closedLoop(concurrency, one);
  } finally {
    client.close();
  }
}

async function redisRow(port: number, op: Op, concurrency: number) {
  const redis = createRedis({ socket: { host: '127.0.0.1', port } });
  await redis.connect();
  const hash = { request: PAYLOAD, response: PAYLOAD, a: ATTRIBUTES.a, b: ATTRIBUTES.b };
  for (let i = 0; i < 1000; i++) await redis.hSet(`bench:${i}`, hash);
  const one = async (i: number): Promise<number> => {
    const key = `bench:${i % 1000}`;
    if (op !== 'get') await redis.hSet(key, hash);
    if (op === 'set') return 1;
    await redis.hGetAll(key);
    return op === 'mixed' ? 2 : 1;
  };
  try {
    return await closedLoop(concurrency, one);
  } finally {
    await redis.quit();
  }
}

function goRow(port: number, op: Op, concurrency: number, serverPid: number, redisPid: number) {
  const out = execFileSync(
    GO_LOADGEN,
    [
      '-addr',
      `127.0.0.1:${port}`,
      '-op',
      op,
      '-c',
      String(concurrency),
      '-d',
      `${DURATION_MS / 1000}s`,
      '-warmup',
      `${WARMUP_MS / 1000}s`,
      '-payload',
      '1024',
      '-attrs',
      '2',
      '-watch',
      `server=${serverPid},redis=${redisPid}`,
    ],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: DURATION_MS + 60_000 },
  );
  return JSON.parse(out) as {
    ok: number;
    errors: number;
    rps: number;
    p99_ms: number;
    cpu_pct: Record<string, number>;
  };
}

async function main() {
  const redisPort = await freePort();
  const redis = spawnOwned(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    {},
  );
  const grpcPort = await freePort();
  const server = spawnOwned(process.execPath, [join(ROOT, 'dist/main.js')], {
    HOST: '127.0.0.1',
    PORT: String(grpcPort),
    HTTP_PORT: String(await freePort()),
    REDIS_HOST: '127.0.0.1',
    REDIS_PORT: String(redisPort),
    LOG_LEVEL: 'warn',
    WORKERS: '1',
  });
  const probe = createClient({ address: `127.0.0.1:${grpcPort}`, retries: false });
  await waitFor(
    'the server',
    async () => {
      try {
        await probe.deleteSession({ sessionKey: 'probe' });
        return true;
      } catch {
        return false;
      }
    },
    30_000,
  );
  const keys: string[] = [];
  for (let i = 0; i < 1000; i++) {
    const made = await probe.setSession({
      fleetListRequest: PAYLOAD,
      fleetListResponse: PAYLOAD,
      ttlSeconds: 3600,
    });
    keys.push(made.sessionKey);
  }
  probe.close();

  const rows: Row[] = [];
  for (const op of OPS) {
    for (const concurrency of CONCURRENCY) {
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? CLIENTS : [...CLIENTS].reverse();
        for (const client of order) {
          const own = process.pid;
          const before = {
            machine: machineTicks(),
            own: cpuTicks(own),
            server: cpuTicks(server.pid as number),
            redis: cpuTicks(redis.pid as number),
            at: Date.now(),
          };
          let row: Row;
          if (client === 'go') {
            const go = goRow(grpcPort, op, concurrency, server.pid as number, redis.pid as number);
            const loadgenPct = go.cpu_pct.loadgen ?? 0;
            row = {
              client,
              op,
              concurrency,
              callsPerS: go.rps,
              cpuUsPerCall: ((loadgenPct / 100) * 1e6) / go.rps,
              p99Ms: go.p99_ms,
              errors: go.errors,
              othersPct: go.cpu_pct.others ?? 0,
            };
          } else {
            const result =
              client === 'redis'
                ? await redisRow(redisPort, op, concurrency)
                : await sessionClientRow(
                    client as 'lean' | 'grpc-js',
                    grpcPort,
                    op,
                    concurrency,
                    keys,
                  );
            const after = {
              machine: machineTicks(),
              own: cpuTicks(own),
              server: cpuTicks(server.pid as number),
              redis: cpuTicks(redis.pid as number),
              at: Date.now(),
            };
            const seconds = (after.at - before.at) / 1000;
            const pct = (ticks: number) => (ticks / TICKS_PER_S / seconds) * 100;
            row = {
              client,
              op,
              concurrency,
              callsPerS: (result.calls / result.ms) * 1000,
              cpuUsPerCall: result.cpuUs / Math.max(1, result.calls),
              p99Ms: p99(result.latencies),
              errors: result.errors,
              othersPct:
                pct(after.machine - before.machine) -
                pct(after.own - before.own) -
                pct(after.server - before.server) -
                pct(after.redis - before.redis),
            };
          }
          rows.push(row);
          console.error(
            `${op} c=${concurrency} ${client}: ${row.callsPerS.toFixed(0)} calls/s, ${row.cpuUsPerCall.toFixed(1)} µs CPU/call, p99 ${row.p99Ms.toFixed(2)} ms, errors ${row.errors}, others ${row.othersPct.toFixed(0)}%`,
          );
        }
      }
    }
  }
  report(rows);
  server.kill('SIGTERM');
  redis.kill('SIGTERM');
}

/** The median of each cell's rounds, and the lean client's ratios against Go and node-redis. */
function report(rows: Row[]) {
  const median = (values: number[]) => {
    const sorted = [...values].sort((a, b) => a - b);
    return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
  };
  const cell = (client: string, op: Op, c: number) => {
    const found = rows.filter((r) => r.client === client && r.op === op && r.concurrency === c);
    if (found.length === 0) return undefined;
    return {
      callsPerS: median(found.map((r) => r.callsPerS)),
      cpu: median(found.map((r) => r.cpuUsPerCall)),
      p99: median(found.map((r) => r.p99Ms)),
      errors: found.reduce((sum, r) => sum + r.errors, 0),
      others: median(found.map((r) => r.othersPct)),
    };
  };
  const lines = [
    '| op | in flight | client | calls/s | CPU µs/call | p99 ms | errors | others % | lean CPU ÷ this |',
    '|---|---|---|---|---|---|---|---|---|',
  ];
  for (const op of OPS) {
    for (const c of CONCURRENCY) {
      const lean = cell('lean', op, c);
      for (const client of CLIENTS) {
        const m = cell(client, op, c);
        if (m === undefined) continue;
        const ratio = lean === undefined ? '' : (lean.cpu / m.cpu).toFixed(2);
        lines.push(
          `| ${op} | ${c} | ${client} | ${m.callsPerS.toFixed(0)} | ${m.cpu.toFixed(1)} | ${m.p99.toFixed(2)} | ${m.errors} | ${m.others.toFixed(0)} | ${ratio} |`,
        );
      }
    }
  }
  console.log(lines.join('\n'));
}

await main();
