import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../support/cli.ts';
import { freePort } from '../support/ports.ts';
import { startServer, type TestServer } from '../support/server.ts';

const cli = runCli;

describe('sessionmanager CLI against a real server', () => {
  let server: TestServer;
  let addr: string[];

  before(async () => {
    server = await startServer();
    addr = ['--addr', server.address];
  });

  after(() => server.close());

  it('set, get, update, touch, consume, delete with readable payloads', async () => {
    const set = await cli([
      'set',
      ...addr,
      '--request',
      '{"pickup":"A"}',
      '--response',
      'base64:AP+A',
      '--attr',
      'rider=r-1',
      '--ttl',
      '120',
    ]);
    assert.equal(set.code, 0, set.stderr);
    const key: string = set.json.sessionKey;
    assert.match(key, /^[A-Za-z0-9_-]{43}$/);
    assert.equal(set.json.version, 1);

    // A generated key may start with '-': `--` ends the options before it.
    const got = await cli(['get', ...addr, '--', key]);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(got.json.fleetListRequest, { pickup: 'A' });
    assert.deepEqual(got.json.fleetListResponse, { base64: 'AP+A' });
    assert.deepEqual(got.json.attributes, { rider: 'r-1' });
    assert.equal(got.json.ttlSeconds, 120);

    const updated = await cli([
      'update',
      ...addr,
      '--attr',
      'order=o-1',
      '--remove',
      'rider',
      '--expected-version',
      '1',
      '--',
      key,
    ]);
    assert.equal(updated.code, 0, updated.stderr);
    assert.deepEqual(updated.json.attributes, { order: 'o-1' });
    assert.equal(updated.json.version, 2);

    const touched = await cli(['touch', '--ttl', '600', '--', key], {
      SESSIONMANAGER_ADDR: server.address,
    });
    assert.equal(touched.code, 0, touched.stderr);
    assert.ok(touched.json.expiresAtUnixMs > Date.now() + 590_000);

    const consumed = await cli(['consume', ...addr, '--', key]);
    assert.equal(consumed.code, 0);
    assert.equal(consumed.json.sessionKey, key);

    const deleted = await cli(['delete', ...addr, '--', key]);
    assert.equal(deleted.code, 0, deleted.stderr);
    assert.deepEqual(deleted.json, { deleted: false });
  });

  it('exit codes tell not-found (3), invalid input (2), conflict (4) and unavailable (5) apart', async () => {
    const absent = await cli(['get', 'no-such-key', ...addr]);
    assert.equal(absent.code, 3);
    assert.match(absent.stderr, /NOT_FOUND/);

    const invalid = await cli(['get', 'bad key!', ...addr]);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /INVALID_ARGUMENT: session_key:/);

    await cli(['set', ...addr, '--key', 'cli-conflict']);
    const conflict = await cli(['update', 'cli-conflict', ...addr, '--expected-version', '7']);
    assert.equal(conflict.code, 4);
    assert.match(conflict.stderr, /CONFLICT: expected_version:/);
    const kept = await cli(['consume', 'cli-conflict', ...addr, '--expected-version', '7']);
    assert.equal(kept.code, 4);
    assert.equal(
      (await cli(['consume', 'cli-conflict', ...addr, '--expected-version', '1'])).code,
      0,
    );

    const nobody = await cli([
      'get',
      'k',
      '--addr',
      `127.0.0.1:${await freePort()}`,
      '--timeout',
      '500',
    ]);
    assert.equal(nobody.code, 5);

    const usage = await cli(['frobnicate', ...addr]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /unknown command/);
    assert.equal((await cli(['get', ...addr])).code, 2);
    assert.equal((await cli(['get', 'k', '--bogus'])).code, 2);
  });

  it('a key that starts with "-" works after "--"', async () => {
    const set = await cli(['set', ...addr, '--key=-dash-key']);
    assert.equal(set.code, 0, set.stderr);
    const got = await cli(['get', ...addr, '--', '-dash-key']);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.json.sessionKey, '-dash-key');
  });

  it('set --owner, list-sessions [--content] and revoke-sessions', async () => {
    const owner = ['--', '-rider 42'];
    const first = await cli(['set', ...addr, '--request', '{"pickup":"A"}', '--owner=-rider 42']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.json.sessionKey, /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{3}$/);
    const second = await cli(['set', ...addr, '--attr', 'seat=12A', '--owner=-rider 42']);
    assert.equal(second.code, 0, second.stderr);

    const listed = await cli(['list-sessions', ...addr, ...owner]);
    assert.equal(listed.code, 0, listed.stderr);
    assert.equal(listed.json.length, 2);
    assert.deepEqual(Object.keys(listed.json[0]).sort(), [
      'createdAtUnixMs',
      'expiresAtUnixMs',
      'handle',
      'sizeBytes',
      'ttlSeconds',
      'version',
    ]);
    assert.ok(!listed.stdout.includes(first.json.sessionKey), 'handles, not keys');
    const content = await cli(['list-sessions', ...addr, '--content', ...owner]);
    assert.equal(content.code, 0, content.stderr);
    assert.deepEqual(
      content.json.map((session: { fleetListRequest: unknown; attributes: unknown }) => [
        session.fleetListRequest,
        session.attributes,
      ]),
      [
        [{ pickup: 'A' }, {}],
        [null, { seat: '12A' }],
      ],
    );

    const revoked = await cli(['revoke-sessions', ...addr, ...owner]);
    assert.equal(revoked.code, 0, revoked.stderr);
    assert.deepEqual(revoked.json, { revoked: 2 });
    assert.deepEqual((await cli(['list-sessions', ...addr, ...owner])).json, []);
    assert.equal((await cli(['get', ...addr, '--', first.json.sessionKey])).code, 3);

    const usage = await cli(['list-sessions', ...addr]);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /list-sessions needs an OWNER/);
    const invalid = await cli(['revoke-sessions', ...addr, 'tab\there']);
    assert.equal(invalid.code, 2);
    assert.match(invalid.stderr, /INVALID_ARGUMENT: owner:/);
    const keyed = await cli(['set', ...addr, '--key', 'cli-owned', '--owner', 'r-1']);
    assert.equal(keyed.code, 2);
    assert.match(keyed.stderr, /INVALID_ARGUMENT: session_key:/);
  });

  it('health prints the serving status', async () => {
    const health = await cli(['health', ...addr]);
    assert.equal(health.code, 0, health.stderr);
    assert.deepEqual(health.json, { status: 'SERVING' });
  });
});
