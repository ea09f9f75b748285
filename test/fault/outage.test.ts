import assert from 'node:assert/strict';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import {
  assertAlive,
  assertNoKeysInLogs,
  assertNoUnhandled,
  LONG,
  round,
  sleep,
  watchRss,
} from '../support/faults.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { type ServiceProcess, spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const CALLERS = 32;
const DEADLINE_MS = 1000;
/** What a call may take beyond its deadline on a shared 2-core machine. */
const MARGIN_MS = 300;
const OUTAGE_MS = LONG ? 20_000 : 3000;
const ALLOWED = new Set([status.OK, status.UNAVAILABLE, status.DEADLINE_EXCEEDED]);

interface Record {
  startedAt: number;
  endedAt: number;
  code: number;
}

/**
 * Redis stopped for a while under load, with client deadlines: every call
 * ends in time with OK, UNAVAILABLE or DEADLINE_EXCEEDED, the server's memory
 * stays bounded, health follows Redis, and service resumes soon after Redis
 * returns.
 */
describe('outage: Redis stopped under load', () => {
  let redis: TestRedis;
  let service: ServiceProcess;
  let client: RawClient;
  let probe: RawClient;

  before(async () => {
    redis = await startRedis();
    const port = await freePort();
    service = await spawnService({
      PORT: String(port),
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(redis.port),
    });
    client = rawClient(`127.0.0.1:${port}`);
    probe = rawClient(`127.0.0.1:${port}`);
    await waitFor('SERVING', async () => (await probe.health()) === 'SERVING');
  });

  after(async () => {
    client.close();
    probe.close();
    service.child.kill('SIGKILL');
    await service.exited();
    await redis.dispose();
  });

  it('every call ends within its deadline; health and service follow Redis', async () => {
    const records: Record[] = [];
    const keys = new Set<string>();
    let running = true;
    const caller = async (c: number) => {
      for (let i = 0; running && i < 1_000_000; i++) {
        const startedAt = Date.now();
        const request =
          i % 2 === 0
            ? client.call('SetSession', { ttl_seconds: 60 }, { deadlineMs: DEADLINE_MS })
            : client.call(
                'GetSession',
                { session_key: `outage-${c}-${i}`, touch: true },
                { deadlineMs: DEADLINE_MS },
              );
        const code = await request.then(
          (reply) => {
            if (typeof reply.session_key === 'string') keys.add(reply.session_key);
            return status.OK;
          },
          (error: { code: number }) => error.code,
        );
        records.push({ startedAt, endedAt: Date.now(), code });
        // A caller that backs off a little on errors, as real callers do.
        if (code !== status.OK && code !== status.NOT_FOUND) await sleep(20);
      }
    };
    // A stall of this (the calling) process delays the client's own deadline
    // timer; it is measured and allowed for, so only the service is judged.
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const callers = Array.from({ length: CALLERS }, (_, c) => caller(c));
    await sleep(1000);
    const rss = watchRss(service.child.pid as number);

    await redis.stop('SIGKILL');
    const stoppedAt = Date.now();
    await waitFor(
      'NOT_SERVING',
      async () => (await probe.health(undefined)) === 'NOT_SERVING',
      5000,
    );
    const notServingMs = Date.now() - stoppedAt;
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt)));

    await redis.restart();
    const returnedAt = Date.now();
    await waitFor('SERVING again', async () => (await probe.health()) === 'SERVING', 10_000);
    const servingMs = Date.now() - returnedAt;
    await waitFor(
      'a successful call',
      async () => records.some((r) => r.code === status.OK && r.startedAt >= returnedAt),
      10_000,
    );
    await sleep(1000);
    running = false;
    await Promise.all(callers);
    const memory = rss.stop();
    lag.disable();
    const callerStallMs = Math.round(lag.max / 1e6);

    const firstOk = Math.min(
      ...records
        .filter((r) => r.code === status.OK && r.startedAt >= returnedAt)
        .map((r) => r.endedAt),
    );
    const during = records.filter((r) => r.startedAt >= stoppedAt && r.startedAt < returnedAt);
    const byCode: { [name: string]: number } = {};
    for (const r of records) {
      const name = status[r.code] ?? String(r.code);
      byCode[name] = (byCode[name] ?? 0) + 1;
    }
    const longest = Math.max(...records.map((r) => r.endedAt - r.startedAt));
    const logs = assertNoKeysInLogs([service], keys);
    const figures = {
      outageMs: OUTAGE_MS,
      calls: records.length,
      duringOutage: during.length,
      byCode,
      longestCallMs: longest,
      callerStallMs,
      notServingAfterMs: notServingMs,
      servingAfterRedisReturnedMs: servingMs,
      firstOkAfterRedisReturnedMs: firstOk - returnedAt,
      rss: memory,
      logLines: logs.lines,
      keysCheckedAgainstLogs: logs.keys,
    };
    console.log(`outage figures: ${JSON.stringify(figures)}`);

    // getSession on a never-created key answers NOT_FOUND while Redis is up.
    const unexpected = records.filter((r) => !ALLOWED.has(r.code) && r.code !== status.NOT_FOUND);
    assert.deepEqual(unexpected.slice(0, 5), [], 'only OK, UNAVAILABLE or DEADLINE_EXCEEDED');
    assert.ok(
      longest <= DEADLINE_MS + MARGIN_MS + callerStallMs,
      `a call took ${longest} ms (caller stalled ${callerStallMs} ms)`,
    );
    assert.ok(
      during.filter((r) => r.code === status.UNAVAILABLE).length > CALLERS,
      'the outage failed calls fast with UNAVAILABLE',
    );
    // About a second (a probe every 500 ms, a command timeout): 5 s leaves room for a busy machine.
    assert.ok(notServingMs < 5000, `NOT_SERVING after ${notServingMs} ms`);
    assert.ok(servingMs < 5000, `SERVING ${servingMs} ms after Redis returned`);
    assert.ok(firstOk - returnedAt < 5000, `first OK ${firstOk - returnedAt} ms after`);
    assert.ok(memory.growthMb < 64, `RSS grew ${round(memory.growthMb)} MB`);
    assertAlive(service);
    assertNoUnhandled(service);
  });
});
