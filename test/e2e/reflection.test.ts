import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { Client, credentials, status } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { DESCRIPTOR_SET_FILE, Reflection } from '../../src/transport/reflection.ts';
import { rawClient } from '../support/grpc.ts';
import { REFLECTION_PROTO_FILE } from '../support/proto.ts';
import { startServer, type TestServer } from '../support/server.ts';

// The server runs in this process: a synchronous exec would stall it.
const run = promisify(execFile);
const reflection = protoLoader.loadSync(REFLECTION_PROTO_FILE, { keepCase: true, defaults: true });
const python = '/usr/bin/python3';
const pythonReady =
  existsSync(python) &&
  spawnSync(python, ['-c', 'import grpc, google.protobuf'], { stdio: 'ignore' }).status === 0;

interface ListServicesReply {
  list_services_response?: { service: Array<{ name: string }> };
}

interface ReflectionReply {
  valid_host?: string;
  original_request?: { file_containing_symbol?: string };
  file_descriptor_response?: { file_descriptor_proto: Buffer[] };
  all_extension_numbers_response?: { base_type_name: string; extension_number: number[] };
  error_response?: { error_code: number; error_message: string };
}

describe('the served descriptors are the compiled .proto files', () => {
  it('proto/descriptor-set.binpb is what `npm run proto` (buf) builds from proto/ now', () => {
    const dir = mkdtempSync(join(tmpdir(), 'descriptors-'));
    try {
      const fresh = join(dir, 'set.binpb');
      const buf = join(import.meta.dirname, '../../node_modules/.bin/buf');
      const built = spawnSync(buf, ['build', 'proto', '--as-file-descriptor-set', '-o', fresh], {
        cwd: join(import.meta.dirname, '../..'),
        encoding: 'utf8',
      });
      assert.equal(built.status, 0, built.stderr);
      assert.ok(
        readFileSync(fresh).equals(readFileSync(DESCRIPTOR_SET_FILE)),
        'proto/descriptor-set.binpb is stale: run `npm run proto` and commit it',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('reflection answers each kind of request', () => {
  const info = (reflection['grpc.reflection.v1.ServerReflection'] as protoLoader.ServiceDefinition)
    .ServerReflectionInfo as protoLoader.MethodDefinition<object, ReflectionReply>;
  const service = new Reflection();
  const ask = (request: object) =>
    info.responseDeserialize(service.answer(info.requestSerialize(request)));
  const fileNames = (reply: ReflectionReply) =>
    (reply.file_descriptor_response?.file_descriptor_proto ?? []).map((bytes) => {
      // FileDescriptorProto field 1 (name): a one-byte tag and a one-byte length here.
      assert.equal(bytes[0], 0x0a);
      return bytes.subarray(2, 2 + (bytes[1] ?? 0)).toString();
    });

  it('finds the file of every kind of symbol, echoing the request and the host', () => {
    const symbols: Array<[string, string]> = [
      ['sessionmanager.v1.SessionManagerService', 'sessionmanager/v1/sessionmanager.proto'],
      [
        'sessionmanager.v1.SessionManagerService.RotateSessionKey',
        'sessionmanager/v1/sessionmanager.proto',
      ],
      [
        'sessionmanager.v1.UpdateSessionRequest.expected_version',
        'sessionmanager/v1/sessionmanager.proto',
      ],
      ['sessionmanager.v1.SessionData.AttributesEntry', 'sessionmanager/v1/sessionmanager.proto'],
      ['.grpc.health.v1.HealthCheckResponse.ServingStatus', 'grpc/health/v1/health.proto'],
      ['grpc.health.v1.HealthCheckResponse.SERVING', 'grpc/health/v1/health.proto'],
      ['grpc.reflection.v1alpha.ServerReflection', 'grpc/reflection/v1alpha/reflection.proto'],
    ];
    for (const [symbol, file] of symbols) {
      const reply = ask({ host: 'h', file_containing_symbol: symbol });
      assert.deepEqual(fileNames(reply), [file], symbol);
      assert.equal(reply.valid_host, 'h');
      assert.equal(reply.original_request?.file_containing_symbol, symbol);
    }
    assert.deepEqual(fileNames(ask({ file_by_filename: 'grpc/health/v1/health.proto' })), [
      'grpc/health/v1/health.proto',
    ]);
  });

  it('says NOT_FOUND for what it does not have, and no extensions for a message', () => {
    for (const request of [
      { file_containing_symbol: 'sessionmanager.v1.Nope' },
      { file_by_filename: 'nope.proto' },
      {
        file_containing_extension: {
          containing_type: 'sessionmanager.v1.SessionData',
          extension_number: 100,
        },
      },
      { all_extension_numbers_of_type: 'sessionmanager.v1.Nope' },
    ]) {
      assert.equal(
        ask(request).error_response?.error_code,
        status.NOT_FOUND,
        JSON.stringify(request),
      );
    }
    const numbers = ask({ all_extension_numbers_of_type: 'sessionmanager.v1.SessionData' });
    assert.equal(
      numbers.all_extension_numbers_response?.base_type_name,
      'sessionmanager.v1.SessionData',
    );
    assert.deepEqual(numbers.all_extension_numbers_response?.extension_number, []);
  });
});

for (const transport of ['lean', 'grpc-js'] as const) {
  describe(`generic tools can find and use the API (${transport} transport)`, () => {
    let server: TestServer;

    before(async () => {
      server = await startServer({ env: { GRPC_TRANSPORT: transport } });
    });

    after(() => server.close());

    it('server reflection lists the session service, health and reflection', async () => {
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
        assert.deepEqual(names.sort(), [
          'grpc.health.v1.Health',
          'grpc.reflection.v1.ServerReflection',
          'grpc.reflection.v1alpha.ServerReflection',
          'sessionmanager.v1.SessionManagerService',
        ]);
      } finally {
        client.close();
      }
    });

    it('a Python descriptor pool builds the whole API from reflection alone and calls every method', {
      skip:
        !pythonReady &&
        'python3-grpcio or python3-protobuf is not installed (apt-get install python3-grpcio python3-protobuf)',
    }, async () => {
      const script = join(import.meta.dirname, '../support/reflection-client.py');
      const { stdout } = await run(python, [script, server.address], { timeout: 60_000 });
      assert.match(stdout, /descriptors: map entries, proto3 optional and type names are valid/);
      assert.match(
        stdout,
        /SessionManagerService: called SetSession, GetSession, UpdateSession, TouchSession, ConsumeSession, DeleteSession, RotateSessionKey, ListSessions, RevokeSessions/,
      );
      assert.match(stdout, /grpc\.health\.v1\.Health: called Check, Watch/);
      assert.match(stdout, /\nok\n$/);
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
}
