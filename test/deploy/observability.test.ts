// The alert rules and the Grafana dashboard, checked with Prometheus's own
// tools (Debian's `prometheus` package: promtool) and against what a running
// service really exports:
// - promtool check rules and promtool test rules (alerts.test.yaml);
// - every dashboard query parses (as a recording rule for promtool);
// - `promtool check metrics` is clean on a real scrape;
// - every series and label the rules and the dashboard name is in a scrape
//   of the service (on Redis and on the in-memory store).
// Needs promtool: `npm run test:deploy`, which .ci/run calls.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { parse } from 'yaml';
import { rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { type ServiceProcess, spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

const DIR = 'deploy/observability';

/** Labels that Prometheus or Kubernetes service discovery add to every series. */
const TARGET_LABELS = new Set(['namespace', 'pod', 'job', 'instance']);

const KEYWORDS = new Set([
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'and',
  'or',
  'unless',
  'offset',
  'bool',
]);

interface Selector {
  metric: string;
  labels: string[];
}

/** The series selectors of a PromQL expression: metric names and the label names matched. */
function selectors(expr: string): Selector[] {
  const found: Selector[] = [];
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const grouping = /\b(?:by|without|on|ignoring)\s*\([^)]*\)/g;
  const text = withoutStrings.replace(grouping, ' ');
  for (const match of text.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?/g)) {
    const [, name = '', braces] = match;
    const next = text.slice((match.index ?? 0) + match[0].length).trimStart();
    if (KEYWORDS.has(name) || next.startsWith('(') || /^\d/.test(name)) continue;
    const before = text.slice(0, match.index).trimEnd();
    if (before.endsWith('[') || /\d$/.test(before)) continue;
    const labels = [...(braces ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)/g)].map(
      (m) => m[1] as string,
    );
    found.push({ metric: name, labels });
  }
  return found;
}

/** The label names of the grouping clauses (`by (a, b)`), per expression. */
function groupingLabels(expr: string): string[] {
  return [...expr.matchAll(/\bby\s*\(([^)]*)\)/g)].flatMap((m) =>
    (m[1] ?? '')
      .split(',')
      .map((label) => label.trim())
      .filter(Boolean),
  );
}

function alertExpressions(): string[] {
  const rules = parse(readFileSync(`${DIR}/alerts.yaml`, 'utf8')) as {
    groups: Array<{ rules: Array<{ expr: string }> }>;
  };
  return rules.groups.flatMap((group) => group.rules.map((rule) => rule.expr));
}

interface Panel {
  title: string;
  targets?: Array<{ expr: string }>;
}

/** Dashboard queries with Grafana's variables replaced by what they expand to. */
function dashboardExpressions(): Array<{ panel: string; expr: string }> {
  const dashboard = JSON.parse(readFileSync(`${DIR}/grafana-dashboard.json`, 'utf8')) as {
    panels: Panel[];
  };
  return dashboard.panels.flatMap((panel) =>
    (panel.targets ?? []).map((target) => ({
      panel: panel.title,
      expr: target.expr
        .replaceAll('$__rate_interval', '5m')
        .replaceAll('$namespace', '.*')
        .replaceAll('$job', '.*'),
    })),
  );
}

function promtool(args: string[], input?: string): { status: number; output: string } {
  const result = spawnSync('promtool', args, { encoding: 'utf8', input });
  return { status: result.status ?? 1, output: `${result.stdout}${result.stderr}` };
}

/** Series name → every label name seen on it, from the Prometheus text format. */
function seriesOf(text: string): Map<string, Set<string>> {
  const series = new Map<string, Set<string>>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0] ?? '';
    const labels = series.get(name) ?? new Set<string>();
    for (const m of line.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) labels.add(m[1] as string);
    series.set(name, labels);
  }
  return series;
}

describe('alert rules and dashboard, with promtool', () => {
  it('promtool check rules', () => {
    const result = promtool(['check', 'rules', `${DIR}/alerts.yaml`]);
    assert.equal(result.status, 0, result.output);
    assert.match(result.output, /SUCCESS: 5 rules found/);
  });

  it('promtool test rules: every alert fires on its series and stays quiet otherwise', () => {
    const result = promtool(['test', 'rules', `${DIR}/alerts.test.yaml`]);
    assert.equal(result.status, 0, result.output);
    const tested = new Set(
      [...readFileSync(`${DIR}/alerts.test.yaml`, 'utf8').matchAll(/alertname: (\w+)/g)].map(
        (m) => m[1],
      ),
    );
    const defined = parse(readFileSync(`${DIR}/alerts.yaml`, 'utf8')).groups[0].rules.map(
      (rule: { alert: string }) => rule.alert,
    );
    assert.deepEqual([...tested].sort(), [...defined].sort(), 'every alert has a test');
  });

  it('every dashboard query is valid PromQL', () => {
    const queries = dashboardExpressions();
    assert.ok(queries.length >= 20);
    mkdirSync('.tmp', { recursive: true });
    const file = '.tmp/dashboard-queries.rules.yaml';
    writeFileSync(
      file,
      JSON.stringify({
        groups: [
          {
            name: 'dashboard',
            rules: queries.map(({ expr }, i) => ({ record: `dashboard:query_${i}`, expr })),
          },
        ],
      }),
    );
    const result = promtool(['check', 'rules', file]);
    assert.equal(result.status, 0, result.output);
  });
});

