import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import {
  checkRun,
  type FaultFigures,
  readFinalStates,
  table,
  Workload,
} from '../support/fault-suite.ts';
import { assertAlive, assertNoUnhandled, FaultProxy, LONG, sleep } from '../support/faults.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { type ServiceProcess, spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { WriteLog } from '../support/write-log.ts';

/**
 * The network-fault suite: the service as its own process, real gRPC
 * callers, a real redis-server (AOF, fsync always) behind a FaultProxy, and
 * Redis's own record of the writes it ran (MONITOR). Each fault runs under
 * load, clears, and the run is checked (test/support/fault-suite.ts):
 *
 * - no reply handed to the wrong caller;
 * - no acknowledged write lost, no consumed or deleted session back;
 * - no write applied after its caller was told it failed (from Redis's
 *   record: a put or update names its call, a consume or delete belongs to
 *   the call in flight on its key), while the service reads each request
 *   within the margin its fence leaves: a write that lands after its
 *   caller's own deadline because the service provably read the request
 *   later (starved of CPU) is counted apart, as outside the conditions;
 * - every call ends within its deadline + 100 ms, as the caller sees it; when
 *   this test process's own event loop stalls (measured), the end it
 *   observes moves by as much, which says nothing of the service, so the
 *   margin grows by that stall;
 * - calls succeed again within 2 s of the fault clearing, plus 500 ms: the
 *   reconnect backoff is capped at 2 s with full jitter, so the service's
 *   next attempt comes within 2 s, and connecting, the handshake and a
 *   caller's next call take the rest on a busy machine.
 *
 * `npm test` runs each fault for a second or two; `npm run faults:long` for
 * many (FAULTS_LONG=1) and writes the table to FAULTS_TABLE when set.
 */

const CALLERS = LONG ? 32 : 12;
const KEYS_EACH = 3;
const SCALE = LONG ? 8 : 1;
const WARMUP_MS = 300;
/** Load goes on this long after every caller is answered again. */
const AFTER_RECOVERY_MS = 300;
const DEADLINE_MARGIN_MS = 100;
const RECOVERY_MS = 2000 + 500;
const TIMEOUT_MS = 1000;
const prefix = `netfault-${process.pid}:`;

interface Fault {
  readonly name: string;
  /** Calls must fail while it lasts (a fault that only slows calls down need not). */
  readonly felt: boolean;
  /** Applies the fault and resolves once it has cleared. */
  run(): Promise<void>;
}

let redis: TestRedis;
let proxy: FaultProxy;
let log: WriteLog;
let service: ServiceProcess;
let client: RawClient;
const rows: FaultFigures[] = [];

let workload: Workload;

/**
 * Sets faults for `ms`; a fault that strikes at random stays on, up to 10 s,
 * until some call has failed under it, so that each run tests what it says.
 */
async function whileSet(
  faults: FaultProxy['faults'],
  ms: number,
  untilFelt = false,
): Promise<void> {
  const from = Date.now();
  proxy.faults = faults;
  await sleep(ms);
  if (untilFelt)
    await waitFor('a call to fail under the fault', async () => workload.failedSince(from), 10_000);
  proxy.faults = {};
}

async function stalls(direction: 'commands' | 'replies', count: number): Promise<void> {
  for (let i = 0; i < count; i++) {
    const release = proxy.hold(direction);
    // Beyond the command timeout: the link is replaced under the stall.
    await sleep(TIMEOUT_MS + 200);
    release();
    await sleep(300);
  }
}

const FAULTS: Fault[] = [
  {
    name: 'latency 0-20 ms, 2 % of chunks 200-800 ms',
    felt: false,
    run: () =>
      whileSet(
        {
          latencyMs: () => (Math.random() < 0.02 ? 200 + Math.random() * 600 : Math.random() * 20),
        },
        1000 * SCALE,
      ),
  },
  { name: 'commands stalled 1.2 s', felt: true, run: () => stalls('commands', SCALE) },
  { name: 'replies stalled 1.2 s', felt: true, run: () => stalls('replies', SCALE) },
  {
    name: '1-byte segments',
    felt: false,
    run: () => whileSet({ segmentBytes: 1 }, 1000 * SCALE),
  },
  {
    name: 'reset mid-reply (5 % of replies)',
    felt: true,
    run: () => whileSet({ resetMidReply: 0.05 }, 1000 * SCALE, true),
  },
  {
    name: 'half-open blackhole 2.5 s',
    felt: true,
    run: async () => {
      for (let i = 0; i < Math.ceil(SCALE / 2); i++) {
        const release = proxy.hold('both');
        await sleep(2500);
        release();
        if (i + 1 < Math.ceil(SCALE / 2)) await sleep(1500);
      }
    },
  },
  {
    name: 'random drops (1 % of chunks)',
    felt: true,
    run: () => whileSet({ dropRate: 0.01 }, 1000 * SCALE, true),
  },
  {
    // Across the fences (300 ms for a 400 ms deadline, 750 ms otherwise) and the timeout.
    name: 'Redis SIGSTOP 0.1-1.1 s',
    felt: true,
    run: async () => {
      for (let i = 0; i < SCALE; i++) {
        for (const pauseMs of [100, 280, 320, 500, 700, 780, 950, 1100]) {
          redis.signal('SIGSTOP');
          await sleep(pauseMs);
          redis.signal('SIGCONT');
          await sleep(150);
        }
      }
    },
  },
  {
    name: 'Redis SIGSTOP 1.5 s',
    felt: true,
    run: async () => {
      for (let i = 0; i < SCALE; i++) {
        redis.signal('SIGSTOP');
        await sleep(1500);
        redis.signal('SIGCONT');
        if (i + 1 < SCALE) await sleep(1000);
      }
    },
  },
  {
    name: 'Redis SIGKILL, restarted (AOF, fsync always)',
    felt: true,
    run: async () => {
      for (let i = 0; i < SCALE; i++) {
        await sleep(300);
        await redis.stop('SIGKILL');
        await redis.restart();
        await log.attach();
      }
    },
  },
];

