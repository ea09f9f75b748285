import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger } from '../../src/logger.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig, untilAnswers } from '../support/redis-config.ts';
import { startServer, type TestServer } from '../support/server.ts';
import { LIMITS } from '../support/store-contract.ts';

const WRITERS = 16;
const KILLS = Number(process.env.CRASH_KILLS ?? 5);
const KILL_INTERVAL_MS = 600;

type Status = 'ok' | 'failed';

interface Operation {
  kind: 'set' | 'update';
  key: string;
  status: Status;
}

/**
 * Crash durability: writers run while Redis (AOF, appendfsync always) is
 * killed with SIGKILL and restarted again and again. Every operation is
 * recorded; afterwards the history is checked mechanically: every
 * acknowledged write must be readable.
 */
describe('crash durability: Redis killed with SIGKILL under load', () => {
  let redis: TestRedis;
  let server: TestServer;
  let client: RawClient;
  let checker: RedisStore;

  before(async () => {
    redis = await startRedis(['--appendonly', 'yes', '--appendfsync', 'always']);
    server = await startServer({ redisPort: redis.port, env: { REDIS_COMMAND_TIMEOUT: '500ms' } });
    client = rawClient(server.address);
    checker = new RedisStore(
      redisConfig(redis.port, 'sessionmanager:'),
      LIMITS,
      createLogger('silent'),
    );
  });

  after(async () => {
    client.close();
    await checker.close();
    await server.close();
    await redis.dispose();
  });

  it('loses no acknowledged write', async () => {
    const history: Operation[] = [];
    let running = true;
    const writer = async (w: number) => {
      for (let i = 0; running; i++) {
        const key = `crash-${w}-${i}`;
        const set = await client
          .call('SetSession', {
            session_key: key,
            fleet_list_request: Buffer.from(key),
            ttl_seconds: 3600,
          })
          .then(
            () => 'ok' as const,
            () => 'failed' as const,
          );
        history.push({ kind: 'set', key, status: set });
        if (set !== 'ok') {
          await new Promise((resolve) => setTimeout(resolve, 20));
          continue;
        }
        const update = await client
          .call('UpdateSession', { session_key: key, set_attributes: { step: Buffer.from('2') } })
          .then(
            () => 'ok' as const,
            () => 'failed' as const,
          );
        history.push({ kind: 'update', key, status: update });
      }
    };
    const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
    for (let kill = 0; kill < KILLS; kill++) {
      await new Promise((resolve) => setTimeout(resolve, KILL_INTERVAL_MS));
      await redis.stop('SIGKILL');
      await redis.restart();
    }
    await new Promise((resolve) => setTimeout(resolve, KILL_INTERVAL_MS));
    running = false;
    await Promise.all(writers);
    await untilAnswers(checker, 'Redis answers');

    const counts = { ok: 0, failed: 0, lost: 0, failedButApplied: 0 };
    for (const operation of history) {
      const session = await checker.get(operation.key, Date.now(), false);
      const applied =
        operation.kind === 'set'
          ? session !== null
          : session?.attributes.get('step')?.toString() === '2';
      counts[operation.status]++;
      if (operation.status === 'ok' && !applied) counts.lost++;
      if (operation.status === 'failed' && applied) counts.failedButApplied++;
    }
    console.log(
      `crash durability figures (${KILLS} SIGKILLs, ${WRITERS} writers): ${JSON.stringify(counts)}`,
    );
    assert.ok(counts.ok > 100, 'the writers made progress');
    assert.ok(counts.failed > 0, 'the kills interrupted writes');
    assert.equal(counts.lost, 0, 'acknowledged writes lost');
  });

  it('a service killed with SIGKILL mid-write loses nothing it acknowledged', async () => {
    const port = await freePort();
    const env = {
      PORT: String(port),
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(redis.port),
    };
    const first = await spawnService(env);
    const direct = rawClient(`127.0.0.1:${port}`);
    await waitFor('SERVING', async () => (await direct.health()) === 'SERVING');
    const acknowledged: string[] = [];
    let running = true;
    const writer = async (w: number) => {
      for (let i = 0; running; i++) {
        const key = `service-crash-${w}-${i}`;
        const ok = await direct.call('SetSession', { session_key: key, ttl_seconds: 3600 }).then(
          () => true,
          () => false,
        );
        if (ok) acknowledged.push(key);
        else await new Promise((resolve) => setTimeout(resolve, 20));
      }
    };
    const writers = Array.from({ length: 8 }, (_, w) => writer(w));
    await waitFor('some writes', async () => acknowledged.length > 200);
    first.child.kill('SIGKILL');
    await first.exited();
    const second = await spawnService(env);
    await waitFor('SERVING again', async () => (await direct.health()) === 'SERVING', 10_000);
    await waitFor('writes after the restart', async () => acknowledged.length > 400, 10_000);
    running = false;
    await Promise.all(writers);
    second.child.kill('SIGTERM');
    await second.exited();
    direct.close();
    let lost = 0;
    for (const key of acknowledged) {
      if ((await checker.get(key, Date.now(), false)) === null) lost++;
    }
    console.log(
      `service crash figures: ${JSON.stringify({ acknowledged: acknowledged.length, lost })}`,
    );
    assert.equal(lost, 0);
  });
});
