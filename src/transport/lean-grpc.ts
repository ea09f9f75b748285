import type { CallScope } from '../call-scope.ts';
import { IDEMPOTENCY_HEADER } from '../idempotency.ts';
import type { GrpcType } from '../metrics.ts';
import { givenRequestId, requestId } from '../request-id.ts';
import { type CallWrapper, type ServedMethod, statusOf } from '../rpc/call.ts';
import { METHODS, type RpcMethod, SERVICE_NAME } from '../rpc/methods.ts';
import type { EndedCall, Method, RequestHeaders } from '../wire/grpc/method.ts';
import type { LeanServer, LeanServerOptions } from '../wire/grpc/server.ts';
import { grpcJsServiceHost } from './grpc-js-services.ts';

/**
 * The method table on the lean gRPC server (wire/grpc/server.ts), and the
 * grpc-js-shaped services (health, reflection) beside it. The server reports
 * every call once, when it ends, however it ended (a reply, a failure, a
 * deadline, a reset): that is where each call is recorded.
 */
export class LeanGrpcAdapter {
  readonly #calls: CallWrapper;
  readonly #byPath = new Map<string, ServedMethod>();
  readonly #unknown: ServedMethod;

  constructor(calls: CallWrapper) {
    this.#calls = calls;
    this.#unknown = calls.serve('grpc', '', 'unknown');
  }

  /** The hooks to build the LeanServer with. */
  readonly hooks: Pick<LeanServerOptions, 'statusOf' | 'started' | 'ended' | 'requestIds'> = {
    statusOf,
    started: (path) => this.#byPath.get(path)?.metrics.started(),
    ended: (call) => this.#ended(call),
    requestIds: { echo: givenRequestId, forFailure: requestId },
  };

  register(server: LeanServer): ReturnType<typeof grpcJsServiceHost> {
    for (const method of METHODS) this.#registerSession(server, method);
    return grpcJsServiceHost((path, handler, type) =>
      this.#registerOther(server, path, handler, type),
    );
  }

  #registerSession(server: LeanServer, method: RpcMethod): void {
    const calls = this.#calls;
    const path = `/${SERVICE_NAME}/${method.name}`;
    this.#byPath.set(path, calls.serve('grpc', SERVICE_NAME, method.name, 'unary'));
    server.register(path, {
      admit: (headers) => calls.admit(method, headers.authorization),
      unary: async (request: Buffer, headers: RequestHeaders, scope: CallScope) =>
        method.encode(
          await calls.run(
            method,
            method.decode(request),
            headers.authorization,
            scope,
            headers[IDEMPOTENCY_HEADER],
          ),
        ),
    });
  }

  #registerOther(server: LeanServer, path: string, handler: Method, type: GrpcType): void {
    const service = path.slice(1, path.lastIndexOf('/'));
    const name = path.slice(path.lastIndexOf('/') + 1);
    this.#byPath.set(path, this.#calls.serve('grpc', service, name, type));
    server.register(path, handler);
  }

  #ended(call: EndedCall): void {
    const served = this.#byPath.get(call.path) ?? this.#unknown;
    this.#calls.record(served, call.code, call.seconds, call.requestId, call.error);
  }
}
