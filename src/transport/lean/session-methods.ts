import type { SessionService } from '../../service.ts';
import { SERVICE_NAME } from '../proto.ts';
import {
  decodeGetSession,
  decodeSessionKey,
  decodeSetSession,
  decodeTouchSession,
  decodeUpdateSession,
  encodeDeleteSessionResponse,
  encodeSession,
  encodeSetSessionResponse,
  encodeTouchSessionResponse,
} from './codec.ts';
import type { UnaryHandler } from './http2-server.ts';

/** The six session RPCs as lean unary handlers: decode, call the service, encode. */
export function sessionMethods(service: SessionService): Record<string, UnaryHandler> {
  const path = (method: string) => `/${SERVICE_NAME}/${method}`;
  return {
    [path('SetSession')]: async (request) =>
      encodeSetSessionResponse(await service.set(decodeSetSession(request))),
    [path('GetSession')]: async (request) => {
      const { sessionKey, touch } = decodeGetSession(request);
      return encodeSession(await service.get(sessionKey, touch));
    },
    [path('UpdateSession')]: async (request) =>
      encodeSession(await service.update(decodeUpdateSession(request))),
    [path('TouchSession')]: async (request) => {
      const { sessionKey, ttlSeconds } = decodeTouchSession(request);
      return encodeTouchSessionResponse(await service.touch(sessionKey, ttlSeconds));
    },
    [path('ConsumeSession')]: async (request) =>
      encodeSession(await service.consume(decodeSessionKey(request))),
    [path('DeleteSession')]: async (request) =>
      encodeDeleteSessionResponse(await service.delete(decodeSessionKey(request))),
  };
}
