import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { makePki, requireOpenssl, type TestPki } from '../support/certs.ts';
import { rawClient, rejectsWithStatus } from '../support/grpc.ts';
import { freePort, waitFor } from '../support/ports.ts';
import { type ServiceProcess, spawnService } from '../support/process.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';

// REDIS_TLS against a real redis-server speaking TLS: the service's own
// standalone link verifies Redis's certificate like any TLS client (here a CA
// made for the test, trusted through NODE_EXTRA_CA_CERTS) and refuses a
// server it cannot verify.

describe('Redis over TLS (REDIS_TLS=true)', () => {
  let pki: TestPki;
  let redis: TestRedis;
  let tlsPort: number;
  const services: ServiceProcess[] = [];

  const service = async (trusted: boolean) => {
    const port = await freePort();
    const spawned = await spawnService({
      PORT: String(port),
      REDIS_HOST: '127.0.0.1',
      REDIS_PORT: String(tlsPort),
      REDIS_TLS: 'true',
      LOG_LEVEL: 'info',
      ...(trusted && { NODE_EXTRA_CA_CERTS: pki.ca.certFile }),
    });
    services.push(spawned);
    return { spawned, client: rawClient(`127.0.0.1:${port}`) };
  };

  before(async () => {
    requireOpenssl();
    pki = makePki();
    tlsPort = await freePort();
    redis = await startRedis([
      '--tls-port',
      String(tlsPort),
      '--tls-cert-file',
      pki.server.certFile,
      '--tls-key-file',
      pki.server.keyFile,
      '--tls-ca-cert-file',
      pki.ca.certFile,
      '--tls-auth-clients',
      'no',
    ]);
  });

  after(async () => {
    for (const spawned of services) spawned.child.kill('SIGKILL');
    await redis.dispose();
    pki.dispose();
  });

  it('stores and reads sessions through TLS when Redis’s certificate verifies', async () => {
    const { client } = await service(true);
    await waitFor('SERVING', async () => (await client.health()) === 'SERVING', 10_000);
    const { session_key } = await client.call('SetSession', {
      fleet_list_request: Buffer.from('over tls'),
    });
    const got = await client.call('GetSession', { session_key });
    assert.deepEqual(got.fleet_list_request, Buffer.from('over tls'));
    assert.equal(redis.cli('-n', '5', 'DBSIZE'), '1', 'the session is in database 5');
    client.close();
  });

  it('refuses a Redis whose certificate it cannot verify: UNAVAILABLE, and says why', async () => {
    const { spawned, client } = await service(false);
    await rejectsWithStatus(
      client.call('GetSession', { session_key: 'k' }),
      status.UNAVAILABLE,
      /Redis/,
    );
    const refused = () =>
      spawned.logs.some(
        (line) =>
          line.msg === 'redis unreachable; calls fail with UNAVAILABLE until it returns' &&
          /certificate/i.test(JSON.stringify(line.err)),
      );
    const deadline = Date.now() + 5000;
    while (!refused() && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    assert.ok(
      refused(),
      `a log line names the certificate problem: ${JSON.stringify(spawned.logs)}`,
    );
    client.close();
  });
});
