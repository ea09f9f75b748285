import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import type { Message, RawClient } from './grpc.ts';

/** What one failover under load did to the callers, measured, not assumed. */
export interface FailoverReport {
  readonly topology: string;
  /** SetSession calls that succeeded: the writes the service acknowledged. */
  readonly writesAcknowledged: number;
  readonly callsFailed: number;
  /** Failed calls by gRPC status name. */
  readonly failuresByStatus: Record<string, number>;
  /** From the first failed call to the last one. */
  readonly unavailableSeconds: number;
  /** From the kill to the last failed call; every call after it succeeded. */
  readonly recoveredAfterSeconds: number;
  /**
   * The longest a failed call took to fail. A call not yet sent fails at
   * once; a write already sent when the master died fails once its fence has
   * closed (3/4 of the command timeout after it was sent), not before.
   */
  readonly slowestFailureMs: number;
  /** Failed calls that waited for the command timeout: none should, the link fails first. */
  readonly timedOut: number;
  /** How long health said NOT_SERVING. */
  readonly notServingSeconds: number;
  /** Acknowledged writes that read back absent or different afterwards. */
  readonly acknowledgedWritesLost: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const statusName = (code: number) => status[code] ?? String(code);

/**
 * Writes new sessions from `concurrency` callers while `kill` takes the
 * master down, until calls have succeeded for `quietMs` after the last
 * failure; then reads back every acknowledged write. A caller pauses 10 ms
 * after a failure (as a retrying client would), so "calls failed" counts
 * attempts at that pace rather than a hot loop.
 */
export async function measureFailover(options: {
  topology: string;
  client: RawClient;
  kill: () => Promise<void>;
  concurrency?: number;
  quietMs?: number;
  deadlineMs?: number;
}): Promise<FailoverReport> {
  const { client, kill, concurrency = 8, quietMs = 1500, deadlineMs = 30_000 } = options;
  const acknowledged: string[] = [];
  const failuresByStatus: Record<string, number> = {};
  let callsFailed = 0;
  let firstFailureAt: number | undefined;
  let lastFailureAt: number | undefined;
  let lastSuccessAt = 0;
  let slowestFailureMs = 0;
  let timedOut = 0;
  let stop = false;
  let counter = 0;

  const worker = async (id: number) => {
    while (!stop) {
      const key = `failover-${process.pid}-${id}-${counter++}`;
      const started = Date.now();
      try {
        await client.call(
          'SetSession',
          { session_key: key, fleet_list_request: Buffer.from(key), ttl_seconds: 600 },
          { deadlineMs: 5000 },
        );
        acknowledged.push(key);
        lastSuccessAt = Date.now();
      } catch (error) {
        const { code: number, details } = error as { code: number; details: string };
        const code = statusName(number);
        failuresByStatus[code] = (failuresByStatus[code] ?? 0) + 1;
        if (/did not answer within/.test(details)) timedOut += 1;
        callsFailed += 1;
        lastFailureAt = Date.now();
        slowestFailureMs = Math.max(slowestFailureMs, lastFailureAt - started);
        firstFailureAt ??= lastFailureAt;
        await sleep(10);
      }
    }
  };

  let notServingMs = 0;
  let healthSampling = true;
  const sampleHealth = async () => {
    let previous = Date.now();
    while (healthSampling) {
      const state = await client.health().catch(() => 'UNREACHABLE');
      const now = Date.now();
      if (state !== 'SERVING') notServingMs += now - previous;
      previous = now;
      await sleep(50);
    }
  };

  const workers = Array.from({ length: concurrency }, (_, id) => worker(id));
  const health = sampleHealth();
  await sleep(500);
  const killedAt = Date.now();
  await kill();
  const deadline = killedAt + deadlineMs;
  while (Date.now() < deadline) {
    await sleep(100);
    const now = Date.now();
    const quiet = now - (lastFailureAt ?? killedAt);
    if (firstFailureAt !== undefined && quiet >= quietMs && lastSuccessAt > (lastFailureAt ?? 0))
      break;
    if (firstFailureAt === undefined && now - killedAt > 10_000) break;
  }
  stop = true;
  await Promise.all(workers);
  healthSampling = false;
  await health;

  const recoveredAt = lastFailureAt ?? killedAt;
  // A canary that was never written proves the read-back can see a loss.
  const canary = `failover-${process.pid}-never-written`;
  let lost = 0;
  const queue = [...acknowledged, canary];
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      for (let key = queue.pop(); key !== undefined; key = queue.pop()) {
        const session = await readBack(client, key);
        if (!session || !Buffer.from(key).equals(session.fleet_list_request)) lost += 1;
      }
    }),
  );

  return {
    topology: options.topology,
    writesAcknowledged: acknowledged.length,
    callsFailed,
    failuresByStatus,
    unavailableSeconds:
      firstFailureAt === undefined || lastFailureAt === undefined
        ? 0
        : round((lastFailureAt - firstFailureAt) / 1000),
    recoveredAfterSeconds: round((recoveredAt - killedAt) / 1000),
    slowestFailureMs,
    timedOut,
    notServingSeconds: round(notServingMs / 1000),
    acknowledgedWritesLost: countedCanary(lost),
  };
}

