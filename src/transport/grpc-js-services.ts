import { EventEmitter } from 'node:events';
import type {
  MethodDefinition,
  ServiceDefinition,
  UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { GrpcType } from '../metrics.ts';
import { CallError, type Method, type StreamCall } from '../wire/grpc/method.ts';
import { Status } from '../wire/grpc-status.ts';

type AnyMethod = MethodDefinition<unknown, unknown>;
type Handler = (...args: unknown[]) => void;

function frame(message: Buffer): Buffer {
  const framed = Buffer.allocUnsafe(5 + message.length);
  framed[0] = 0;
  framed.writeUInt32BE(message.length, 1);
  message.copy(framed, 5);
  return framed;
}

/** The call object grpc-js gives a streaming handler, reduced to what handlers use. */
function streamingCall(call: StreamCall, method: AnyMethod) {
  return Object.assign(new EventEmitter(), {
    request: undefined as unknown,
    cancelled: false,
    write: (value: unknown) => {
      call.write(method.responseSerialize(value));
      return true;
    },
    end: () => call.end(),
  });
}

function adapt(method: AnyMethod, handler: Handler): Method {
  if (!method.requestStream && !method.responseStream) {
    return {
      unary: (request) =>
        new Promise((resolve, reject) =>
          handler(
            { request: method.requestDeserialize(request) },
            (error: { code?: number; details?: string } | null, value: unknown) =>
              error
                ? reject(new CallError(error.code ?? Status.INTERNAL, error.details ?? 'failed'))
                : resolve(frame(method.responseSerialize(value))),
          ),
        ),
    };
  }
  if (method.requestStream && !method.responseStream) {
    throw new Error(`client-streaming method ${method.path} is not supported`);
  }
  return {
    stream: (call) => {
      const emitter = streamingCall(call, method);
      call.onCancel = () => {
        emitter.cancelled = true;
        emitter.emit('cancelled');
      };
      if (method.requestStream) {
        call.onMessage = (message) => emitter.emit('data', method.requestDeserialize(message));
        call.onEnd = () => emitter.emit('end');
        handler(emitter);
      } else {
        call.onMessage = (message) => {
          emitter.request = method.requestDeserialize(message);
          handler(emitter);
        };
      }
    },
  };
}

function grpcType(method: AnyMethod): GrpcType {
  if (method.requestStream) return method.responseStream ? 'bidi_stream' : 'client_stream';
  return method.responseStream ? 'server_stream' : 'unary';
}

/**
 * Lets services written for grpc-js (grpc-health-check, @grpc/reflection)
 * register on the lean server through their usual `addToServer(server)`, so
 * they share its port. Both are small and rarely called, so the cost of
 * their grpc-js-shaped call objects does not matter.
 */
export function grpcJsServiceHost(
  register: (path: string, method: Method, type: GrpcType) => void,
) {
  return {
    addService(definition: ServiceDefinition, implementation: UntypedServiceImplementation) {
      for (const [name, method] of Object.entries(definition) as Array<[string, AnyMethod]>) {
        const handler = (implementation[name] ?? implementation[method.originalName ?? '']) as
          | Handler
          | undefined;
        if (handler) register(method.path, adapt(method, handler), grpcType(method));
      }
    },
  };
}
