import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { reconnectDelay } from '../../src/store/redis/link.ts';
import {
  assertAlive,
  assertNoKeysInLogs,
  assertNoUnhandled,
  FaultProxy,
  LONG,
  sleep,
} from '../support/faults.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { type ServiceProcess, spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const CAP_MS = 2000;

describe('reconnect backoff (reconnectDelay)', () => {
  it('is full jitter: uniform below an exponential ceiling, capped at 2 s', () => {
    const SAMPLES = 4000;
    for (let attempt = 0; attempt <= 24; attempt++) {
      const ceiling = Math.min(CAP_MS, 50 * 2 ** attempt);
      const delays = Array.from({ length: SAMPLES }, () => reconnectDelay(attempt));
      const mean = delays.reduce((a, b) => a + b, 0) / SAMPLES;
      const sd = Math.sqrt(delays.reduce((a, d) => a + (d - mean) ** 2, 0) / SAMPLES);
      assert.ok(
        delays.every((d) => Number.isInteger(d) && d >= 0 && d < ceiling),
        `attempt ${attempt}`,
      );
      // Uniform on [0, c): mean c/2, standard deviation c/√12; the tolerance is ~6 standard errors.
      assert.ok(Math.abs(mean - ceiling / 2) < ceiling * 0.03, `attempt ${attempt}: mean ${mean}`);
      assert.ok(
        Math.abs(sd - ceiling / Math.sqrt(12)) < ceiling * 0.03,
        `attempt ${attempt}: sd ${sd}`,
      );
      // Spread: the lowest and highest tenths are both populated.
      assert.ok(delays.some((d) => d < ceiling * 0.1) && delays.some((d) => d > ceiling * 0.9));
    }
    // Large attempt numbers (a long outage) neither overflow nor exceed the cap.
    for (const attempt of [100, 1000, Number.MAX_SAFE_INTEGER])
      assert.ok(reconnectDelay(attempt, () => 0.999_999) < CAP_MS);
    assert.equal(
      reconnectDelay(5, () => 0),
      0,
    );
  });
});

const FLAPS = LONG ? 20 : 5;
const SHORT_OUTAGE_MS = 800;
const LONG_OUTAGE_MS = LONG ? 30_000 : 5000;
/** Lines one outage may log: redis unreachable, health NOT_SERVING, redis connected, SERVING, and slack. */
const MAX_LINES_PER_OUTAGE = 6;

/**
 * Redis flapped (stopped and started) again and again under light load,
 * behind a proxy that counts the service's connection attempts: reconnects
 * back off to the cap, the log does not flood, and the service recovers
 * after every flap.
 */
describe('reconnect: Redis flapped under load', () => {
  let redis: TestRedis;
  let proxy: FaultProxy;
  let service: ServiceProcess;
  let client: RawClient;

  before(async () => {
    redis = await startRedis();
    proxy = await FaultProxy.start(redis.port);
    const port = await freePort();
    service = await spawnService({
      PORT: String(port),
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(proxy.port),
    });
    client = rawClient(`127.0.0.1:${port}`);
    await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
  });

  after(async () => {
    client.close();
    service.child.kill('SIGKILL');
    await service.exited();
    await proxy.close();
    await redis.dispose();
  });

  it(`${FLAPS} short outages and one of ${LONG_OUTAGE_MS} ms: bounded attempts, bounded log, recovery each time`, async () => {
    const keys = new Set<string>();
    const codes: { [name: string]: number } = {};
    let running = true;
    const caller = async () => {
      for (let i = 0; running && i < 1_000_000; i++) {
        const code = await client
          .call('SetSession', { ttl_seconds: 60 }, { deadlineMs: 1000 })
          .then(
            (reply) => {
              keys.add(reply.session_key);
              return status.OK;
            },
            (error: { code: number }) => error.code,
          );
        const name = status[code] ?? String(code);
        codes[name] = (codes[name] ?? 0) + 1;
        await sleep(code === status.OK ? 5 : 50);
      }
    };
    const callers = Array.from({ length: 4 }, caller);

    const outages: Array<{
      outageMs: number;
      attempts: number;
      logLines: number;
      recoveredMs: number;
    }> = [];
    const outageLengths = [...Array.from({ length: FLAPS }, () => SHORT_OUTAGE_MS), LONG_OUTAGE_MS];
    for (const outageMs of outageLengths) {
      await sleep(200);
      const linesBefore = service.logs.length;
      await redis.stop('SIGKILL');
      const attemptsBefore = proxy.connections;
      await sleep(outageMs);
      const attempts = proxy.connections - attemptsBefore;
      await redis.restart();
      const returnedAt = Date.now();
      const okBefore = codes.OK ?? 0;
      await waitFor('a call succeeds again', async () => (codes.OK ?? 0) > okBefore, 10_000);
      await waitFor('SERVING again', async () => (await client.health()) === 'SERVING', 10_000);
      outages.push({
        outageMs,
        attempts,
        logLines: service.logs.length - linesBefore,
        recoveredMs: Date.now() - returnedAt,
      });
    }
    running = false;
    await Promise.all(callers);
    const logs = assertNoKeysInLogs([service], keys);
    console.log(
      `reconnect figures: ${JSON.stringify({ outages, calls: codes, logLines: logs.lines })}`,
    );

    for (const o of outages) {
      // Full jitter under a 2 s cap: about 7 attempts in the first 1.6 s, then one a second on average.
      const bound = 12 + Math.ceil(o.outageMs / 500);
      assert.ok(o.attempts <= bound, `${o.attempts} attempts in ${o.outageMs} ms (bound ${bound})`);
      assert.ok(o.attempts >= 1, 'the service tried to reconnect');
      assert.ok(o.logLines <= MAX_LINES_PER_OUTAGE, `${o.logLines} log lines for one outage`);
      assert.ok(o.recoveredMs < 5000, `recovered ${o.recoveredMs} ms after Redis returned`);
    }
    const long = outages.at(-1);
    assert.ok(long && long.attempts >= 3, 'the long outage kept retrying');
    assert.ok((codes.UNAVAILABLE ?? 0) > 0 && (codes.OK ?? 0) > 0);
    assert.deepEqual(
      Object.keys(codes).filter((c) => !['OK', 'UNAVAILABLE', 'DEADLINE_EXCEEDED'].includes(c)),
      [],
    );
    assertAlive(service);
    assertNoUnhandled(service);
  });
});
