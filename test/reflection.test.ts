import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Client, credentials, status } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { rawClient } from './support/grpc.ts';
import { REFLECTION_PROTO_FILE } from './support/proto.ts';
import { startServer, type TestServer } from './support/server.ts';

const reflection = protoLoader.loadSync(REFLECTION_PROTO_FILE, { keepCase: true, defaults: true });

interface ListServicesReply {
  list_services_response?: { service: Array<{ name: string }> };
}

describe('generic tools can find the API', () => {
  let server: TestServer;

  before(async () => {
    server = await startServer();
  });

  after(() => server.close());

  it('server reflection lists the session service and health', async () => {
    const info = (
      reflection['grpc.reflection.v1.ServerReflection'] as protoLoader.ServiceDefinition
    ).ServerReflectionInfo;
    assert.ok(info);
    const client = new Client(server.address, credentials.createInsecure());
    try {
      const stream = client.makeBidiStreamRequest(
        info.path,
        info.requestSerialize,
        info.responseDeserialize,
      );
      const reply = new Promise<string[]>((resolve, reject) => {
        stream.once('data', (message: ListServicesReply) =>
          resolve(message.list_services_response?.service.map((s) => s.name) ?? []),
        );
        stream.once('error', reject);
      });
      stream.write({ list_services: '' });
      const names = await reply;
      stream.end();
      assert.ok(names.includes('sessionmanager.v1.SessionManagerService'), names.join(','));
    } finally {
      client.close();
    }
  });

  it('an unknown method is UNIMPLEMENTED', async () => {
    const client = new Client(server.address, credentials.createInsecure());
    try {
      await assert.rejects(
        new Promise((resolve, reject) =>
          client.makeUnaryRequest(
            '/sessionmanager.v1.SessionManagerService/NoSuchMethod',
            (value: Buffer) => value,
            (value: Buffer) => value,
            Buffer.alloc(0),
            (error, value) => (error ? reject(error) : resolve(value)),
          ),
        ),
        { code: status.UNIMPLEMENTED },
      );
      const raw = rawClient(server.address);
      assert.equal(await raw.health(), 'SERVING');
      raw.close();
    } finally {
      client.close();
    }
  });
});
