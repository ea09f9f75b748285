import assert from 'node:assert/strict';
import { get } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

describe('the service process', () => {
  let redis: TestRedis;

  before(async () => {
    redis = await startRedis();
  });

  after(async () => {
    await redis.dispose();
  });

  /** The service with WORKERS=2 on the test Redis, once both workers listen. */
  async function spawnTwoWorkers(env: Record<string, string>) {
    const service = await spawnService({
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(redis.port),
      WORKERS: '2',
      ...env,
    });
    await waitFor(
      'both workers',
      async () =>
        service.logs.filter((line) => line.msg === 'sessionmanager listening').length === 2,
    );
    return service;
  }

  it('a bad variable stops it at start with a message naming the variable and value', async () => {
    const service = await spawnService({ PORT: '0', SESSION_TTL: 'fifteen minutes' });
    const { code } = await service.exited();
    assert.equal(code, 2);
    assert.match(service.stderr(), /SESSION_TTL="fifteen minutes"/);
  });

  it('Cluster with a non-zero REDIS_DATABASE stops it at start and says why', async () => {
    const service = await spawnService({
      PORT: '0',
      REDIS_CLUSTER_NODES: '127.0.0.1:7000',
      REDIS_DATABASE: '5',
    });
    const { code } = await service.exited();
    assert.equal(code, 2);
    assert.match(service.stderr(), /REDIS_DATABASE="5": Redis Cluster has only database 0/);
  });

  it('without REDIS_HOST it says at start that it runs on the in-memory store', async () => {
    const port = await freePort();
    const service = await spawnService({ PORT: String(port) });
    try {
      const warning = service.logs.find((line) => String(line.msg).includes('in-memory store'));
      assert.ok(warning, 'logs the embedded store');
      assert.equal(service.logs.find((l) => l.msg === 'sessionmanager listening')?.store, 'memory');
    } finally {
      service.child.kill('SIGTERM');
      assert.equal((await service.exited()).code, 0);
    }
  });

  it('SIGTERM: NOT_SERVING, refuses new calls, finishes in-flight ones, exits 0 within the grace period', async () => {
    const port = await freePort();
    const service = await spawnService({
      PORT: String(port),
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(redis.port),
      REDIS_COMMAND_TIMEOUT: '10s',
      SHUTDOWN_GRACE: '5s',
    });
    const client: RawClient = rawClient(`127.0.0.1:${port}`);
    try {
      await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
      redis.signal('SIGSTOP');
      const inFlight = client.call('SetSession', { fleet_list_request: Buffer.from('in flight') });
      await new Promise((resolve) => setTimeout(resolve, 200));
      const signalledAt = Date.now();
      service.child.kill('SIGTERM');
      await waitFor('the shutdown log line', async () =>
        service.logs.some((line) => line.msg === 'shutting down'),
      );
      const late = rawClient(`127.0.0.1:${port}`);
      await assert.rejects(late.call('GetSession', { session_key: 'any' }, { deadlineMs: 2000 }), {
        code: status.UNAVAILABLE,
      });
      late.close();
      redis.signal('SIGCONT');
      const set = await inFlight;
      assert.match(set.session_key, /^[A-Za-z0-9_-]{43}$/);
      const { code } = await service.exited();
      assert.equal(code, 0);
      assert.ok(Date.now() - signalledAt < 5000, 'exited within the grace period');
      assert.ok(service.logs.some((line) => line.msg === 'stopped'));
      assert.ok(
        service.logs.some((line) => line.msg === 'health changed' && line.status === 'NOT_SERVING'),
      );
      const stored = redis.cli('-n', '5', '--scan', '--pattern', 'sessionmanager:*');
      assert.notEqual(stored, '', 'the in-flight write was stored');
    } finally {
      redis.signal('SIGCONT');
      client.close();
      service.child.kill('SIGKILL');
    }
  });

  it('WORKERS=2: two processes share the port, both serve, and SIGTERM to the primary drains both', async () => {
    const port = await freePort();
    const service = await spawnTwoWorkers({ PORT: String(port), SHUTDOWN_GRACE: '5s' });
    try {
      const workers = new Set(
        service.logs.filter((l) => l.msg === 'sessionmanager listening').map((l) => l.worker),
      );
      assert.equal(workers.size, 2);
      // Each new connection goes to the next worker: every one of them serves.
      for (let i = 0; i < 4; i++) {
        const client = rawClient(`127.0.0.1:${port}`);
        await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
        const { session_key } = await client.call('SetSession', {});
        assert.equal((await client.call('GetSession', { session_key })).session_key, session_key);
        client.close();
      }
      service.child.kill('SIGTERM');
      const { code } = await service.exited();
      assert.equal(code, 0);
      assert.equal(service.logs.filter((line) => line.msg === 'stopped').length, 3);
    } finally {
      service.child.kill('SIGKILL');
    }
  });

  it('WORKERS=2: /metrics counts the calls of every worker, whichever worker the scrape reaches', async () => {
    const [port, httpPort] = [await freePort(), await freePort()];
    const service = await spawnTwoWorkers({ PORT: String(port), HTTP_PORT: String(httpPort) });
    try {
      // Connections alternate between the workers: 1 + 3 calls on one, 2 + 4
      // on the other, so neither worker alone has counted all 10.
      for (let connection = 1; connection <= 4; connection++) {
        const client = rawClient(`127.0.0.1:${port}`);
        await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
        for (let i = 0; i < connection; i++) await client.call('SetSession', {});
        client.close();
      }
      const labels = 'transport="grpc",method="SetSession",code="OK"';
      // A new connection per scrape, so they too reach both workers.
      for (let scrape = 0; scrape < 4; scrape++) {
        const text = await scrapeMetrics(httpPort);
        assert.match(text, new RegExp(`sessionmanager_calls_total\\{${labels}\\} 10\n`));
        assert.match(
          text,
          new RegExp(`sessionmanager_call_duration_seconds_count\\{${labels}\\} 10\n`),
        );
        assert.match(text, /\nsessionmanager_store_up 1\n/);
        assert.equal(
          text.match(/^sessionmanager_build_info\{.*store="redis-standalone"\} 1$/gm)?.length,
          1,
        );
      }
    } finally {
      service.child.kill('SIGKILL');
    }
  });
});

function scrapeMetrics(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => {
        body += chunk;
      });
      response.on('end', () =>
        response.statusCode === 200
          ? resolve(body)
          : reject(new Error(`/metrics: ${response.statusCode} ${body}`)),
      );
    }).on('error', reject);
  });
}
