import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { credentials, status } from '@grpc/grpc-js';
import { createClient, SessionError } from '@sessionmanager/client';
import { ConfigError, loadConfig } from '../../src/config.ts';
import { makePki, type Pair, type TestPki } from '../support/certs.ts';
import { rawClient } from '../support/grpc.ts';
import { startServer, type TestServer } from '../support/server.ts';

let pki: TestPki;
before(() => {
  pki = makePki();
});
after(() => pki.dispose());

/** A call that must fail before it reaches the service: the connection is refused. */
async function refused(call: Promise<unknown>): Promise<void> {
  await assert.rejects(call, (error: { code: number; details: string }) => {
    assert.equal(error.code, status.UNAVAILABLE, `status ${error.code}: ${error.details}`);
    return true;
  });
}

interface HttpsReply {
  status: number;
  body: string;
}

function https(
  url: string,
  options: { ca?: Buffer; client?: Pair; method?: string; body?: string } = {},
): Promise<HttpsReply> {
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      url,
      {
        method: options.method ?? 'GET',
        agent: false,
        ...(options.ca && { ca: options.ca }),
        ...(options.client && { cert: options.client.cert, key: options.client.key }),
        headers: { 'content-type': 'application/json' },
      },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => {
          body += chunk.toString();
        });
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on('error', reject);
    request.end(options.body);
  });
}

describe('TLS configuration', () => {
  it('TLS_CERT_FILE and TLS_KEY_FILE go together; TLS_CLIENT_CA_FILE needs both', () => {
    const config = loadConfig({
      TLS_CERT_FILE: pki.server.certFile,
      TLS_KEY_FILE: pki.server.keyFile,
      TLS_CLIENT_CA_FILE: pki.ca.certFile,
    });
    assert.deepEqual(config.tls?.cert, pki.server.cert);
    assert.deepEqual(config.tls?.clientCa, pki.ca.cert);
    assert.equal(loadConfig({}).tls, undefined);
    assert.throws(
      () => loadConfig({ TLS_CERT_FILE: pki.server.certFile }),
      /TLS_CERT_FILE is set without TLS_KEY_FILE: set both/,
    );
    assert.throws(
      () => loadConfig({ TLS_KEY_FILE: pki.server.keyFile }),
      /TLS_KEY_FILE is set without TLS_CERT_FILE: set both/,
    );
    assert.throws(
      () => loadConfig({ TLS_CLIENT_CA_FILE: pki.ca.certFile }),
      /TLS_CLIENT_CA_FILE is set without TLS_CERT_FILE and TLS_KEY_FILE/,
    );
  });

  it('an unreadable file or a key that does not match the certificate stops the start, naming the variables', () => {
    assert.throws(
      () => loadConfig({ TLS_CERT_FILE: '/nonexistent.pem', TLS_KEY_FILE: pki.server.keyFile }),
      /TLS_CERT_FILE="\/nonexistent.pem": cannot read it \(ENOENT\)/,
    );
    assert.throws(
      () => loadConfig({ TLS_CERT_FILE: pki.server.certFile, TLS_KEY_FILE: pki.client.keyFile }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigError);
        assert.match(error.message, /TLS_CERT_FILE, TLS_KEY_FILE: not a usable PEM certificate/);
        assert.ok(!error.message.includes('PRIVATE KEY'), 'no key material in the message');
        return true;
      },
    );
  });
});

