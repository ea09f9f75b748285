import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import {
  type ChannelCredentials,
  Client,
  credentials,
  Metadata,
  type ServiceError,
  type status,
} from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_FILE } from './proto.ts';

const require = createRequire(import.meta.url);
const OPTIONS = {
  keepCase: true,
  longs: Number,
  enums: String,
  bytes: Buffer,
  defaults: true,
} as const;
const sessions = protoLoader.loadSync(PROTO_FILE, OPTIONS);
const health = protoLoader.loadSync(
  require.resolve('grpc-health-check/proto/health/v1/health.proto'),
  OPTIONS,
);

// biome-ignore lint/suspicious/noExplicitAny: responses are checked field by field in the tests
export type Message = Record<string, any>;

export interface CallOptions {
  deadlineMs?: number;
  /** Request metadata to send. */
  metadata?: Record<string, string>;
  /** Receives the response's initial metadata. */
  onMetadata?: (metadata: Metadata) => void;
}

export interface RawClient {
  call(method: string, request: object, options?: CallOptions): Promise<Message>;
  health(service?: string): Promise<string>;
  close(): void;
}

/**
 * A plain grpc-js client built from the .proto at run time, as any team would
 * build one: the end-to-end tests call the server through it.
 */
export function rawClient(
  address: string,
  channelCredentials: ChannelCredentials = credentials.createInsecure(),
): RawClient {
  const client = new Client(address, channelCredentials);
  const invoke = (
    definition: protoLoader.PackageDefinition,
    service: string,
    method: string,
    request: object,
    options: CallOptions = {},
  ) => {
    const rpc = (definition[service] as protoLoader.ServiceDefinition)[method];
    if (!rpc) throw new Error(`no method ${service}/${method}`);
    const metadata = new Metadata();
    for (const [name, value] of Object.entries(options.metadata ?? {})) metadata.set(name, value);
    return new Promise<Message>((resolve, reject) => {
      const call = client.makeUnaryRequest(
        rpc.path,
        rpc.requestSerialize,
        rpc.responseDeserialize as (bytes: Buffer) => Message,
        request,
        metadata,
        { deadline: Date.now() + (options.deadlineMs ?? 5000) },
        (error: ServiceError | null, response?: Message) =>
          error ? reject(error) : resolve(response ?? {}),
      );
      if (options.onMetadata) call.on('metadata', options.onMetadata);
    });
  };
  return {
    call: (method, request, options) =>
      invoke(sessions, 'sessionmanager.v1.SessionManagerService', method, request, options),
    health: async (service = '') =>
      String((await invoke(health, 'grpc.health.v1.Health', 'Check', { service })).status),
    close: () => client.close(),
  };
}

/** Every store paired with every gRPC transport: both transports stay selectable, so both must pass. */
export const STORE_TRANSPORT_MATRIX = [
  ['memory', 'lean'],
  ['redis', 'lean'],
  ['memory', 'grpc-js'],
  ['redis', 'grpc-js'],
] as const;

/** Asserts the call fails with this status and a message matching `message`. */
export async function rejectsWithStatus(
  promise: Promise<unknown>,
  code: status,
  message: RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: { code: number; details: string }) => {
    assert.equal(error.code, code, `status ${error.code}: ${error.details}`);
    assert.match(error.details, message);
    return true;
  });
}
