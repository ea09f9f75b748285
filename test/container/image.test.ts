// The image as a deployment runs it: built from the Dockerfile on a local
// stand-in for the Node LTS slim image (scripts/container/base-image.sh),
// started by podman with a read-only root filesystem, no capabilities and the
// host network, against the project's own redis-server configured with the
// repo's redis.conf (AOF) and the least-privilege ACL as a users file.
// Needs podman and runc (Debian) and root: `npm run test:container`, which
// .ci/run calls; not part of `npm test`.
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { createClient, type SessionClient, SessionError } from '@sessionmanager/client';
import { ACL_PASSWORD, ACL_USER, aclRules } from '../support/acl.ts';
import { rawClient } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { inspect, podman, podmanStatus, ULIMITS } from './podman.ts';

const NODE_VERSION = process.env.CONTAINER_NODE_VERSION ?? '26.12.1';
const IMAGE = 'localhost/sessionmanager:container-test';
const ADMIN_PASSWORD = 'container-test-admin-0123456789';
const KEY_PREFIX = 'sessionmanager:';
const IN_FLIGHT = 40;

interface Redis {
  port: number;
  cli(...args: string[]): string;
  process: ChildProcess;
  dir: string;
}

/** redis-server with the deployment's redis.conf; only port, bind, dir and the ACL file differ. */
async function startConfiguredRedis(): Promise<Redis> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sessionmanager-container-redis-'));
  const version = execFileSync('redis-server', ['--version'], { encoding: 'utf8' });
  const [major = 0, minor = 0] = (/v=(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  // CLIENT SETINFO exists from Redis 7.2; an ACL file naming it fails to load before.
  const setinfo = major > 7 || (major === 7 && minor >= 2);
  writeFileSync(
    join(dir, 'users.acl'),
    [
      'user default off',
      `user ${ACL_USER} ${aclRules(KEY_PREFIX, { setinfo }).join(' ')}`,
      `user admin on >${ADMIN_PASSWORD} ~* &* +@all`,
      '',
    ].join('\n'),
  );
  const child = spawn(
    'redis-server',
    [
      'deploy/kubernetes/redis/redis.conf',
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--aclfile',
      join(dir, 'users.acl'),
    ],
    { stdio: 'ignore' },
  );
  process.once('exit', () => child.kill('SIGKILL'));
  const cli = (...args: string[]) =>
    execFileSync(
      'redis-cli',
      [
        '-p',
        String(port),
        '--user',
        'admin',
        '--pass',
        ADMIN_PASSWORD,
        '--no-auth-warning',
        ...args,
      ],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] },
    ).trim();
  await waitFor('redis-server', async () => cli('PING') === 'PONG');
  return { port, cli, process: child, dir };
}

