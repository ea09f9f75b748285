// The lean client (the package's default transport) against every gRPC server
// implementation we can run: the service on its own HTTP/2 layer, the service
// on grpc-js (GRPC_TRANSPORT=grpc-js), a Python grpcio server built from the
// same proto (test/support/grpcio-server.py), and the Go reference server
// (grpc-go) when GO_REFERENCE names a built one. The grpc-js transport runs
// the same checks, so a difference between the two transports shows.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createClient, type SessionClient, SessionError } from '../../client/src/index.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const GO_SERVER = join(process.env.GO_REFERENCE ?? '', 'bin/sessionmanager');
const hasGo = Boolean(process.env.GO_REFERENCE) && existsSync(GO_SERVER);

interface Target {
  address: string;
  /** The Go reference implements SetSession, GetSession and DeleteSession only. */
  full: boolean;
  /** It answers failures with an x-request-id. */
  requestIds: boolean;
  close(): Promise<void> | void;
}

type Sessions = SessionClient<{ from: string }, { cars: string[] }, string>;

function spawnOwned(command: string, args: string[], env: Record<string, string>): ChildProcess {
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  process.once('exit', () => child.kill('SIGKILL'));
  return child;
}

async function pythonServer(): Promise<Target> {
  const child = spawnOwned(
    '/usr/bin/python3',
    [join(ROOT, 'test/support/grpcio-server.py'), join(ROOT, 'proto/descriptor-set.binpb')],
    {},
  );
  const port = await new Promise<number>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`grpcio-server.py exited with ${code}`)));
    child.stdout?.once('data', (line: Buffer) => resolve(Number(line.toString().trim())));
  });
  return {
    address: `127.0.0.1:${port}`,
    full: true,
    requestIds: true,
    close: () => {
      child.stdin?.end();
      child.kill();
    },
  };
}

async function goServer(redis: TestRedis): Promise<Target> {
  const port = await freePort();
  const child = spawnOwned(GO_SERVER, [], {
    GRPC_HOST: '127.0.0.1',
    GRPC_PORT: String(port),
    REDIS_HOST: '127.0.0.1',
    REDIS_PORT: String(redis.port),
    REDIS_DATABASE: '5',
  });
  const probe = createClient({ address: `127.0.0.1:${port}`, retries: false, deadlineMs: 500 });
  await waitFor('the Go reference to serve', async () => {
    try {
      await probe.deleteSession({ sessionKey: 'probe' });
      return true;
    } catch {
      return false;
    }
  });
  probe.close();
  return {
    address: `127.0.0.1:${port}`,
    full: false,
    requestIds: false,
    close: () => void child.kill(),
  };
}

function leanServer(env: Record<string, string>) {
  return async (): Promise<Target> => {
    const server: TestServer = await startServer({ env });
    return { address: server.address, full: true, requestIds: true, close: () => server.close() };
  };
}

const servers: Array<[string, (redis: TestRedis) => Promise<Target>, string | false]> = [
  ['the service, lean HTTP/2', leanServer({}), false],
  ['the service, GRPC_TRANSPORT=grpc-js', leanServer({ GRPC_TRANSPORT: 'grpc-js' }), false],
  ['Python grpcio', pythonServer, false],
  ['the Go reference (grpc-go)', goServer, !hasGo && 'GO_REFERENCE names no built Go reference'],
];

let redis: TestRedis | undefined;
before(async () => {
  if (hasGo) redis = await startRedis();
});
after(async () => {
  await redis?.stop();
});

