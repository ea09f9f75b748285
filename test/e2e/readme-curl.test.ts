import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startServer, type TestServer } from '../support/server.ts';

// Every curl line of README.md and of docs/http-json.md runs as written, in
// order, through bash, against a fresh server: the only change is the
// address, `localhost:8080` → the test server's HTTP port.

const run = promisify(execFile);

function curlExamples(document: string) {
  const text = readFileSync(join(import.meta.dirname, '../..', document), 'utf8');
  const shellBlocks = [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((match) => match[1] ?? '');
  return {
    inShellBlocks: shellBlocks.flatMap((block) =>
      block.split('\n').filter((line) => /^curl\s/.test(line)),
    ),
    everywhere: text.split('\n').filter((line) => /^\s*curl\s/.test(line)),
  };
}

/** Runs each line in order; every reply must be JSON, and none an error. */
async function runAsWritten(lines: string[], server: TestServer) {
  const address = new URL(server.httpUrl).host;
  const replies: Array<Record<string, unknown>> = [];
  for (const line of lines) {
    assert.ok(line.includes('localhost:8080'), line);
    const command = line.replaceAll('localhost:8080', address);
    const { stdout } = await run('bash', ['-c', command], { timeout: 10_000 });
    const reply = JSON.parse(stdout) as Record<string, unknown>;
    assert.equal(reply.code, undefined, `${line}\n→ ${stdout}`);
    replies.push(reply);
  }
  return replies;
}

describe('the README curl examples', () => {
  const { inShellBlocks, everywhere } = curlExamples('README.md');
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('finds every curl line of the README in a sh block', () => {
    assert.deepEqual(inShellBlocks, everywhere);
    assert.ok(inShellBlocks.length >= 2, `${inShellBlocks.length} curl lines`);
  });

  it('each succeeds, as written, against a fresh server', async () => {
    const [created, read] = await runAsWritten(inShellBlocks, server);
    assert.equal(created?.sessionKey, 'order-42');
    assert.equal(read?.ttlSeconds, '900');
  });
});

describe('the docs/http-json.md curl examples', () => {
  const { inShellBlocks, everywhere } = curlExamples('docs/http-json.md');
  let server: TestServer;
  before(async () => {
    server = await startServer();
  });
  after(() => server.close());

  it('finds every curl line of docs/http-json.md in a sh block', () => {
    assert.deepEqual(inShellBlocks, everywhere);
    assert.ok(inShellBlocks.length >= 9, `${inShellBlocks.length} curl lines`);
  });

  it('each succeeds, as written, against a fresh server, and answers what its comment says', async () => {
    const replies = await runAsWritten(inShellBlocks, server);
    const [created, named, read, patched, touched, consumed, deleted, , rotated, ...owner] =
      replies;
    const [owned, listed, revoked] = owner;
    assert.match(String(created?.sessionKey), /^[A-Za-z0-9_-]{43}$/);
    assert.equal(named?.sessionKey, 'order-42');
    assert.equal(read?.ttlSeconds, '900');
    assert.deepEqual(patched?.attributes, { orderId: 'by0x' });
    assert.equal(patched?.version, '2');
    assert.ok(Number(touched?.expiresAtUnixMs) > Date.now() + 500_000);
    assert.equal(consumed?.sessionKey, 'order-42');
    assert.deepEqual(deleted, { deleted: false });
    assert.notEqual(rotated?.sessionKey, 'login-7');
    assert.match(String(owned?.sessionKey), /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{3}$/);
    assert.equal((listed?.sessions as unknown[] | undefined)?.length, 1);
    assert.deepEqual(revoked, { revoked: '1' });
  });
});
