// The published HTTP/2 attacks against the service, lean transport against
// GRPC_TRANSPORT=grpc-js, side by side in one run. For each attack and each
// transport, on a fresh server on Redis:
//   1. a legitimate client calls for BEFORE_S seconds: calls/s before;
//   2. the attacker (bench/attack-process.ts, its own process) starts, and the
//      legitimate client calls for ATTACK_S seconds: calls/s during;
//   3. the server's RSS is sampled every 250 ms throughout.
// The figure is calls/s during / calls/s before, lean against grpc-js, with
// the RSS growth and how many attacking connections the server closed.
//
//   npm run build && node --import tsx bench/attacks.ts
//   ATTACK_S=10 ATTACK_ROUNDS=3 ATTACKS='rapid reset,HPACK bomb' node --import tsx bench/attacks.ts
//
// The legitimate client is the Go loadgen (get, 16 in flight) when
// $GO_REFERENCE/bin/loadgen exists, else bench/loadgen.ts.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rawClient } from '../test/support/grpc.ts';
import {
  ATTACKS,
  type AttackReport,
  LARGE_SESSION_BYTES,
  LARGE_SESSION_KEY,
} from '../test/support/h2-attacks.ts';
import { freePort, waitFor } from '../test/support/ports.ts';
import { runLoad } from './loadgen.ts';

const env = process.env;
const ATTACK_S = Number(env.ATTACK_S ?? 10);
const BEFORE_S = Number(env.BEFORE_S ?? 3);
const CONCURRENCY = Number(env.ATTACK_LEGIT_CONCURRENCY ?? 16);
/** Runs of each cell; the table shows the median fraction (the machine is shared and noisy). */
const ROUNDS = Number(env.ATTACK_ROUNDS ?? 1);
const SELECTED = env.ATTACKS ? env.ATTACKS.split(',').map((s) => s.trim()) : undefined;
const GO_LOADGEN = join(env.GO_REFERENCE ?? '', 'bin/loadgen');
const hasGo = env.GO_REFERENCE !== undefined && existsSync(GO_LOADGEN);
const TRANSPORTS = ['lean', 'grpc-js'] as const;

function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1]) / 1024;
  } catch {
    return 0;
  }
}

/** Calls/s of the legitimate client over `seconds`, after `warmupS` of the same load. */
async function legitimateRate(port: number, seconds: number, warmupS: number): Promise<number> {
  if (hasGo) {
    const out = await new Promise<string>((resolve) => {
      const child = spawn(
        GO_LOADGEN,
        [
          '-addr',
          `127.0.0.1:${port}`,
          '-op',
          'get',
          '-c',
          String(CONCURRENCY),
          '-d',
          `${seconds}s`,
          '-warmup',
          `${warmupS}s`,
          '-keys',
          '200',
          '-timeout',
          '5s',
        ],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      );
      let text = '';
      child.stdout.on('data', (chunk: Buffer) => {
        text += chunk.toString();
      });
      child.once('close', () => resolve(text));
    });
    try {
      return (JSON.parse(out) as { ok: number }).ok / seconds;
    } catch {
      return 0;
    }
  }
  try {
    const result = await runLoad({
      address: `127.0.0.1:${port}`,
      op: 'get',
      concurrency: CONCURRENCY,
      warmupMs: warmupS * 1000,
      durationMs: seconds * 1000,
      payloadBytes: 1024,
      threads: 2,
    });
    return result.ok / seconds;
  } catch {
    // Its keys could not even be written: the attack starved it (as grpc-js
    // under a zero-window reader), which is a rate of 0, as for the Go loadgen.
    return 0;
  }
}

async function startServer(transport: string, redisPort: number) {
  const port = await freePort();
  const child = spawn(process.execPath, ['dist/main.js'], {
    env: {
      PATH: env.PATH ?? '',
      HOST: '127.0.0.1',
      PORT: String(port),
      HTTP_PORT: '0',
      LOG_LEVEL: 'warn',
      GRPC_TRANSPORT: transport,
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(redisPort),
    },
    stdio: 'ignore',
  });
  const client = rawClient(`127.0.0.1:${port}`);
  await waitFor('the server', async () => (await client.health()) === 'SERVING', 20_000);
  await client.call('SetSession', {
    session_key: LARGE_SESSION_KEY,
    fleet_list_response: Buffer.alloc(LARGE_SESSION_BYTES),
    ttl_seconds: 3600,
  });
  client.close();
  return { port, child };
}

function stopped(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null) resolve();
    else child.once('exit', () => resolve());
    child.kill('SIGKILL');
  });
}

