// `npm run bench:memory`: what a session costs in Redis, this service against
// the Go reference. For each payload size and each target: a fresh
// redis-server, the target against it, the Go loadgen creating sessions
// (-op set -keymode server -ttl 3600 -attrs 2: two payloads of the size and
// two 16-byte attributes) until there are BENCH_SESSIONS, the target stopped;
// then the growth of Redis `used_memory` over the sessions. The session count
// is the same for every target, so the keyspace's bucket arrays (a power of
// two above the key count, in two tables: keys and expiries) weigh the same
// in each figure.
//
// BENCH_LISTPACK=1 runs the hash-max-listpack-value study instead: the same
// figure for this service's targets with Redis started at each value, and
// what reading the sessions then costs Redis: HGETALL's usec_per_call (INFO
// commandstats) and Redis's CPU per GetSession (/proc, over the loadgen's
// measured window), from the Go loadgen's `-op get` run.
//
// Settings (environment):
//
//   BENCH_MEMORY_TARGETS  comma-separated targets, each `name VAR=value ...`: `go` is the Go
//                         reference, `ts-baseline` the build in BENCH_BASELINE, any other name
//                         this checkout's build; the VAR=value go to that server's environment,
//                         e.g. `ts,ts-legacy REDIS_SESSION_LAYOUT=legacy,go`
//                         (default: ts, ts-baseline when BENCH_BASELINE is set, go when built)
//   BENCH_BASELINE        another checkout of this service, built (npm ci && npm run build)
//   BENCH_SESSION_KEYS    glob of this service's session keys (<REDIS_KEY_PREFIX>[sS]:*: the
//                         compact layout's S: keys, or the legacy layout's s: ones)
//   BENCH_PAYLOADS        bytes in each of the two payloads (0,100,1024,10240; study: 100,1024)
//   BENCH_SESSIONS        sessions measured per cell (20000)
//   BENCH_CONCURRENCY     the loadgen's calls in flight (16)
//   BENCH_LISTPACK_VALUES hash-max-listpack-value of the study (64,256,1100,4096; 64 is Redis's default)
//   BENCH_DURATION, BENCH_WARMUP  the study's GetSession runs, seconds (5, 2)
//   BENCH_ROUNDS          GetSession runs per cell, cells alternating; the median reported (3)
//   BENCH_GET_KEYS        sessions the GetSession run reads round robin (1000)
//   GO_REFERENCE          directory holding bin/sessionmanager and bin/loadgen (required)
//   BENCH_RESULTS         also write the report to this Markdown file
import { execFileSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { createClient } from '@redis/client';
import { waitFor } from '../test/support/ports.ts';
import { startRedis, type TestRedis } from '../test/support/redis.ts';
import { GO_SERVER, goLoadgen, goServerEnv, hasGo } from './go-reference.ts';
import { serviceEnv, startTarget, type Target } from './targets.ts';

const env = process.env;
const list = (value: string | undefined, fallback: string) =>
  (value ?? fallback).split(',').filter((item) => item.trim() !== '');
const LISTPACK = env.BENCH_LISTPACK === '1';
const PAYLOADS = list(env.BENCH_PAYLOADS, LISTPACK ? '100,1024' : '0,100,1024,10240').map(Number);
const SESSIONS = Number(env.BENCH_SESSIONS ?? 20_000);
const CONCURRENCY = Number(env.BENCH_CONCURRENCY ?? 16);
const LISTPACK_VALUES = list(env.BENCH_LISTPACK_VALUES, '64,256,1100,4096').map(Number);
const DURATION_S = Number(env.BENCH_DURATION ?? 5);
const WARMUP_S = Number(env.BENCH_WARMUP ?? 2);
const GET_KEYS = Number(env.BENCH_GET_KEYS ?? 1000);
const ROUNDS = Number(env.BENCH_ROUNDS ?? 3);
const BASELINE = env.BENCH_BASELINE ? resolve(env.BENCH_BASELINE) : undefined;
const MAIN = fileURLToPath(new URL('../dist/main.js', import.meta.url));
const ATTRIBUTES = 2;
const ATTRIBUTE_BYTES = 16;
/** Keys beside the sessions a run may leave (the idempotency secret); more: a wrong session glob. */
const MAX_OTHER_KEYS = 10;

interface TargetSpec {
  readonly name: string;
  readonly command: string;
  readonly args: string[];
  readonly env: (redisPort: number) => Record<string, string>;
  /** Glob of the target's session keys in Redis. */
  readonly sessionKeys: string;
}

function targetSpec(entry: string): TargetSpec {
  const [name = '', ...assignments] = entry.trim().split(/\s+/);
  const extra: Record<string, string> = {};
  for (const assignment of assignments) {
    const match = /^([A-Z_][A-Z0-9_]*)=(.*)$/.exec(assignment);
    if (!match?.[1]) {
      throw new Error(`BENCH_MEMORY_TARGETS: "${assignment}" in "${entry}" is not VAR=value`);
    }
    extra[match[1]] = match[2] ?? '';
  }
  if (name === 'go') {
    if (!hasGo) throw new Error('BENCH_MEMORY_TARGETS names go: set GO_REFERENCE to its build');
    return {
      name,
      command: GO_SERVER,
      args: [],
      env: (port) => ({ ...goServerEnv(port), ...extra }),
      sessionKeys: 'session:*',
    };
  }
  let main = MAIN;
  if (name === 'ts-baseline') {
    if (!BASELINE) throw new Error('BENCH_MEMORY_TARGETS names ts-baseline: set BENCH_BASELINE');
    main = join(BASELINE, 'dist/main.js');
  }
  if (!existsSync(main)) throw new Error(`${main} does not exist: build it (npm run build)`);
  return {
    name,
    command: process.execPath,
    args: [main],
    env: (port) => serviceEnv(port, extra),
    sessionKeys: env.BENCH_SESSION_KEYS ?? `${extra.REDIS_KEY_PREFIX ?? 'sessionmanager:'}[sS]:*`,
  };
}

/** The targets this run measures: the study's are this service's alone. */
function measuredTargets(): TargetSpec[] {
  const names = env.BENCH_MEMORY_TARGETS
    ? list(env.BENCH_MEMORY_TARGETS, '')
    : ['ts', ...(BASELINE ? ['ts-baseline'] : []), ...(hasGo ? ['go'] : [])];
  const targets = names.map(targetSpec);
  return LISTPACK ? targets.filter((t) => t.name !== 'go') : targets;
}

/** One connection to the bench's Redis, kept for the whole cell (db 5, where every target writes). */
async function probe(port: number) {
  const client = createClient({ socket: { host: '127.0.0.1', port }, database: 5 });
  await client.connect();
  const send = <T>(...args: string[]) => client.sendCommand<T>(args);
  const info = async (section: string) => {
    const text = await send<string>('INFO', section);
    return (field: string) => Number(new RegExp(`^${field}:([^\\r\\n]+)`, 'm').exec(text)?.[1]);
  };
  const scan = async (match: string) => {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await send<[string, string[]]>(
        'SCAN',
        cursor,
        'MATCH',
        match,
        'COUNT',
        '1000',
      );
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    return keys;
  };
  const del = async (keys: string[]) => {
    for (let i = 0; i < keys.length; i += 1000) await send('DEL', ...keys.slice(i, i + 1000));
  };
  return { send, info, scan, del, close: () => client.close() };
}
type Probe = Awaited<ReturnType<typeof probe>>;

/**
 * `used_memory` without the script cache (this service loads its Lua scripts,
 * the Go reference none), once two reads 200 ms apart agree: a keyspace table
 * still rehashing holds its old bucket array beside the new one.
 */
async function settledMemory(redis: Probe): Promise<number> {
  let last = Number.NaN;
  for (let attempt = 0; attempt < 50; attempt++) {
    const memory = await redis.info('memory');
    const now = memory('used_memory') - memory('used_memory_scripts');
    if (now === last) return now;
    last = now;
    await sleep(200);
  }
  throw new Error('Redis used_memory did not settle within 10 s');
}

const loadgenFlags = (target: Target, payload: number) => [
  '-addr',
  `127.0.0.1:${target.port}`,
  '-c',
  String(CONCURRENCY),
  '-payload',
  String(payload),
  '-attrs',
  String(ATTRIBUTES),
  '-ttl',
  '3600',
];

/**
 * Creates sessions through the target until Redis holds SESSIONS keys, in
 * loadgen runs that each make a quarter of what is missing at the rate of the
 * run before, and last at most twice as long as it: a target still warming up
 * gets several times faster from one run to the next. The count overshoots by
 * 50 ms worth of calls at most, and the keyspace's bucket arrays are those of
 * SESSIONS keys.
 */
async function fill(target: Target, redis: Probe, payload: number): Promise<void> {
  let count = await redis.send<number>('DBSIZE');
  let perSecond = 0;
  let seconds = 0.05;
  while (count < SESSIONS) {
    if (perSecond > 0) {
      seconds = Math.min(2 * seconds, Math.max(0.05, (SESSIONS - count) / 4 / perSecond));
    }
    const json = goLoadgen(
      [
        ...loadgenFlags(target, payload),
        '-op',
        'set',
        '-keymode',
        'server',
        '-warmup',
        '0s',
        '-d',
        `${Math.ceil(seconds * 1000)}ms`,
      ],
      Math.ceil((seconds + 60) * 1000),
    );
    if (json.errors > 0) {
      throw new Error(`${target.name}: SetSession errors ${JSON.stringify(json.errors_by_code)}`);
    }
    const now = await redis.send<number>('DBSIZE');
    perSecond = (now - count) / seconds;
    count = now;
  }
}

interface MemoryRow {
  payload: number;
  target: string;
  listpackValue: number | undefined;
  bytesPerSession: number;
  created: number;
  encoding: string;
  fields: number;
  keyBytes: number;
}

/**
 * Bytes per session of one target on a fresh Redis (stopped afterwards): the
 * growth of used_memory from before the target started to after it stopped
 * (its connections closed), with exactly SESSIONS session keys left (the
 * surplus and any other key deleted).
 */
async function measureMemory(
  spec: TargetSpec,
  redis: TestRedis,
  client: Probe,
  payload: number,
  listpackValue: number | undefined,
): Promise<MemoryRow> {
  const before = await settledMemory(client);
  const target = await startTarget(spec.name, spec.command, spec.args, spec.env(redis.port));
  await fill(target, client, payload);
  await target.stop();
  await waitFor(
    `${spec.name}'s Redis connections to close`,
    async () => (await client.info('clients'))('connected_clients') === 1,
  );
  const sessions = await client.scan(spec.sessionKeys);
  const total = await client.send<number>('DBSIZE');
  const sessionSet = new Set(sessions);
  const others = (await client.scan('*')).filter((key) => !sessionSet.has(key));
  if (sessions.length < SESSIONS || others.length > MAX_OTHER_KEYS) {
    throw new Error(
      `${spec.name}: ${sessions.length} of ${total} keys match ${spec.sessionKeys}; set BENCH_SESSION_KEYS to the glob of its session keys`,
    );
  }
  await client.del([...others, ...sessions.slice(SESSIONS)]);
  // Deleting keys never shrinks a bucket array (Redis shrinks below 10% full).
  const slots = (keys: number) => 2 ** Math.ceil(Math.log2(keys));
  const oversized = slots(sessions.length + others.length) > slots(SESSIONS);
  const sample = sessions[0] ?? '';
  const row: MemoryRow = {
    payload,
    target: spec.name,
    listpackValue,
    bytesPerSession: ((await settledMemory(client)) - before) / SESSIONS,
    created: sessions.length,
    encoding: await client.send<string>('OBJECT', 'ENCODING', sample),
    fields: await client.send<number>('HLEN', sample),
    keyBytes: Buffer.byteLength(sample),
  };
  process.stderr.write(
    `payload ${payload}${listpackValue ? ` listpack ${listpackValue}` : ''} ${spec.name}: ${Math.round(row.bytesPerSession)} B per session (${row.created} created, ${others.length} other keys), ${row.encoding}, ${row.fields} fields, key ${row.keyBytes} B${oversized ? `; overshot: the keyspace's bucket arrays are twice those of ${SESSIONS} keys` : ''}\n`,
  );
  return row;
}

interface ReadCost {
  hgetallUs: number;
  redisUsPerGet: number;
  getsPerS: number;
  othersPct: number;
}

/** What GetSession costs Redis in one Go loadgen `-op get` run through a running target. */
async function measureReads(
  target: Target,
  redis: TestRedis,
  client: Probe,
  payload: number,
): Promise<ReadCost> {
  await client.send('CONFIG', 'RESETSTAT');
  const json = goLoadgen(
    [
      ...loadgenFlags(target, payload),
      '-op',
      'get',
      '-keys',
      String(GET_KEYS),
      '-d',
      `${DURATION_S}s`,
      '-warmup',
      `${WARMUP_S}s`,
      '-watch',
      `redis=${redis.pid}`,
    ],
    (WARMUP_S + DURATION_S + 60) * 1000,
  );
  if (json.errors > 0) {
    throw new Error(`${target.name}: GetSession errors ${JSON.stringify(json.errors_by_code)}`);
  }
  const stats = await client.send<string>('INFO', 'commandstats');
  return {
    hgetallUs: Number(/^cmdstat_hgetall:.*usec_per_call=([\d.]+)/m.exec(stats)?.[1]),
    redisUsPerGet: ((json.cpu_pct.redis ?? 0) * 1e4) / json.rps,
    getsPerS: json.rps,
    othersPct: json.cpu_pct.others ?? 0,
  };
}

function medianCost(rounds: ReadCost[]): ReadCost {
  const median = (pick: (cost: ReadCost) => number) => {
    const sorted = rounds.map(pick).sort((a, b) => a - b);
    return sorted[Math.floor((sorted.length - 1) / 2)] ?? Number.NaN;
  };
  return {
    hgetallUs: median((r) => r.hgetallUs),
    redisUsPerGet: median((r) => r.redisUsPerGet),
    getsPerS: median((r) => r.getsPerS),
    othersPct: median((r) => r.othersPct),
  };
}

/** A fresh redis-server with its probe connection, warmed up. */
async function openRedis(args: string[]) {
  const redis = await startRedis(['--appendonly', 'no', ...args]);
  const client = await probe(redis.port);
  // The first calls of these commands grew used_memory by 74 KB in a trial:
  // make them before the first reading.
  await client.scan('*');
  await client.del(['bench:absent']);
  await client.send('DBSIZE');
  await client.info('clients');
  await settledMemory(client);
  return {
    redis,
    client,
    close: async () => {
      client.close();
      await redis.dispose();
    },
  };
}

/**
 * The study at one payload: a Redis per listpack value and target, bytes
 * per session in each, then BENCH_ROUNDS read runs per cell with the cells
 * alternating round by round, so that the noise of a shared machine hits
 * every one of them; each cell reports the medians of its rounds.
 */
async function listpackStudy(targets: TargetSpec[], payload: number) {
  const cells = [];
  for (const value of LISTPACK_VALUES) {
    for (const spec of targets) {
      const { redis, client, close } = await openRedis([
        '--hash-max-listpack-value',
        String(value),
      ]);
      const memory = await measureMemory(spec, redis, client, payload, value);
      const target = await startTarget(spec.name, spec.command, spec.args, spec.env(redis.port));
      cells.push({ redis, client, close, memory, target, rounds: [] as ReadCost[] });
    }
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const cell of round % 2 === 0 ? cells : [...cells].reverse()) {
      cell.rounds.push(await measureReads(cell.target, cell.redis, cell.client, payload));
    }
  }
  const rows = [];
  for (const cell of cells) {
    rows.push({ ...cell.memory, ...medianCost(cell.rounds) });
    await cell.target.stop();
    await cell.close();
  }
  return rows;
}

