import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect, type IncomingHttpHeaders } from 'node:http2';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Client, credentials, Metadata, status } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { rawClient } from '../support/grpc.ts';
import { PROTO_FILE, SERVICE_NAME } from '../support/proto.ts';
import { startServer, type TestServer } from '../support/server.ts';

// The lean transport against the gRPC over HTTP/2 protocol, seen from a raw
// HTTP/2 client (what exactly goes on the wire), from grpc-js, and where they
// are installed from Python grpcio and the Go loadgen.

const PATH = `/${SERVICE_NAME}`;
// The server runs in this process: a synchronous exec would stall it.
const run = promisify(execFile);
const sessions = protoLoader.loadSync(PROTO_FILE, {
  keepCase: true,
  longs: Number,
  bytes: Buffer,
  defaults: true,
});
const methods = sessions[SERVICE_NAME] as protoLoader.ServiceDefinition;
const encode = (method: string, message: object) =>
  (methods[method] as protoLoader.MethodDefinition<object, object>).requestSerialize(message);
const frame = (message: Buffer, flag = 0) => {
  const prefix = Buffer.alloc(5);
  prefix[0] = flag;
  prefix.writeUInt32BE(message.length, 1);
  return Buffer.concat([prefix, message]);
};

interface RawReply {
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders | undefined;
  data: Buffer;
  /** The status came in the response headers, with no data and no trailers. */
  trailersOnly: boolean;
}

/** One request through node:http2; `body` undefined leaves the request open. */
function raw(
  address: string,
  path: string,
  headers: Record<string, string>,
  body: Buffer | undefined,
): Promise<RawReply> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://${address}`);
    session.on('error', reject);
    const stream = session.request({
      ':method': 'POST',
      ':path': path,
      'content-type': 'application/grpc',
      te: 'trailers',
      ...headers,
    });
    let responseHeaders: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      responseHeaders = h;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('error', () => {});
    stream.on('close', () => {
      session.close();
      resolve({
        headers: responseHeaders,
        trailers,
        data: Buffer.concat(chunks),
        trailersOnly: trailers === undefined && chunks.length === 0,
      });
    });
    if (body) stream.end(body);
    else stream.write(Buffer.alloc(0));
  });
}

const statusOf = (reply: RawReply) =>
  Number((reply.trailersOnly ? reply.headers : reply.trailers)?.['grpc-status']);