describe('the container image', () => {
  let redis: Redis;
  let container: string;
  let grpcPort: number;
  let httpPort: number;
  let sessions: SessionClient;

  before(async () => {
    const base = execFileSync('scripts/container/base-image.sh', [NODE_VERSION], {
      encoding: 'utf8',
    }).trim();
    const started = Date.now();
    await podman(
      'build',
      '--network',
      'host',
      ...ULIMITS,
      '--build-arg',
      `NODE_IMAGE=${base}`,
      '--tag',
      IMAGE,
      '.',
    );
    console.log(`container figures: ${JSON.stringify({ base, buildMs: Date.now() - started })}`);
    redis = await startConfiguredRedis();
    [grpcPort, httpPort] = [await freePort(), await freePort()];
    container = await podman(
      'run',
      '--detach',
      '--network',
      'host',
      ...ULIMITS,
      '--read-only',
      '--cap-drop',
      'ALL',
      '--security-opt',
      'no-new-privileges',
      '--env',
      'HOST=127.0.0.1',
      '--env',
      `PORT=${grpcPort}`,
      '--env',
      `HTTP_PORT=${httpPort}`,
      '--env',
      'REDIS_HOST=127.0.0.1',
      '--env',
      `REDIS_PORT=${redis.port}`,
      '--env',
      `REDIS_USERNAME=${ACL_USER}`,
      '--env',
      `REDIS_PASSWORD=${ACL_PASSWORD}`,
      // Calls held up by a paused Redis must outlive the pause in the drain test.
      '--env',
      'REDIS_COMMAND_TIMEOUT=10s',
      '--env',
      'SHUTDOWN_GRACE=8s',
      IMAGE,
    );
    sessions = createClient({ address: `127.0.0.1:${grpcPort}`, deadlineMs: 5000 });
    await waitFor(
      '/readyz',
      async () => (await fetch(`http://127.0.0.1:${httpPort}/readyz`)).ok,
      30_000,
    );
  });

  after(async () => {
    sessions?.close();
    if (container) {
      const logs = await podmanStatus('logs', container);
      if (process.env.CONTAINER_LOGS) console.log(logs.output);
      await podmanStatus('rm', '--force', container);
    }
    if (redis) {
      redis.process.kill('SIGCONT');
      redis.process.kill('SIGKILL');
      rmSync(redis.dir, { recursive: true, force: true });
    }
  });

  it('runs as a non-root user, on a read-only root filesystem, with no capabilities', async () => {
    assert.equal(await inspect(IMAGE, '{{.Config.User}}'), '1000:1000');
    assert.equal(await inspect(container, '{{.HostConfig.ReadonlyRootfs}}'), 'true');
    // The kernel's view of the service process (PID 1 in the container).
    const pid = await inspect(container, '{{.State.Pid}}');
    const procStatus = readFileSync(`/proc/${pid}/status`, 'utf8');
    assert.match(procStatus, /^Uid:\s+1000\s+1000\s+1000\s+1000$/m);
    assert.match(procStatus, /^CapEff:\s+0+$/m);
    assert.deepEqual(readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean), [
      'node',
      'dist/main.js',
    ]);
    // Even root inside the container cannot write to the image's files.
    const write = await podmanStatus(
      'exec',
      '--user',
      '0',
      container,
      'sh',
      '-c',
      ': > /app/probe',
    );
    assert.notEqual(write.code, 0);
    assert.match(write.output, /Read-only file system/);
  });

  it('answers /healthz, /readyz and the gRPC health service, and reports its build', async () => {
    const healthz = await fetch(`http://127.0.0.1:${httpPort}/healthz`);
    assert.equal(healthz.status, 200);
    const readyz = await fetch(`http://127.0.0.1:${httpPort}/readyz`);
    assert.equal(readyz.status, 200);
    const client = rawClient(`127.0.0.1:${grpcPort}`);
    try {
      assert.equal(await client.health(), 'SERVING');
      assert.equal(await client.health('sessionmanager.v1.SessionManagerService'), 'SERVING');
    } finally {
      client.close();
    }
    const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
    assert.match(
      metrics,
      new RegExp(
        `^sessionmanager_build_info\\{version="[^"]+",node_version="v${NODE_VERSION.replaceAll('.', '\\.')}",transport="lean",store="redis-standalone"\\} 1$`,
        'm',
      ),
    );
    assert.match(metrics, /^sessionmanager_store_up 1$/m);
  });

  it("the CLI in the image reports SERVING (the compose file's health check)", async () => {
    const check = await podmanStatus(
      'exec',
      container,
      'node',
      'dist/cli/main.js',
      'health',
      '--addr',
      `127.0.0.1:${grpcPort}`,
    );
    assert.equal(check.code, 0, check.output);
    assert.match(check.output, /"status": ?"SERVING"/);
  });

  it('serves the session contract against Redis as the least-privilege ACL user', async () => {
    const request = { pickup: 'Airport T1', seats: 2 };
    const created = await sessions.setSession({
      fleetListRequest: request,
      fleetListResponse: { cars: ['sedan-7'] },
      attributes: { rider: 'r-1' },
      ttlSeconds: 600,
    });
    const { sessionKey } = created;
    assert.equal(created.version, 1);

    const read = await sessions.getSession({ sessionKey });
    assert.deepEqual(read?.fleetListRequest, request);
    assert.equal(read?.attributes.rider, 'r-1');

    const updated = await sessions.updateSession({
      sessionKey,
      setAttributes: { orderId: 'o-1' },
      expectedVersion: 1,
    });
    assert.equal(updated.version, 2);
    await assert.rejects(
      sessions.updateSession({ sessionKey, setAttributes: { x: 'y' }, expectedVersion: 1 }),
      (error: unknown) => error instanceof SessionError && error.code === 'CONFLICT',
    );
    const touched = await sessions.touchSession({ sessionKey, ttlSeconds: 900 });
    assert.ok(touched.expiresAtUnixMs > Date.now() + 800_000);

    const rotated = await sessions.rotateSessionKey({ sessionKey });
    assert.equal(await sessions.getSession({ sessionKey }), null);
    const consumed = await sessions.consumeSession({ sessionKey: rotated.sessionKey });
    assert.equal(consumed?.attributes.orderId, 'o-1');
    assert.equal(await sessions.consumeSession({ sessionKey: rotated.sessionKey }), null);

    const other = await sessions.setSession({ fleetListRequest: request });
    assert.equal((await sessions.deleteSession({ sessionKey: other.sessionKey })).deleted, true);
    assert.equal((await sessions.deleteSession({ sessionKey: other.sessionKey })).deleted, false);

    // The same service over HTTP/JSON.
    const response = await fetch(`http://127.0.0.1:${httpPort}/v1/sessions`, {
      method: 'POST',
      body: JSON.stringify({ fleetListRequest: Buffer.from('{}').toString('base64') }),
    });
    assert.equal(response.status, 200);
    const { sessionKey: httpKey } = (await response.json()) as { sessionKey: string };

    // Stored in Redis under a hashed key with a TTL, in database 5, and the
    // service's user was never refused anything.
    const scan = (pattern: string) =>
      redis.cli('-n', '5', '--scan', '--pattern', `${KEY_PREFIX}${pattern}`).split('\n');
    const keys = scan('S:*');
    assert.equal(keys.length, 1);
    assert.ok(!keys[0]?.includes(httpKey));
    assert.ok(Number(redis.cli('-n', '5', 'PTTL', keys[0] as string)) > 0);
    // The client's idempotency records (one per write above) expire too.
    const records = scan('i:*');
    assert.ok(records.length >= 10, `${records.length} idempotency records`);
    for (const record of records) {
      assert.ok(Number(redis.cli('-n', '5', 'PTTL', record)) > 0, 'a record without a TTL');
    }
    assert.equal(redis.cli('ACL', 'LOG'), '');
    assert.equal(redis.cli('CONFIG', 'GET', 'appendonly').split('\n')[1], 'yes');
  });

  it('podman stop (SIGTERM) drains the calls in flight, refuses new ones and exits 0', async () => {
    const keys: string[] = [];
    for (let i = 0; i < 5; i++) keys.push((await sessions.setSession({})).sessionKey);
    const client = rawClient(`127.0.0.1:${grpcPort}`);
    try {
      redis.process.kill('SIGSTOP');
      const inFlight = Array.from({ length: IN_FLIGHT }, (_, i) =>
        (i % 2 === 0
          ? client.call('SetSession', { ttl_seconds: 60 }, { deadlineMs: 15_000 })
          : client.call(
              'GetSession',
              { session_key: keys[i % keys.length] },
              { deadlineMs: 15_000 },
            )
        ).then(
          () => status.OK,
          (error: { code: number }) => error.code,
        ),
      );
      // Let the calls reach the server (on loopback, well within this). A call
      // still unsent at SIGTERM would be refused with UNAVAILABLE and fail the
      // test, never pass it wrongly.
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const signalledAt = Date.now();
      const stopped = podman('stop', '--time', '20', container);
      await waitFor('the shutdown log line', async () =>
        (await podman('logs', container)).includes('"msg":"shutting down"'),
      );
      const late = await client
        .call('GetSession', { session_key: keys[0] }, { deadlineMs: 3000 })
        .then(
          () => status.OK,
          (error: { code: number }) => error.code,
        );
      redis.process.kill('SIGCONT');
      const codes = await Promise.all(inFlight);
      await stopped;
      const stoppedAfterMs = Date.now() - signalledAt;
      const exitCode = await inspect(container, '{{.State.ExitCode}}');
      const logs = await podman('logs', container);
      console.log(
        `container figures: ${JSON.stringify({
          inFlight: IN_FLIGHT,
          finishedOk: codes.filter((code) => code === status.OK).length,
          lateCall: status[late],
          exitCode,
          stoppedAfterMs,
        })}`,
      );
      assert.deepEqual(
        codes.filter((code) => code !== status.OK).map((code) => status[code]),
        [],
        'every call in flight at SIGTERM finished OK',
      );
      assert.equal(late, status.UNAVAILABLE);
      assert.equal(exitCode, '0');
      assert.ok(stoppedAfterMs < 8000, `stopped ${stoppedAfterMs} ms after SIGTERM (grace 8 s)`);
      assert.match(logs, /"signal":"SIGTERM"/);
      assert.match(logs, /"msg":"stopped"/);
      for (const key of keys) assert.ok(!logs.includes(key), 'no session key in the logs');
    } finally {
      redis.process.kill('SIGCONT');
      client.close();
    }
  });
});