const bytes = (value: number) => Math.round(value).toLocaleString('en-US');
const payloadBytes = (payload: number) => 2 * payload + ATTRIBUTES * ATTRIBUTE_BYTES;
const sizeName = (payload: number) =>
  payload >= 1024 && payload % 1024 === 0 ? `${payload / 1024} KB` : `${payload} B`;

function memoryTable(rows: MemoryRow[], targets: TargetSpec[]): string {
  const names = targets.map((t) => t.name);
  const versus = names.includes('go') ? names.filter((n) => n !== 'go') : [];
  const lines = [
    `| payload (each of 2) | ${names.map((n) => `${n} B/session`).join(' | ')} | payload bytes | ${versus.map((n) => `${n} ÷ go`).join(' | ')}${versus.length ? ' | ' : ''}encoding (fields) | key bytes |`,
    `|---|${'---:|'.repeat(names.length + 1 + versus.length)}---|---|`,
  ];
  for (const payload of PAYLOADS) {
    const at = (name: string) => rows.find((r) => r.payload === payload && r.target === name);
    const go = at('go');
    const cells = [
      sizeName(payload),
      ...names.map((n) => bytes(at(n)?.bytesPerSession ?? Number.NaN)),
      bytes(payloadBytes(payload)),
      ...versus.map((n) =>
        go ? `${((at(n)?.bytesPerSession ?? Number.NaN) / go.bytesPerSession).toFixed(2)}×` : '–',
      ),
      names.map((n) => `${n} ${at(n)?.encoding} (${at(n)?.fields})`).join(', '),
      names.map((n) => `${n} ${at(n)?.keyBytes}`).join(', '),
    ];
    lines.push(`| ${cells.join(' | ')} |`);
  }
  return lines.join('\n');
}