interface Cell {
  fraction: number;
  before: number;
  during: number;
  rssGrowthMb: number;
  report: AttackReport | undefined;
  alive: boolean;
}

async function measure(attack: string, transport: string, redisPort: number): Promise<Cell> {
  const { port, child } = await startServer(transport, redisPort);
  const pid = child.pid as number;
  // Warmed up first: a fresh server's first seconds are slower (JIT, connection set-up).
  const before = await legitimateRate(port, BEFORE_S, 2);
  const rssBefore = rssMb(pid);
  let rssPeak = rssBefore;
  const sampler = setInterval(() => {
    rssPeak = Math.max(rssPeak, rssMb(pid));
  }, 250);
  const attacker = spawn(
    process.execPath,
    ['--import', 'tsx', 'bench/attack-process.ts', attack, String(port), String(ATTACK_S)],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let reportText = '';
  attacker.stdout.on('data', (chunk: Buffer) => {
    reportText += chunk.toString();
  });
  const attackerDone = new Promise<void>((resolve) => attacker.once('close', () => resolve()));
  // The attacker needs a moment to start; the window measures it attacking.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const during = await legitimateRate(port, ATTACK_S - 1, 0);
  await attackerDone;
  clearInterval(sampler);
  const alive = child.exitCode === null;
  await stopped(child);
  let report: AttackReport | undefined;
  try {
    report = JSON.parse(reportText) as AttackReport;
  } catch {
    report = undefined;
  }
  return {
    fraction: before > 0 ? during / before : 0,
    before,
    during,
    rssGrowthMb: rssPeak - rssBefore,
    report,
    alive,
  };
}

/** The run with the median fraction, and the largest RSS growth of all runs. */
function median(runs: Cell[]): Cell {
  const sorted = [...runs].sort((a, b) => a.fraction - b.fraction);
  const middle = sorted[Math.floor(sorted.length / 2)] as Cell;
  return { ...middle, rssGrowthMb: Math.max(...runs.map((run) => run.rssGrowthMb)) };
}

async function main() {
  const redisPort = await freePort();
  const redis = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
  await waitFor('redis-server', async () => {
    try {
      return execFileSync('redis-cli', ['-p', String(redisPort), 'ping'], {
        encoding: 'utf8',
      }).includes('PONG');
    } catch {
      return false;
    }
  });
  const attacks = ATTACKS.filter((a) => !SELECTED || SELECTED.includes(a.name));
  const rows: string[] = [];
  console.log(
    `# HTTP/2 attacks: legitimate calls/s during / before, lean vs grpc-js (${BEFORE_S} s before, ${ATTACK_S} s attack, ${ROUNDS} round(s), median; legitimate client: ${hasGo ? 'Go loadgen' : 'bench/loadgen.ts'} get x${CONCURRENCY})`,
  );
  let turn = 0;
  for (const attack of attacks) {
    const cells: Record<string, Cell[]> = { lean: [], 'grpc-js': [] };
    for (let round = 0; round < ROUNDS; round++) {
      // Alternate which transport goes first, so drift on a shared machine hits both.
      const order = turn++ % 2 === 0 ? TRANSPORTS : [...TRANSPORTS].reverse();
      for (const transport of order) {
        const cell = await measure(attack.name, transport, redisPort);
        cells[transport]?.push(cell);
        console.log(
          `${attack.name} / ${transport}: ${cell.before.toFixed(0)} -> ${cell.during.toFixed(0)} calls/s (${cell.fraction.toFixed(2)}), RSS +${cell.rssGrowthMb.toFixed(0)} MB, ${JSON.stringify(cell.report)}${cell.alive ? '' : ', SERVER DIED'}`,
        );
      }
    }
    const lean = median(cells.lean as Cell[]);
    const grpcJs = median(cells['grpc-js'] as Cell[]);
    const cut = (cell: Cell) =>
      cell.report ? `${cell.report.cutOff}/${cell.report.connections}` : '?';
    rows.push(
      `| ${attack.name} | ${lean.fraction.toFixed(2)} | ${grpcJs.fraction.toFixed(2)} | ${lean.rssGrowthMb.toFixed(0)} | ${grpcJs.rssGrowthMb.toFixed(0)} | ${cut(lean)} | ${cut(grpcJs)} |`,
    );
  }
  redis.kill('SIGKILL');
  console.log('');
  console.log(
    '| attack | lean fraction | grpc-js fraction | lean RSS growth MB | grpc-js RSS growth MB | lean: connections cut / opened | grpc-js: cut / opened |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
  process.exit(0);
}

await main();
