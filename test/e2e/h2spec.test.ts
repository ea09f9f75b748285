import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { SERVICE_NAME } from '../support/proto.ts';
import { startServer, type TestServer } from '../support/server.ts';

// h2spec, the third-party HTTP/2 conformance suite (test/tools/h2spec), run
// against the lean transport and against GRPC_TRANSPORT=grpc-js (nghttp2,
// through node:http2) side by side. The lean transport may fail a case only
// where grpc-js fails it too; docs/http2.md says why those few fail.

const TOOLS = new URL('../tools/h2spec/', import.meta.url);
/** Seconds h2spec waits for each expected frame: generous, for a busy machine. */
const CASE_TIMEOUT_S = '5';

interface Outcome {
  readonly cases: number;
  readonly failed: ReadonlySet<string>;
}

/** The failed cases of an h2spec JUnit report, as "package: name". */
function outcome(xml: string): Outcome {
  const failed = new Set<string>();
  let cases = 0;
  for (const match of xml.matchAll(
    /<testcase package="([^"]*)" classname="([^"]*)"[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g,
  )) {
    cases++;
    const body = match[4] ?? '';
    if (/<(error|failure)[\s>]/.test(body)) failed.add(`${match[1]}: ${match[2]}`);
  }
  return { cases, failed };
}

function run(binary: string, port: number, grpcShaped: boolean, dir: string): Promise<Outcome> {
  const report = join(dir, `${binary}-${port}.xml`);
  const args = ['-h', '127.0.0.1', '-p', String(port), '-o', CASE_TIMEOUT_S, '-j', report];
  if (grpcShaped) args.push('-P', `/${SERVICE_NAME}/GetSession`);
  return new Promise((resolve, reject) => {
    // h2spec exits non-zero when a case fails; the report says which.
    execFile(join(dir, binary), args, { timeout: 600_000 }, (error) => {
      try {
        resolve(outcome(readFileSync(report, 'utf8')));
      } catch {
        reject(error ?? new Error(`h2spec wrote no report at ${report}`));
      }
    });
  });
}

describe('h2spec: the lean HTTP/2 layer fails no case that grpc-js passes', () => {
  let dir: string;
  const servers: Record<string, TestServer> = {};

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'h2spec-'));
    for (const binary of ['h2spec', 'h2spec-grpc']) {
      const path = join(dir, binary);
      writeFileSync(path, gunzipSync(readFileSync(new URL(`${binary}.gz`, TOOLS))));
      chmodSync(path, 0o755);
    }
    for (const transport of ['lean', 'grpc-js']) {
      servers[transport] = await startServer({ env: { GRPC_TRANSPORT: transport } });
    }
  });

  after(async () => {
    await Promise.all(Object.values(servers).map((server) => server.close()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [binary, grpcShaped] of [
    ['h2spec-grpc', true],
    ['h2spec', false],
  ] as const) {
    it(`${binary}: every case the lean transport fails, grpc-js fails too`, async (t) => {
      const port = (transport: string) => (servers[transport] as TestServer).port;
      const [lean, grpcJs] = await Promise.all([
        run(binary, port('lean'), grpcShaped, dir),
        run(binary, port('grpc-js'), grpcShaped, dir),
      ]);
      t.diagnostic(
        `${lean.cases} cases; lean failed ${lean.failed.size}, grpc-js failed ${grpcJs.failed.size}`,
      );
      assert.ok(lean.cases >= 140, `the report lists ${lean.cases} cases`);
      const leanOnly = [...lean.failed].filter((name) => !grpcJs.failed.has(name));
      assert.deepEqual(leanOnly, []);
    });
  }
});
