import {
  status as grpcStatus,
  type ServerUnaryCall,
  type sendUnaryData,
  type UntypedServiceImplementation,
} from '@grpc/grpc-js';
import type { Logger } from '../logger.ts';
import type { SessionService, StoredSession } from '../service.ts';
import type {
  GetSessionMessage,
  SessionDataMessage,
  SessionKeyMessage,
  TouchSessionMessage,
  UpdateSessionMessage,
} from './proto.ts';
import { toStatus } from './status.ts';

type Handler<Req> = (request: Req) => Promise<object>;

/**
 * Binds each RPC to the service. The handler never throws: every failure,
 * expected or not, becomes a status, and only unexpected ones are logged.
 */
function unary<Req>(method: string, logger: Logger, handle: Handler<Req>) {
  return (call: ServerUnaryCall<Req, object>, callback: sendUnaryData<object>) => {
    let result: Promise<object>;
    try {
      result = handle(call.request);
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (response) => callback(null, response),
      (error: unknown) => {
        const status = toStatus(error);
        if (status.code === grpcStatus.INTERNAL)
          logger.error({ err: error, method }, 'call failed');
        callback(status);
      },
    );
  };
}

function toMap(record: Record<string, Buffer>): Map<string, Buffer> {
  return new Map(Object.entries(record));
}

function sessionMessage(session: StoredSession) {
  return {
    session_key: session.sessionKey,
    fleet_list_request: session.fleetListRequest,
    fleet_list_response: session.fleetListResponse,
    attributes: Object.fromEntries(session.attributes),
    ttl_seconds: session.ttlSeconds,
    expires_at_unix_ms: session.expiresAtMs,
    version: session.version,
    created_at_unix_ms: session.createdAtMs,
  };
}

export function sessionManagerHandlers(
  service: SessionService,
  logger: Logger,
): UntypedServiceImplementation {
  return {
    SetSession: unary<SessionDataMessage>('SetSession', logger, async (request) => {
      const stored = await service.set({
        sessionKey: request.session_key,
        fleetListRequest: request.fleet_list_request,
        fleetListResponse: request.fleet_list_response,
        attributes: toMap(request.attributes),
        ttlSeconds: request.ttl_seconds,
      });
      return {
        session_key: stored.sessionKey,
        expires_at_unix_ms: stored.expiresAtMs,
        version: stored.version,
      };
    }),
    GetSession: unary<GetSessionMessage>('GetSession', logger, async (request) =>
      sessionMessage(await service.get(request.session_key, request.touch)),
    ),
    UpdateSession: unary<UpdateSessionMessage>('UpdateSession', logger, async (request) => {
      const updated = await service.update({
        sessionKey: request.session_key,
        ...(request.fleet_list_request && { fleetListRequest: request.fleet_list_request }),
        ...(request.fleet_list_response && { fleetListResponse: request.fleet_list_response }),
        ...(request.expected_version !== undefined && {
          expectedVersion: request.expected_version,
        }),
        setAttributes: toMap(request.set_attributes),
        removeAttributes: request.remove_attributes,
        ttlSeconds: request.ttl_seconds,
      });
      return sessionMessage(updated);
    }),
    TouchSession: unary<TouchSessionMessage>('TouchSession', logger, async (request) => ({
      expires_at_unix_ms: await service.touch(request.session_key, request.ttl_seconds),
    })),
    ConsumeSession: unary<SessionKeyMessage>('ConsumeSession', logger, async (request) =>
      sessionMessage(await service.consume(request.session_key)),
    ),
    DeleteSession: unary<SessionKeyMessage>('DeleteSession', logger, async (request) => ({
      deleted: await service.delete(request.session_key),
    })),
  };
}
