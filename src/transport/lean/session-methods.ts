import type { Authenticator, SessionMethod } from '../../auth.ts';
import type { SessionService } from '../../service.ts';
import { SERVICE_NAME } from '../proto.ts';
import {
  decodeGetSession,
  decodeSessionKey,
  decodeSetSession,
  decodeTouchSession,
  decodeUpdateSession,
  encodeDeleteSessionResponse,
  encodeRotateSessionKeyResponse,
  encodeSession,
  encodeSetSessionResponse,
  encodeTouchSessionResponse,
} from './codec.ts';
import type { Method, RequestHeaders, UnaryHandler } from './http2-server.ts';

/**
 * The session RPCs as lean unary methods: decode, call the service, encode.
 * With tokens configured, `admit` checks the method's permission on the
 * headers before the body is read; GetSession with touch needs more than
 * GetSession, so it checks again once `touch` is decoded.
 */
export function sessionMethods(
  service: SessionService,
  auth: Authenticator,
): Record<string, Method> {
  const method = (name: SessionMethod, unary: UnaryHandler): [string, Method] => [
    `/${SERVICE_NAME}/${name}`,
    auth.enabled
      ? { unary, admit: (headers) => auth.check(headers.authorization, name) }
      : { unary },
  ];
  const touchAllowed = (headers: RequestHeaders) =>
    auth.check(headers.authorization, 'GetSession', true);
  return Object.fromEntries([
    method('SetSession', async (request, _headers, scope) =>
      encodeSetSessionResponse(await service.set(decodeSetSession(request), scope)),
    ),
    method('GetSession', async (request, headers, scope) => {
      const { sessionKey, touch } = decodeGetSession(request);
      if (touch) touchAllowed(headers);
      return encodeSession(await service.get(sessionKey, touch, scope));
    }),
    method('UpdateSession', async (request, _headers, scope) =>
      encodeSession(await service.update(decodeUpdateSession(request), scope)),
    ),
    method('TouchSession', async (request, _headers, scope) => {
      const { sessionKey, ttlSeconds } = decodeTouchSession(request);
      return encodeTouchSessionResponse(await service.touch(sessionKey, ttlSeconds, scope));
    }),
    method('ConsumeSession', async (request, _headers, scope) =>
      encodeSession(await service.consume(decodeSessionKey(request), scope)),
    ),
    method('DeleteSession', async (request, _headers, scope) =>
      encodeDeleteSessionResponse(await service.delete(decodeSessionKey(request), scope)),
    ),
    method('RotateSessionKey', async (request, _headers, scope) =>
      encodeRotateSessionKeyResponse(await service.rotate(decodeSessionKey(request), scope)),
    ),
  ]);
}