describe('the series the rules and the dashboard use, in a real scrape', () => {
  let redis: TestRedis;
  const services: ServiceProcess[] = [];
  let redisScrape = '';
  let memoryScrape = '';

  async function scrapeAfterCalls(env: Record<string, string>): Promise<string> {
    const [port, httpPort] = [await freePort(), await freePort()];
    const service = await spawnService({ PORT: String(port), HTTP_PORT: String(httpPort), ...env });
    services.push(service);
    const client = rawClient(`127.0.0.1:${port}`);
    try {
      await waitFor('SERVING', async () => (await client.health()) === 'SERVING');
      const { session_key } = await client.call('SetSession', {
        fleet_list_request: Buffer.alloc(300),
      });
      await client.call('GetSession', { session_key });
      await client.call('UpdateSession', { session_key, expected_version: 1 });
      await client
        .call('UpdateSession', { session_key, expected_version: 1 })
        .catch(() => undefined);
      await client.call('GetSession', { session_key: 'absent' }).catch(() => undefined);
      await fetch(`http://127.0.0.1:${httpPort}/v1/sessions/absent`);
      return await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    } finally {
      client.close();
    }
  }

  before(async () => {
    redis = await startRedis();
    redisScrape = await scrapeAfterCalls({
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(redis.port),
    });
    memoryScrape = await scrapeAfterCalls({});
  });

  after(async () => {
    for (const service of services) service.child.kill('SIGKILL');
    await redis?.dispose();
  });

  it('promtool check metrics is clean on both stores', () => {
    for (const text of [redisScrape, memoryScrape]) {
      const result = promtool(['check', 'metrics'], text);
      assert.equal(result.status, 0, result.output);
    }
  });

  it('every series and label named in the rules and the dashboard is exported', () => {
    const exported = seriesOf(redisScrape);
    for (const [name, labels] of seriesOf(memoryScrape)) {
      exported.set(name, new Set([...(exported.get(name) ?? []), ...labels]));
    }
    const expressions = [
      ...alertExpressions().map((expr) => ({ where: 'alerts.yaml', expr })),
      ...dashboardExpressions().map(({ panel, expr }) => ({ where: `panel "${panel}"`, expr })),
    ];
    for (const { where, expr } of expressions) {
      const used = selectors(expr);
      assert.ok(used.length > 0, `${where}: a series in ${expr}`);
      for (const { metric, labels } of used) {
        const seen = exported.get(metric);
        assert.ok(seen, `${where}: ${metric} is not in /metrics`);
        for (const label of [...labels, ...groupingLabels(expr)]) {
          if (TARGET_LABELS.has(label) || (label === 'le' && !metric.endsWith('_bucket'))) continue;
          if (groupingLabels(expr).includes(label) && !labels.includes(label)) {
            // A grouping label must exist on at least one series of the expression.
            const onAny = used.some((s) => exported.get(s.metric)?.has(label));
            assert.ok(onAny, `${where}: no series has the label ${label}`);
            continue;
          }
          assert.ok(seen.has(label), `${where}: ${metric} has no label ${label}`);
        }
      }
    }
    const handled = redisScrape.match(/^grpc_server_handled_total\{.*$/gm) ?? [];
    // go-grpc-prometheus names codes as Go does: NotFound, not NOT_FOUND.
    assert.ok(
      handled.some((line) => line.includes('grpc_code="NotFound"')),
      handled.join('\n'),
    );
  });
});

describe('the PromQL series extractor', () => {
  it('finds metric names and matched labels, not functions, keywords or durations', () => {
    assert.deepEqual(
      selectors(
        'histogram_quantile(0.99, sum by (le, grpc_method) (rate(x_bucket{a="1",b=~"y|z"}[5m]))) / on (pod) y_total > 0.1',
      ),
      [
        { metric: 'x_bucket', labels: ['a', 'b'] },
        { metric: 'y_total', labels: [] },
      ],
    );
    assert.deepEqual(groupingLabels('sum by (le, grpc_method) (rate(x[1m]))'), [
      'le',
      'grpc_method',
    ]);
  });
});

// Fails fast with a clear message where promtool is missing.
execFileSync('promtool', ['--version'], { stdio: 'ignore' });