describe('network faults between the service and Redis', () => {
  before(async () => {
    redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
    proxy = await FaultProxy.start(redis.port);
    log = await WriteLog.start(redis.port);
    const port = await freePort();
    service = await spawnService({
      PORT: String(port),
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(proxy.port),
      REDIS_KEY_PREFIX: prefix,
      REDIS_COMMAND_TIMEOUT: `${TIMEOUT_MS}ms`,
    });
    client = rawClient(`127.0.0.1:${port}`);
    await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
  });

  after(async () => {
    proxy.faults = {};
    redis.signal('SIGCONT');
    console.log(`network fault table:\n${table(rows)}`);
    if (process.env.FAULTS_TABLE) writeFileSync(process.env.FAULTS_TABLE, `${table(rows)}\n`);
    client?.close();
    service?.child.kill('SIGKILL');
    await service?.exited();
    await log?.close();
    await proxy?.close();
    await redis?.dispose();
  });

  for (const fault of FAULTS) {
    it(`${fault.name}: no ghost, no loss, no resurrection, no misdelivery, deadlines kept, recovered`, async () => {
      await waitFor('SERVING', async () => (await client.health()) === 'SERVING', 20_000);
      const name = fault.name.replace(/[^a-z0-9]+/gi, '-').toLowerCase();
      workload = new Workload(client, name, CALLERS, KEYS_EACH);
      const stalls = monitorEventLoopDelay({ resolution: 10 });
      stalls.enable();
      workload.start();
      await sleep(WARMUP_MS);
      await fault.run();
      const clearedAt = Date.now();
      // Load goes on until every caller is answered again, or past the
      // recovery bound: calls that fail after it count against it.
      await waitFor(
        'every caller answered again',
        async () => workload.answeringSince(clearedAt),
        RECOVERY_MS + 200,
      ).catch(() => undefined);
      await sleep(AFTER_RECOVERY_MS);
      await workload.stop();
      stalls.disable();
      await waitFor('SERVING again', async () => (await client.health()) === 'SERVING', 20_000);
      const finalStates = await readFinalStates(client, workload.keys);
      await log.settle();
      const ownStallMs = Math.round(stalls.max / 1e6);
      const figures = checkRun({
        fault: fault.name,
        prefix,
        workload,
        runs: log.runs,
        finalStates,
        clearedAt,
        marginMs: DEADLINE_MARGIN_MS + ownStallMs,
        commandTimeoutMs: TIMEOUT_MS,
      });
      rows.push(figures);
      const { ghostSamples: _, outsideSamples, ...printed } = figures;
      if (outsideSamples.length > 0)
        console.log(`network fault writes outside the conditions: ${outsideSamples.join('\n')}`);
      console.log(`network fault figures: ${JSON.stringify({ ...printed, ownStallMs })}`);

      assert.equal(figures.misdelivered, 0, 'a reply went to the wrong caller');
      assert.equal(
        figures.ghosts,
        0,
        `writes applied after their caller was told they failed: ${figures.ghostSamples.join('\n')}`,
      );
      assert.equal(figures.lost, 0, 'an acknowledged write was lost');
      assert.equal(figures.resurrected, 0, 'a consumed or deleted session came back');
      assert.equal(
        figures.overDeadline,
        0,
        `calls overran their deadline by ${figures.maxOverDeadlineMs} ms`,
      );
      assert.ok(figures.recoveryMs <= RECOVERY_MS, `recovered after ${figures.recoveryMs} ms`);
      const failures = Object.keys(figures.byCode).filter(
        (code) => !['OK', 'NOT_FOUND', 'ABORTED'].includes(code),
      );
      assert.deepEqual(
        failures.filter((code) => code !== 'UNAVAILABLE' && code !== 'DEADLINE_EXCEEDED'),
        [],
      );
      assert.ok((figures.byCode.OK ?? 0) > CALLERS, 'the callers made progress');
      if (fault.felt) assert.ok(failures.length > 0, 'the fault was felt');
      assert.ok(figures.writesSeen > 0, "Redis's record holds the writes");
      assertAlive(service);
      assertNoUnhandled(service);
    });
  }
});