for (const transport of ['lean', 'grpc-js'] as const) {
  describe(`TLS on the gRPC port, ${transport} transport`, () => {
    let server: TestServer;

    before(async () => {
      server = await startServer({
        env: {
          GRPC_TRANSPORT: transport,
          TLS_CERT_FILE: pki.server.certFile,
          TLS_KEY_FILE: pki.server.keyFile,
        },
      });
    });
    after(() => server.close());

    it('a client that trusts the CA calls and checks health over TLS', async () => {
      const client = rawClient(server.address, credentials.createSsl(pki.ca.cert));
      try {
        const set = await client.call('SetSession', { session_key: `tls-${transport}` });
        assert.equal(set.version, 1);
        assert.equal(await client.health(), 'SERVING');
      } finally {
        client.close();
      }
    });

    it('a plaintext client is refused', async () => {
      const client = rawClient(server.address);
      try {
        await refused(client.call('GetSession', { session_key: 'x' }, { deadlineMs: 3000 }));
      } finally {
        client.close();
      }
    });

    it('a client that does not trust the server certificate refuses it', async () => {
      const client = rawClient(server.address, credentials.createSsl(pki.stranger.cert));
      try {
        await refused(client.call('GetSession', { session_key: 'x' }, { deadlineMs: 3000 }));
      } finally {
        client.close();
      }
    });

    it('the TypeScript client works with credentials: { tls: { ca } }', async () => {
      const client = createClient({
        address: server.address,
        credentials: { tls: { ca: pki.ca.cert } },
        deadlineMs: 3000,
      });
      try {
        const { sessionKey } = await client.setSession({ fleetListRequest: { pickup: 'A' } });
        const session = await client.getSession({ sessionKey });
        assert.deepEqual(session?.fleetListRequest, { pickup: 'A' });
      } finally {
        client.close();
      }
    });
  });

  describe(`mutual TLS on the gRPC port, ${transport} transport`, () => {
    let server: TestServer;

    before(async () => {
      server = await startServer({
        env: {
          GRPC_TRANSPORT: transport,
          TLS_CERT_FILE: pki.server.certFile,
          TLS_KEY_FILE: pki.server.keyFile,
          TLS_CLIENT_CA_FILE: pki.ca.certFile,
        },
      });
    });
    after(() => server.close());

    it('a client without a certificate is refused', async () => {
      const client = rawClient(server.address, credentials.createSsl(pki.ca.cert));
      try {
        await refused(client.call('GetSession', { session_key: 'x' }, { deadlineMs: 3000 }));
        await refused(client.health().then(() => undefined));
      } finally {
        client.close();
      }
    });

    it('a client whose certificate another CA signed is refused', async () => {
      const client = rawClient(
        server.address,
        credentials.createSsl(pki.ca.cert, pki.stranger.key, pki.stranger.cert),
      );
      try {
        await refused(client.call('GetSession', { session_key: 'x' }, { deadlineMs: 3000 }));
      } finally {
        client.close();
      }
    });

    it('a plaintext client is refused', async () => {
      const client = rawClient(server.address);
      try {
        await refused(client.call('GetSession', { session_key: 'x' }, { deadlineMs: 3000 }));
      } finally {
        client.close();
      }
    });

    it('a client with a certificate the CA signed is served', async () => {
      const client = rawClient(
        server.address,
        credentials.createSsl(pki.ca.cert, pki.client.key, pki.client.cert),
      );
      try {
        const set = await client.call('SetSession', { session_key: `mtls-${transport}` });
        assert.equal(set.version, 1);
        assert.equal(await client.health(), 'SERVING');
      } finally {
        client.close();
      }
    });

    it('the TypeScript client works with credentials: { tls: { ca, cert, key } } and fails without cert', async () => {
      const good = createClient({
        address: server.address,
        credentials: { tls: { ca: pki.ca.cert, cert: pki.client.cert, key: pki.client.key } },
        deadlineMs: 3000,
      });
      const anonymous = createClient({
        address: server.address,
        credentials: { tls: { ca: pki.ca.cert } },
        deadlineMs: 2000,
        retries: false,
      });
      try {
        const { sessionKey } = await good.setSession({ attributes: { a: 1 } });
        assert.deepEqual((await good.getSession({ sessionKey }))?.attributes, { a: 1 });
        await assert.rejects(anonymous.getSession({ sessionKey }), (error: unknown) => {
          assert.ok(error instanceof SessionError);
          assert.equal(error.code, 'UNAVAILABLE');
          return true;
        });
      } finally {
        good.close();
        anonymous.close();
      }
    });
  });
}

describe('TLS and mutual TLS on the HTTP port', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({
      env: {
        TLS_CERT_FILE: pki.server.certFile,
        TLS_KEY_FILE: pki.server.keyFile,
        TLS_CLIENT_CA_FILE: pki.ca.certFile,
      },
    });
  });
  after(() => server.close());

  it('serves HTTPS; probes, /metrics and /openapi.json need no client certificate', async () => {
    assert.match(server.httpUrl, /^https:/);
    for (const path of ['/healthz', '/readyz', '/metrics', '/openapi.json']) {
      const reply = await https(`${server.httpUrl}${path}`, { ca: pki.ca.cert });
      assert.equal(reply.status, 200, path);
    }
  });

  it('the session API needs a certificate the CA signed: 401 without one or with a stranger', async () => {
    for (const client of [undefined, pki.stranger]) {
      const reply = await https(`${server.httpUrl}/v1/sessions/k`, {
        ca: pki.ca.cert,
        ...(client && { client }),
      });
      assert.equal(reply.status, 401);
      assert.deepEqual(JSON.parse(reply.body), {
        code: 'UNAUTHENTICATED',
        message:
          'client certificate: required (mutual TLS); present one signed by TLS_CLIENT_CA_FILE',
      });
    }
    const created = await https(`${server.httpUrl}/v1/sessions`, {
      ca: pki.ca.cert,
      client: pki.client,
      method: 'POST',
      body: JSON.stringify({ sessionKey: 'https-1' }),
    });
    assert.equal(created.status, 200, created.body);
    const read = await https(`${server.httpUrl}/v1/sessions/https-1`, {
      ca: pki.ca.cert,
      client: pki.client,
    });
    assert.equal(read.status, 200);
    assert.equal(JSON.parse(read.body).version, '1');
  });

  it('plain HTTP to the HTTPS port gets no answer', async () => {
    const url = server.httpUrl.replace('https:', 'http:');
    const outcome = await new Promise<string>((resolve) => {
      const request = httpRequest(`${url}/healthz`, { agent: false }, (response) =>
        resolve(`status ${response.statusCode}`),
      );
      request.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
      request.end();
    });
    assert.doesNotMatch(outcome, /^status 200/);
  });
});
