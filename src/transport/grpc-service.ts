import {
  Metadata,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { CallScope } from '../call-scope.ts';
import { IDEMPOTENCY_HEADER } from '../idempotency.ts';
import { givenRequestId, requestId } from '../request-id.ts';
import { abandoned, type CallWrapper, statusOf } from '../rpc/call.ts';
import { METHODS, type RpcMethod, SERVICE_NAME } from '../rpc/methods.ts';
import { Status } from '../wire/grpc-status.ts';

const PREFIX_BYTES = 5;
const identity = (bytes: Buffer) => bytes;

/** The session service for grpc-js: messages pass as bytes; the method table decodes and encodes them. */
export const sessionServiceDefinition: ServiceDefinition = Object.fromEntries(
  METHODS.map((method) => [
    method.name,
    {
      path: `/${SERVICE_NAME}/${method.name}`,
      originalName: method.name,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
    },
  ]),
);

/** A metadata entry's values as strings (binary values count as malformed). */
function textValues(metadata: Metadata, name: string): string[] {
  return metadata.get(name).map((value) => (typeof value === 'string' ? value : ''));
}

/** The call as the store sees it: its deadline, and whether its client has gone. */
function scopeOf(call: ServerUnaryCall<Buffer, Buffer>): CallScope {
  const deadline = call.getDeadline();
  const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
  return {
    deadlineMs: Number.isFinite(deadlineMs) ? deadlineMs : Number.POSITIVE_INFINITY,
    get cancelled() {
      return call.cancelled;
    },
  };
}

/**
 * The method table as grpc-js handlers. A handler never throws: every
 * failure becomes a status. The caller's x-request-id is echoed; a failure
 * also gets a generated one, returned in its trailers, as on the lean server.
 */
export function sessionServiceHandlers(calls: CallWrapper): UntypedServiceImplementation {
  return Object.fromEntries(METHODS.map((method) => [method.name, handler(calls, method)]));
}

function handler(calls: CallWrapper, method: RpcMethod) {
  const served = calls.serve('grpc', SERVICE_NAME, method.name, 'unary');
  return (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
    served.metrics.started();
    const startedAt = performance.now();
    const given = givenRequestId(call.metadata.get('x-request-id')[0]);
    const scope = scopeOf(call);
    const credentials = textValues(call.metadata, 'authorization');
    let result: Promise<unknown>;
    try {
      calls.admit(method, credentials);
      result = calls.run(
        method,
        method.decode(call.request),
        credentials,
        scope,
        textValues(call.metadata, IDEMPOTENCY_HEADER),
      );
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (response) => {
        const seconds = (performance.now() - startedAt) / 1000;
        calls.record(served, call.cancelled ? abandoned(scope) : Status.OK, seconds, given);
        if (given) {
          const echo = new Metadata();
          echo.set('x-request-id', given);
          call.sendMetadata(echo);
        }
        callback(null, method.encode(response).subarray(PREFIX_BYTES));
      },
      (error: unknown) => {
        const status = statusOf(error);
        const id = given ?? requestId(undefined);
        const seconds = (performance.now() - startedAt) / 1000;
        calls.record(served, call.cancelled ? abandoned(scope) : status.code, seconds, id, error);
        const metadata = new Metadata();
        metadata.set('x-request-id', id);
        callback({ code: status.code, details: status.details, metadata });
      },
    );
  };
}
