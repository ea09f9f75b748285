import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { Registry } from 'prom-client';
import { LabeledHistogram } from '../../src/metric-series.ts';
import { Metrics } from '../../src/metrics.ts';
import { type RawClient, rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { spawnService } from '../support/process.ts';
import { startServer, type TestServer } from '../support/server.ts';

/** Parses the Prometheus text format into "name{labels}" → value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

describe('/metrics after a known sequence of calls', () => {
  let server: TestServer;
  let client: RawClient;

  before(async () => {
    server = await startServer();
    client = rawClient(server.address);
  });

  after(async () => {
    client.close();
    await server.close();
  });

  it('counts calls by transport, method and code, and session events', async () => {
    const { session_key } = await client.call('SetSession', {
      fleet_list_request: Buffer.alloc(2000),
    });
    await client.call('SetSession', { session_key: 'fixed-key' });
    await client.call('SetSession', { session_key: 'fixed-key' });
    await client.call('GetSession', { session_key });
    await assert.rejects(client.call('GetSession', { session_key: 'absent' }));
    await assert.rejects(client.call('GetSession', { session_key: 'bad key' }));
    await client.call('UpdateSession', { session_key, expected_version: 1 });
    await assert.rejects(client.call('UpdateSession', { session_key, expected_version: 1 }));
    await client.call('ConsumeSession', { session_key });
    await client.call('DeleteSession', { session_key: 'fixed-key' });
    await fetch(`${server.httpUrl}/v1/sessions/absent`);

    const response = await fetch(`${server.httpUrl}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await response.text();
    const samples = parse(text);
    const value = (name: string) => samples.get(name) ?? 0;

    const calls = (transport: string, method: string, code: string) =>
      value(
        `sessionmanager_calls_total{transport="${transport}",method="${method}",code="${code}"}`,
      );
    assert.equal(calls('grpc', 'SetSession', 'OK'), 3);
    assert.equal(calls('grpc', 'GetSession', 'OK'), 1);
    assert.equal(calls('grpc', 'GetSession', 'NOT_FOUND'), 1);
    assert.equal(calls('grpc', 'GetSession', 'INVALID_ARGUMENT'), 1);
    assert.equal(calls('grpc', 'UpdateSession', 'OK'), 1);
    assert.equal(calls('grpc', 'UpdateSession', 'ABORTED'), 1);
    assert.equal(calls('grpc', 'ConsumeSession', 'OK'), 1);
    assert.equal(calls('http', 'GetSession', 'NOT_FOUND'), 1);
    assert.equal(
      value(
        'sessionmanager_call_duration_seconds_count{transport="grpc",method="SetSession",code="OK"}',
      ),
      3,
    );

    const event = (name: string) => value(`sessionmanager_session_events_total{event="${name}"}`);
    assert.equal(event('created'), 2);
    assert.equal(event('replaced'), 1);
    assert.equal(event('updated'), 1);
    assert.equal(event('cas_conflict'), 1);
    assert.equal(event('consumed'), 1);
    assert.equal(event('deleted'), 1);
    assert.equal(event('not_found'), 2);

    assert.equal(value('sessionmanager_session_size_bytes_count'), 4);
    assert.equal(value('sessionmanager_session_size_bytes_bucket{le="1024"}'), 2);
    assert.equal(value('sessionmanager_store_up'), 1);
    assert.equal(
      value('sessionmanager_store_operation_duration_seconds_count{operation="put",outcome="ok"}'),
      3,
    );
    assert.ok(value('process_cpu_seconds_total') > 0);
    assert.ok(!text.includes(session_key), 'no session key in any label');
  });
});

describe('/metrics after the owner calls', () => {
  it('counts ListSessions and RevokeSessions, their store operations, and evicted and revoked sessions', async () => {
    const server = await startServer({ env: { SESSION_MAX_PER_OWNER: '2' } });
    const client = rawClient(server.address);
    try {
      for (let i = 0; i < 3; i++) await client.call('SetSession', { owner: 'rider-m' });
      await client.call('ListSessions', { owner: 'rider-m', include_content: true });
      await assert.rejects(client.call('ListSessions', { owner: '' }));
      await client.call('RevokeSessions', { owner: 'rider-m' });
      await client.call('RevokeSessions', { owner: 'rider-m' });
      const samples = parse(await (await fetch(`${server.httpUrl}/metrics`)).text());
      const value = (name: string) => samples.get(name) ?? 0;
      const calls = (method: string, code: string) =>
        value(`sessionmanager_calls_total{transport="grpc",method="${method}",code="${code}"}`);
      assert.equal(calls('ListSessions', 'OK'), 1);
      assert.equal(calls('ListSessions', 'INVALID_ARGUMENT'), 1);
      assert.equal(calls('RevokeSessions', 'OK'), 2);
      const event = (name: string) => value(`sessionmanager_session_events_total{event="${name}"}`);
      assert.equal(event('created'), 3);
      assert.equal(event('evicted'), 1);
      assert.equal(event('revoked'), 2);
      const operations = (operation: string) =>
        value(
          `sessionmanager_store_operation_duration_seconds_count{operation="${operation}",outcome="ok"}`,
        );
      assert.equal(operations('list_owned'), 1, 'the invalid owner never reached the store');
      assert.equal(operations('revoke_owned'), 2);
    } finally {
      client.close();
      await server.close();
    }
  });
});

describe('hot-path metric series', () => {
  it('a histogram sample counts every observation not above its bucket bound, as Prometheus le does', async () => {
    const bounds = [0.001, 0.01, 0.1, 1];
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.constantFrom(0, 0.001, 0.005, 0.01, 0.5, 1, 7)),
        async (observed) => {
          const registry = new Registry();
          const histogram = new LabeledHistogram('h', 'help', ['a'], bounds, registry);
          const series = histogram.series('x');
          for (const value of observed) series.observe(value);
          const samples = parse(await registry.metrics());
          for (const le of [...bounds.map(String), '+Inf']) {
            const limit = le === '+Inf' ? Number.POSITIVE_INFINITY : Number(le);
            assert.equal(
              samples.get(`h_bucket{a="x",le="${le}"}`),
              observed.filter((value) => value <= limit).length,
              `bucket le=${le}`,
            );
          }
          assert.equal(samples.get('h_count{a="x"}'), observed.length);
        },
      ),
      { numRuns: 50 },
    );
  });
});

describe('metrics of the process and the store', () => {
  it('no gauge is named like a counter (promtool check metrics rejects a non-counter *_total)', async () => {
    const text = await new Metrics().exposition();
    const gauges = [...text.matchAll(/^# TYPE (\S+) gauge$/gm)].map((match) => match[1]);
    assert.ok(gauges.includes('nodejs_active_handles'), 'the per-type gauges stay');
    assert.deepEqual(
      gauges.filter((name) => name?.endsWith('_total')),
      [],
    );
  });

  it('counts a reconnect each time the store answers again after being unreachable, not the first connection', async () => {
    const metrics = new Metrics();
    const reconnects = async () =>
      parse(await metrics.exposition()).get('sessionmanager_store_reconnects_total');
    metrics.storeHealthChanged(true);
    assert.equal(await reconnects(), 0);
    metrics.storeHealthChanged(false);
    assert.equal(parse(await metrics.exposition()).get('sessionmanager_store_up'), 0);
    metrics.storeHealthChanged(true);
    metrics.storeHealthChanged(false);
    metrics.storeHealthChanged(true);
    assert.equal(await reconnects(), 2);
    assert.equal(parse(await metrics.exposition()).get('sessionmanager_store_up'), 1);
  });

  it("the service exports its build and, on the in-memory store, the store's use of its bound", async () => {
    const httpPort = await freePort();
    const service = await spawnService({
      PORT: '0',
      HTTP_PORT: String(httpPort),
      MEMORY_MAX_BYTES: '2000000',
    });
    try {
      const base = `http://127.0.0.1:${httpPort}`;
      const scrape = async () => parse(await (await fetch(`${base}/metrics`)).text());
      await waitFor('SERVING', async () => (await fetch(`${base}/readyz`)).ok);
      assert.equal((await scrape()).get('sessionmanager_memory_store_bytes'), 0);

      const created = await fetch(`${base}/v1/sessions`, {
        method: 'POST',
        body: JSON.stringify({ fleetListRequest: Buffer.alloc(3000).toString('base64') }),
      });
      assert.equal(created.status, 200);
      const samples = await scrape();
      const { version } = JSON.parse(readFileSync('package.json', 'utf8')) as { version: string };
      assert.equal(
        samples.get(
          `sessionmanager_build_info{version="${version}",node_version="${process.version}",transport="lean",store="memory"}`,
        ),
        1,
      );
      assert.equal(samples.get('sessionmanager_memory_store_sessions'), 1);
      assert.equal(samples.get('sessionmanager_memory_store_max_bytes'), 2_000_000);
      const bytes = samples.get('sessionmanager_memory_store_bytes') ?? 0;
      assert.ok(bytes > 3000 && bytes < 6000, `3000 payload bytes plus bookkeeping, got ${bytes}`);
    } finally {
      service.child.kill('SIGKILL');
    }
  });
});

describe('gRPC-ecosystem metrics (go-grpc-prometheus names), each call counted once', () => {
  for (const transport of ['lean', 'grpc-js'] as const) {
    it(`${transport}: started, handled by grpc_code, and handling seconds, per method`, async () => {
      const server = await startServer({
        env: { GRPC_TRANSPORT: transport, SESSION_MAX_BYTES: '1024' },
      });
      const client = rawClient(server.address);
      try {
        const { session_key } = await client.call('SetSession', {});
        await client.call('GetSession', { session_key });
        await assert.rejects(client.call('GetSession', { session_key: 'absent' }));
        await assert.rejects(client.call('GetSession', { session_key: 'bad key' }));
        // Far over the message limit: the server refuses it before any handler runs.
        await assert.rejects(
          client.call('SetSession', { fleet_list_request: Buffer.alloc(200_000) }),
          { code: 8 },
        );
        assert.equal(await client.health(), 'SERVING');
        const samples = parse(await (await fetch(`${server.httpUrl}/metrics`)).text());
        const value = (name: string) => samples.get(name) ?? 0;
        const labels = (method: string, service = 'sessionmanager.v1.SessionManagerService') =>
          `grpc_method="${method}",grpc_service="${service}",grpc_type="unary"`;
        const handled = (code: string, method: string) =>
          value(`grpc_server_handled_total{grpc_code="${code}",${labels(method)}}`);
        assert.equal(value(`grpc_server_started_total{${labels('GetSession')}}`), 3);
        assert.equal(handled('OK', 'GetSession'), 1);
        assert.equal(handled('NotFound', 'GetSession'), 1);
        assert.equal(handled('InvalidArgument', 'GetSession'), 1);
        assert.equal(value(`grpc_server_handling_seconds_count{${labels('GetSession')}}`), 3);
        assert.equal(handled('OK', 'SetSession'), 1);
        assert.equal(
          value(`sessionmanager_calls_total{transport="grpc",method="GetSession",code="OK"}`),
          1,
        );
        if (transport === 'lean') {
          // The lean server counts what it refuses itself, once, and the health service.
          assert.equal(handled('ResourceExhausted', 'SetSession'), 1);
          assert.equal(
            value(
              'sessionmanager_calls_total{transport="grpc",method="SetSession",code="RESOURCE_EXHAUSTED"}',
            ),
            1,
          );
          assert.equal(
            value(
              `grpc_server_handled_total{grpc_code="OK",${labels('Check', 'grpc.health.v1.Health')}}`,
            ),
            1,
          );
        }
        const total = [...samples]
          .filter(([name]) => name.startsWith('grpc_server_handled_total{'))
          .filter(([name]) => name.includes('SessionManagerService'))
          .reduce((sum, [, count]) => sum + count, 0);
        assert.equal(total, transport === 'lean' ? 5 : 4);
      } finally {
        client.close();
        await server.close();
      }
    });
  }
});