describe('lean transport conformance', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer({ env: { GRPC_TRANSPORT: 'lean', SESSION_MAX_BYTES: '65536' } });
  });

  after(() => server.close());

  it('a unary call: 200, application/grpc, one message, grpc-status 0 in trailers', async () => {
    const reply = await raw(
      server.address,
      `${PATH}/SetSession`,
      {},
      frame(encode('SetSession', { fleet_list_request: Buffer.from('x') })),
    );
    assert.equal(reply.headers[':status'], 200);
    assert.match(String(reply.headers['content-type']), /^application\/grpc/);
    assert.equal(reply.trailers?.['grpc-status'], '0');
    assert.equal(reply.data[0], 0);
    assert.equal(reply.data.readUInt32BE(1), reply.data.length - 5);
  });

  it('an error is trailers-only, with a percent-encoded grpc-message that grpc-js decodes', async () => {
    const name = 'é'.repeat(129);
    const reply = await raw(
      server.address,
      `${PATH}/SetSession`,
      {},
      frame(encode('SetSession', { attributes: { [name]: Buffer.from('v') } })),
    );
    assert.ok(reply.trailersOnly);
    assert.equal(statusOf(reply), status.INVALID_ARGUMENT);
    assert.match(String(reply.headers['grpc-message']), /^attributes: .*%C3%A9%C3%A9/);
    const client = rawClient(server.address);
    await assert.rejects(
      client.call('SetSession', { attributes: { [name]: Buffer.from('v') } }),
      (error: { details: string }) => error.details.includes('é'.repeat(32)),
    );
    client.close();
  });

  it('unknown methods and services are UNIMPLEMENTED, trailers-only', async () => {
    for (const path of [`${PATH}/Nope`, '/no.such.Service/Call']) {
      const reply = await raw(server.address, path, {}, frame(Buffer.alloc(0)));
      assert.ok(reply.trailersOnly);
      assert.equal(statusOf(reply), status.UNIMPLEMENTED);
    }
  });

  it('grpc-timeout: a call still open at its deadline ends DEADLINE_EXCEEDED; a malformed one is INTERNAL', async () => {
    const started = Date.now();
    const reply = await raw(
      server.address,
      `${PATH}/GetSession`,
      { 'grpc-timeout': '100m' },
      undefined,
    );
    assert.equal(statusOf(reply), status.DEADLINE_EXCEEDED);
    assert.ok(Date.now() - started >= 90, 'not before the deadline');
    const bad = await raw(
      server.address,
      `${PATH}/GetSession`,
      { 'grpc-timeout': '1x' },
      frame(Buffer.alloc(0)),
    );
    assert.equal(statusOf(bad), status.INTERNAL);
  });

  it('a message over the limit is RESOURCE_EXHAUSTED from its prefix alone, before any of it is buffered', async () => {
    const prefix = Buffer.alloc(5);
    prefix.writeUInt32BE(100 * 1024 * 1024, 1);
    const session = connect(`http://${server.address}`);
    const stream = session.request({
      ':method': 'POST',
      ':path': `${PATH}/SetSession`,
      'content-type': 'application/grpc',
    });
    stream.write(prefix);
    const headers = await new Promise<IncomingHttpHeaders>((resolve) =>
      stream.once('response', resolve),
    );
    assert.equal(Number(headers['grpc-status']), status.RESOURCE_EXHAUSTED);
    stream.on('error', () => {});
    session.close();
  });

  it('gzip and deflate requests are accepted; an unknown encoding is UNIMPLEMENTED with grpc-accept-encoding', async () => {
    const client = new Client(server.address, credentials.createInsecure(), {
      'grpc.default_compression_algorithm': 2,
    });
    const set = methods.SetSession as protoLoader.MethodDefinition<object, { session_key: string }>;
    const reply = await new Promise<{ session_key: string }>((resolve, reject) =>
      client.makeUnaryRequest(
        set.path,
        set.requestSerialize,
        set.responseDeserialize,
        { fleet_list_request: Buffer.alloc(4096, 'a') },
        new Metadata(),
        (error, value) => (error || !value ? reject(error) : resolve(value)),
      ),
    );
    assert.match(reply.session_key, /^[A-Za-z0-9_-]{43}$/);
    client.close();

    const { deflateSync } = await import('node:zlib');
    const deflated = await raw(
      server.address,
      `${PATH}/GetSession`,
      { 'grpc-encoding': 'deflate' },
      frame(deflateSync(encode('GetSession', { session_key: 'absent' })), 1),
    );
    assert.equal(statusOf(deflated), status.NOT_FOUND);

    const snappy = await raw(
      server.address,
      `${PATH}/GetSession`,
      { 'grpc-encoding': 'snappy' },
      frame(Buffer.alloc(0), 1),
    );
    assert.equal(statusOf(snappy), status.UNIMPLEMENTED);
    assert.match(String(snappy.headers['grpc-accept-encoding']), /gzip/);

    const unflagged = await raw(
      server.address,
      `${PATH}/GetSession`,
      {},
      frame(Buffer.alloc(3), 1),
    );
    assert.equal(statusOf(unflagged), status.INTERNAL);
  });

  it('a malformed message is INVALID_ARGUMENT, and the server stays up', async () => {
    const reply = await raw(
      server.address,
      `${PATH}/GetSession`,
      {},
      frame(Buffer.from([0x0a, 50, 1])),
    );
    assert.equal(statusOf(reply), status.INVALID_ARGUMENT);
    const none = await raw(server.address, `${PATH}/GetSession`, {}, Buffer.alloc(0));
    assert.equal(statusOf(none), status.INTERNAL);
    const client = rawClient(server.address);
    assert.equal(await client.health(), 'SERVING');
    client.close();
  });

  it('a request that is not gRPC gets HTTP 415', async () => {
    const reply = await raw(
      server.address,
      `${PATH}/GetSession`,
      { 'content-type': 'text/plain' },
      Buffer.alloc(0),
    );
    assert.equal(reply.headers[':status'], 415);
  });

  it('health Watch streams the status and ends when the server stops', async () => {
    const local = await startServer({ env: { GRPC_TRANSPORT: 'lean' } });
    const health = protoLoader.loadSync(
      join(
        import.meta.dirname,
        '../../node_modules/grpc-health-check/proto/health/v1/health.proto',
      ),
      { keepCase: true, enums: String, defaults: true },
    );
    const watch = (health['grpc.health.v1.Health'] as protoLoader.ServiceDefinition)
      .Watch as protoLoader.MethodDefinition<object, { status: string }>;
    const client = new Client(local.address, credentials.createInsecure());
    const stream = client.makeServerStreamRequest(
      watch.path,
      watch.requestSerialize,
      watch.responseDeserialize,
      { service: '' },
    );
    const seen: string[] = [];
    const ended = new Promise<number>((resolve) => {
      stream.on('data', (message: { status: string }) => seen.push(message.status));
      stream.on('error', (error: { code: number }) => resolve(error.code));
      stream.on('end', () => resolve(status.OK));
    });
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 10));
    assert.equal(seen[0], 'SERVING');
    await local.close();
    assert.equal(await ended, status.UNAVAILABLE);
    assert.equal(seen.at(-1), 'NOT_SERVING');
    client.close();
  });

  const python = '/usr/bin/python3';
  const hasGrpcio =
    existsSync(python) &&
    spawnSync(python, ['-c', 'import grpc'], { stdio: 'ignore' }).status === 0;
  it('Python grpcio: calls, errors, gzip and health', {
    skip: !hasGrpcio && 'python3-grpcio is not installed (apt-get install python3-grpcio)',
  }, async () => {
    const script = join(import.meta.dirname, '../support/grpcio-client.py');
    const { stdout: out } = await run(python, [script, server.address], { timeout: 30_000 });
    assert.match(out, /^ok$/m, out);
  });

  // grpc-go's side is also covered in CI by the Go client's own tests (clients/go).
  const loadgen = join(process.env.GO_REFERENCE ?? '', 'bin/loadgen');
  it('Go loadgen (grpc-go): set, get and mixed with no errors', {
    skip:
      !(process.env.GO_REFERENCE && existsSync(loadgen)) &&
      'GO_REFERENCE names no built Go reference (see bench/README.md)',
  }, async () => {
    for (const op of ['set', 'get', 'mixed']) {
      const { stdout: out } = await run(
        loadgen,
        [
          '-addr',
          server.address,
          '-op',
          op,
          '-c',
          '4',
          '-d',
          '1s',
          '-warmup',
          '0s',
          '-keys',
          '20',
          '-payload',
          '512',
        ],
        { timeout: 30_000 },
      );
      const result = JSON.parse(out) as { ok: number; errors: number };
      assert.ok(result.ok > 0, out);
      assert.equal(result.errors, 0, out);
    }
  });
});