/**
 * GetSession until it answers: a topology that has just recovered on a busy
 * machine may still refuse a call now and then (a node's connection coming
 * up again), which says nothing about what it stored. Null when absent.
 */
async function readBack(client: RawClient, key: string): Promise<Message | null> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await client.call('GetSession', { session_key: key });
    } catch (error) {
      const code = (error as { code: number }).code;
      if (code === status.NOT_FOUND) return null;
      if (code !== status.UNAVAILABLE || attempt === 50) throw error;
      await sleep(100);
    }
  }
}

function countedCanary(lost: number): number {
  if (lost < 1) throw new Error('the read-back did not notice the canary that was never written');
  return lost - 1;
}

const round = (seconds: number) => Math.round(seconds * 100) / 100;

/**
 * What every topology must show when its master dies under load: calls fail
 * fast with UNAVAILABLE only, health notices, the service recovers by itself,
 * and asynchronous replication loses at most the last moment of writes.
 */
export function assertFailedOverCleanly(
  report: FailoverReport,
  recoverWithinSeconds: number,
): void {
  assert.ok(report.callsFailed > 0, 'the kill was felt');
  assert.deepEqual(Object.keys(report.failuresByStatus), ['UNAVAILABLE']);
  assert.equal(
    report.timedOut,
    0,
    `calls failed fast, none waited for the 1 s command timeout (slowest ${report.slowestFailureMs} ms)`,
  );
  assert.ok(
    report.recoveredAfterSeconds < recoverWithinSeconds,
    `recovered after ${report.recoveredAfterSeconds} s`,
  );
  assert.ok(report.notServingSeconds > 0, 'health reported the lost master');
  assert.ok(
    report.acknowledgedWritesLost <= report.writesAcknowledged * 0.02,
    'asynchronous replication loses at most the last moment of writes',
  );
}

/** One pass over every session rpc through a server, as a smoke test of a topology. */
export async function exerciseEveryRpc(client: RawClient): Promise<void> {
  assert.equal(await client.health(), 'SERVING');
  const { session_key } = await client.call('SetSession', {
    fleet_list_request: Buffer.from('quote'),
    attributes: { order: Buffer.from('o-1') },
  });
  const read = await client.call('GetSession', { session_key, touch: true });
  assert.deepEqual(read.fleet_list_request, Buffer.from('quote'));
  const updated = await client.call('UpdateSession', {
    session_key,
    fleet_list_response: Buffer.from('fleet'),
    set_attributes: { order: Buffer.from('o-2') },
    expected_version: 1,
  });
  assert.equal(Number(updated.version), 2);
  assert.ok(
    (await client.call('TouchSession', { session_key, ttl_seconds: 60 })).expires_at_unix_ms,
  );
  const consumed = await client.call('ConsumeSession', { session_key });
  assert.deepEqual(consumed.fleet_list_response, Buffer.from('fleet'));
  assert.deepEqual(consumed.attributes.order, Buffer.from('o-2'));
  assert.equal((await client.call('DeleteSession', { session_key })).deleted, false);
}
