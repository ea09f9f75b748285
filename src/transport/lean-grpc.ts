import type { CallScope } from '../call-scope.ts';
import type { GrpcType } from '../metrics.ts';
import { givenRequestId } from '../request-id.ts';
import { type CallStatus, type CallWrapper, type ServedMethod, statusOf } from '../rpc/call.ts';
import { METHODS, type RpcMethod, SERVICE_NAME } from '../rpc/methods.ts';
import { Status } from '../wire/grpc-status.ts';
import { grpcJsServiceHost } from './lean/grpc-js-services.ts';
import type { LeanServer, LeanServerOptions, Method, RequestHeaders } from './lean/http2-server.ts';

/** A session call's failure on its way from the handler to the server's `statusOf`. */
class Failure extends Error {
  constructor(
    readonly served: ServedMethod,
    readonly startedAt: number,
    override readonly cause: unknown,
    /** The call, for a failure of its handler; undefined for a refusal before the request was read. */
    readonly scope: CallScope | undefined,
  ) {
    super('call failed', { cause });
  }
}

/**
 * The method table on the lean gRPC server (http2-server.ts), and the
 * grpc-js-shaped services (health, reflection) beside it.
 *
 * Every call is recorded once, by whoever ended it. The call wrapper records
 * a session call whose handler settled while the call was live: a reply here,
 * a failure in `statusOf`, which the server calls right before it ends the
 * call and reports the end to `observe` (so `observe` skips that one report).
 * `observe` records the rest: calls the server ended itself (deadline, reset,
 * framing, size) and every call of another service. Those lines carry no
 * request id: the server's hooks do not hand it over.
 */
export class LeanGrpcAdapter {
  readonly #calls: CallWrapper;
  readonly #byName = new Map<string, { served: ServedMethod; session: boolean }>();
  readonly #unknown: ServedMethod;
  /** Set by `statusOf` when it recorded the call whose end `observe` hears of next. */
  #recorded = false;

  constructor(calls: CallWrapper) {
    this.#calls = calls;
    this.#unknown = calls.serve('grpc', '', 'unknown');
  }

  /** The hooks to build the LeanServer with. */
  readonly hooks: Pick<LeanServerOptions, 'statusOf' | 'observe'> = {
    statusOf: (error, _path, requestId) => this.#statusOf(error, requestId),
    observe: (method, code, seconds) => this.#observe(method, code, seconds),
  };

  register(server: LeanServer): ReturnType<typeof grpcJsServiceHost> {
    for (const method of METHODS) this.#registerSession(server, method);
    return grpcJsServiceHost((path, handler, type) =>
      this.#registerOther(server, path, handler, type),
    );
  }

  #registerSession(server: LeanServer, method: RpcMethod): void {
    const calls = this.#calls;
    const served = calls.serve('grpc', SERVICE_NAME, method.name, 'unary');
    this.#byName.set(method.name, { served, session: true });
    server.register(`/${SERVICE_NAME}/${method.name}`, {
      admit: (headers) => {
        served.metrics.started();
        try {
          calls.admit(method, headers.authorization);
        } catch (error) {
          throw new Failure(served, performance.now(), error, undefined);
        }
      },
      unary: async (request: Buffer, headers: RequestHeaders, scope: CallScope) => {
        const startedAt = performance.now();
        let reply: Buffer;
        try {
          const input = method.decode(request);
          reply = method.encode(await calls.run(method, input, headers.authorization, scope));
        } catch (error) {
          throw new Failure(served, startedAt, error, scope);
        }
        if (!scope.cancelled) {
          const seconds = (performance.now() - startedAt) / 1000;
          calls.record(served, Status.OK, seconds, givenRequestId(headers['x-request-id']));
        }
        return reply;
      },
    });
  }

  #registerOther(server: LeanServer, path: string, handler: Method, type: GrpcType): void {
    const service = path.slice(1, path.lastIndexOf('/'));
    const name = path.slice(path.lastIndexOf('/') + 1);
    const served = this.#calls.serve('grpc', service, name, type);
    this.#byName.set(name, { served, session: false });
    if ('stream' in handler) {
      server.register(path, {
        stream: (call) => {
          served.metrics.started();
          handler.stream(call);
        },
      });
    } else {
      server.register(path, { unary: handler.unary, admit: () => served.metrics.started() });
    }
  }

  #statusOf(error: unknown, requestId: string): CallStatus {
    if (!(error instanceof Failure)) return statusOf(error);
    const status = statusOf(error.cause);
    if (!error.scope?.cancelled) {
      const seconds = (performance.now() - error.startedAt) / 1000;
      this.#calls.record(error.served, status.code, seconds, requestId, error.cause);
      this.#recorded = true;
    }
    return status;
  }

  #observe(method: string, code: number, seconds: number): void {
    if (this.#recorded) {
      this.#recorded = false;
      return;
    }
    const known = this.#byName.get(method);
    if (known?.session && code === Status.OK) return;
    this.#calls.record(known?.served ?? this.#unknown, code, seconds, undefined);
  }
}