function listpackTable(rows: Array<MemoryRow & ReadCost>): string {
  const lines = [
    '| payload (each of 2) | hash-max-listpack-value | target | B/session | encoding | HGETALL µs/call | Redis CPU µs/GetSession | GetSession calls/s | others % |',
    '|---|---:|---|---:|---|---:|---:|---:|---:|',
  ];
  for (const r of rows) {
    lines.push(
      `| ${sizeName(r.payload)} | ${r.listpackValue} | ${r.target} | ${bytes(r.bytesPerSession)} | ${r.encoding} | ${r.hgetallUs.toFixed(2)} | ${r.redisUsPerGet.toFixed(1)} | ${Math.round(r.getsPerS)} | ${Math.round(r.othersPct)} |`,
    );
  }
  return lines.join('\n');
}

function setup(targets: TargetSpec[]): string {
  const redisVersion = execFileSync('redis-server', ['--version'], { encoding: 'utf8' });
  const names = targets.map((t) => t.name).join(', ');
  return [
    `- ${redisVersion.split(' ').slice(0, 3).join(' ')}, \`--save '' --appendonly no\`, a fresh one per cell; ${SESSIONS} sessions per cell, created by the Go loadgen (\`-op set -keymode server -ttl 3600 -attrs ${ATTRIBUTES} -c ${CONCURRENCY}\`)`,
    `- bytes per session: growth of used_memory (without the script cache) from before the target started to after it stopped, over ${SESSIONS}; payload bytes: 2 payloads + ${ATTRIBUTES} attribute values of ${ATTRIBUTE_BYTES} B`,
    `- targets: ${names}${env.BENCH_MEMORY_TARGETS ? ` (\`BENCH_MEMORY_TARGETS='${env.BENCH_MEMORY_TARGETS}'\`)` : ''}`,
    ...(LISTPACK
      ? [
          `- reads: the Go loadgen \`-op get -keys ${GET_KEYS} -c ${CONCURRENCY}\`, ${WARMUP_S} s warm-up + ${DURATION_S} s measured, median of ${ROUNDS} runs, cells alternating; HGETALL µs/call from INFO commandstats, Redis CPU from /proc over the measured window`,
        ]
      : []),
  ].join('\n');
}

async function main(): Promise<void> {
  if (!hasGo) throw new Error('GO_REFERENCE: the Go loadgen creates the sessions; build it');
  const targets = measuredTargets();
  let table: string;
  if (LISTPACK) {
    const rows: Array<MemoryRow & ReadCost> = [];
    for (const payload of PAYLOADS) rows.push(...(await listpackStudy(targets, payload)));
    table = listpackTable(rows);
  } else {
    const rows: MemoryRow[] = [];
    for (const payload of PAYLOADS) {
      for (const spec of targets) {
        const { redis, client, close } = await openRedis([]);
        rows.push(await measureMemory(spec, redis, client, payload, undefined));
        await close();
      }
    }
    table = memoryTable(rows, targets);
  }
  const report = `${setup(targets)}\n\n${table}\n`;
  process.stdout.write(`${report}\n`);
  if (env.BENCH_RESULTS) writeFileSync(env.BENCH_RESULTS, report);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`bench:memory: ${String(error)}\n`);
    process.exit(1);
  },
);