for (const [name, start, skip] of servers) {
  for (const transport of ['lean', 'grpc-js'] as const) {
    describe(`${transport} client against ${name}`, { skip }, () => {
      let target: Target;
      let client: Sessions;

      before(async () => {
        target = await start(redis as TestRedis);
        client = createClient({ address: target.address, transport, deadlineMs: 5000 });
      });
      after(async () => {
        client?.close();
        await target?.close();
      });

      test('sets, reads and deletes a session with its payloads and attributes', async () => {
        const big = 'x'.repeat(100_000);
        const { sessionKey, version } = await client.setSession({
          fleetListRequest: { from: 'Airport' },
          fleetListResponse: { cars: [big] },
          attributes: { seat: '12A' },
          ttlSeconds: 300,
        });
        assert.ok(sessionKey.length > 0);
        if (target.full) assert.ok(version >= 1);
        const read = await client.getSession({ sessionKey });
        assert.deepEqual(read?.fleetListRequest, { from: 'Airport' });
        assert.equal(read?.fleetListResponse?.cars[0]?.length, big.length);
        assert.deepEqual(read?.attributes, { seat: '12A' });
        const { deleted } = await client.deleteSession({ sessionKey });
        // The Go reference answers deleted: false whatever it removed.
        if (target.full) assert.equal(deleted, true);
        assert.equal(await client.getSession({ sessionKey }), null);
        assert.deepEqual(await client.deleteSession({ sessionKey }), { deleted: false });
      });

      test('many calls in flight on one connection all complete', async () => {
        const keys = await Promise.all(
          Array.from({ length: 200 }, (_, i) =>
            client.setSession({ fleetListRequest: { from: `p${i}` } }),
          ),
        );
        const read = await Promise.all(
          keys.map(({ sessionKey }) => client.getSession({ sessionKey })),
        );
        read.forEach((session, i) => {
          assert.equal(session?.fleetListRequest?.from, `p${i}`);
        });
      });

      test('update, touch, consume and rotate', { skip: false }, async (t) => {
        if (!target.full) {
          t.skip('the Go reference has no such RPC');
          return;
        }
        const { sessionKey, version } = await client.setSession({ attributes: { a: '1' } });
        const updated = await client.updateSession({
          sessionKey,
          setAttributes: { b: '2' },
          removeAttributes: ['a'],
          expectedVersion: version,
        });
        assert.deepEqual(updated.attributes, { b: '2' });
        await assert.rejects(
          client.updateSession({ sessionKey, setAttributes: { c: '3' }, expectedVersion: version }),
          (error: unknown) => {
            assert.ok(error instanceof SessionError);
            assert.equal(error.code, 'CONFLICT');
            if (target.requestIds) assert.ok(error.requestId, 'a request id from the trailers');
            return true;
          },
        );
        assert.ok((await client.touchSession({ sessionKey })).expiresAtUnixMs > 0);
        const rotated = await client.rotateSessionKey({ sessionKey });
        assert.notEqual(rotated.sessionKey, sessionKey);
        const consumed = await client.consumeSession({ sessionKey: rotated.sessionKey });
        assert.deepEqual(consumed?.attributes, { b: '2' });
        assert.equal(await client.consumeSession({ sessionKey: rotated.sessionKey }), null);
        await assert.rejects(client.touchSession({ sessionKey }), { code: 'NOT_FOUND' });
      });

      test('owners: set with an owner, list oldest first with and without content, revoke', async (t) => {
        if (!target.full) {
          t.skip('the Go reference has no such RPC');
          return;
        }
        const owner = `interop-${transport}`;
        const first = await client.setSession({ owner, fleetListRequest: { from: 'A' } });
        const second = await client.setSession({ owner, attributes: { seat: '1' } });
        const listed = await client.listSessions(owner);
        assert.equal(listed.length, 2);
        assert.equal(listed[0]?.expiresAtUnixMs, first.expiresAtUnixMs);
        assert.equal(listed[1]?.version, second.version);
        assert.notEqual(listed[0]?.handle, listed[1]?.handle);
        assert.ok(!listed.some((session) => session.handle === first.sessionKey), 'not keys');
        assert.equal(listed[0]?.attributes, undefined);
        const full = await client.listSessions(owner, { includeContent: true });
        assert.deepEqual(full[0]?.fleetListRequest, { from: 'A' });
        assert.deepEqual(full[1]?.attributes, { seat: '1' });
        assert.deepEqual(await client.revokeSessions(owner), { revoked: 2 });
        assert.equal(await client.getSession({ sessionKey: first.sessionKey }), null);
        assert.deepEqual(await client.listSessions(owner), []);
        await assert.rejects(client.listSessions(''), { code: 'INVALID_ARGUMENT' });
      });
    });
  }
}
