// A tiny in-process gRPC server that answers every call with whatever the test
// scripts, and records what it received. It tests the client, not the service.

import { fileURLToPath } from 'node:url';
import {
  type Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type StatusObject,
  type sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { loadSync, type ServiceDefinition } from '@grpc/proto-loader';

/** The package's own copy of the contract. */
export const protoPath = fileURLToPath(
  new URL('../proto/sessionmanager/v1/sessionmanager.proto', import.meta.url),
);

export type MethodName =
  | 'SetSession'
  | 'GetSession'
  | 'UpdateSession'
  | 'TouchSession'
  | 'ConsumeSession'
  | 'DeleteSession'
  | 'RotateSessionKey'
  | 'ListSessions'
  | 'RevokeSessions';

/** Returns the response, throws a `StatusError` to fail, or never settles to hang. */
export type Handler = (request: Record<string, unknown>, attempt: number) => unknown;

export interface RecordedCall {
  method: MethodName;
  request: Record<string, unknown>;
  metadata: Metadata;
  cancelled: () => boolean;
}

export interface ScriptedServer {
  port: number;
  address: string;
  calls: RecordedCall[];
  callsTo(method: MethodName): RecordedCall[];
  close(): void;
}

export class StatusError extends Error {
  readonly code: status;
  readonly details: string;

  constructor(code: status, details: string) {
    super(details);
    this.code = code;
    this.details = details;
  }
}

const service = loadSync(protoPath, { keepCase: true, longs: Number, defaults: true })[
  'sessionmanager.v1.SessionManagerService'
] as ServiceDefinition;

export async function startScriptedServer(
  handlers: Partial<Record<MethodName, Handler>>,
  port = 0,
): Promise<ScriptedServer> {
  const calls: RecordedCall[] = [];
  const server = new Server();
  const implementation = Object.fromEntries(
    Object.keys(service).map((name) => [
      name,
      (
        call: ServerUnaryCall<Record<string, unknown>, unknown>,
        callback: sendUnaryData<unknown>,
      ) => {
        const method = name as MethodName;
        calls.push({
          method,
          request: call.request,
          metadata: call.metadata,
          cancelled: () => call.cancelled,
        });
        const attempt = calls.filter((recorded) => recorded.method === method).length;
        const handler = handlers[method] ?? unscripted(method);
        Promise.resolve()
          .then(() => handler(call.request, attempt))
          .then(
            (response) => callback(null, response),
            (error: unknown) => callback(toStatus(error)),
          );
      },
    ]),
  );
  server.addService(service, implementation);
  const bound = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (error, actual) =>
      error ? reject(error) : resolve(actual),
    );
  });
  return {
    port: bound,
    address: `127.0.0.1:${bound}`,
    calls,
    callsTo: (method) => calls.filter((recorded) => recorded.method === method),
    close: () => server.forceShutdown(),
  };
}

function toStatus(error: unknown): Partial<StatusObject> {
  if (error instanceof StatusError) {
    return { code: error.code, details: error.details };
  }
  return { code: status.UNKNOWN, details: String(error) };
}

function unscripted(method: MethodName): Handler {
  return () => {
    throw new StatusError(status.UNIMPLEMENTED, `${method} is not scripted`);
  };
}

/** A promise that never settles: the server does not answer. */
export function hang(): Promise<never> {
  return new Promise(() => {});
}
