import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { status as grpcStatus } from '@grpc/grpc-js';
import type { Authenticator, SessionMethod } from '../auth.ts';
import type { TlsConfig } from '../config.ts';
import { ErrorCode, invalidArgument, SessionError } from '../errors.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { requestId } from '../request-id.ts';
import type { SessionService } from '../service.ts';
import type { HealthMonitor } from '../transport/health.ts';
import { statusName, toStatus } from '../transport/status.ts';
import {
  parseBody,
  SetSessionBody,
  sessionJson,
  TouchSessionBody,
  UpdateSessionBody,
} from './json-mapping.ts';
import { openApiDocument } from './openapi.ts';

const HTTP_STATUS: Partial<Record<grpcStatus, number>> = {
  [grpcStatus.OK]: 200,
  [grpcStatus.INVALID_ARGUMENT]: 400,
  [grpcStatus.UNAUTHENTICATED]: 401,
  [grpcStatus.PERMISSION_DENIED]: 403,
  [grpcStatus.NOT_FOUND]: 404,
  [grpcStatus.ABORTED]: 409,
  [grpcStatus.RESOURCE_EXHAUSTED]: 413,
  [grpcStatus.UNIMPLEMENTED]: 501,
  [grpcStatus.UNAVAILABLE]: 503,
};

export interface HttpDependencies {
  readonly service: SessionService;
  readonly health: HealthMonitor;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /** Checks the Authorization header of every session route (never of the probes). */
  readonly auth: Authenticator;
  /**
   * Serve HTTPS with the gRPC port's certificate. With a client CA, the
   * session routes need a client certificate it signed (401 otherwise); the
   * probes, /metrics and /openapi.json do not, so orchestrator probes work.
   */
  readonly tls: TlsConfig | undefined;
  /** Largest request body accepted; larger ones are refused with 413 before they are buffered. */
  readonly maxBodyBytes: number;
}

interface Route {
  /** The RPC this route stands for: its permission, and the method label in metrics. */
  readonly method: SessionMethod;
  handle(request: IncomingMessage, key: string, query: URLSearchParams): Promise<object>;
}

type Verb = 'GET' | 'POST' | 'PATCH' | 'DELETE';

/**
 * The admin and HTTP/JSON port: probes, metrics, the OpenAPI document and
 * the session API over the same SessionService as gRPC, with the same
 * validation, limits and error codes.
 */
export function createHttpServer(deps: HttpDependencies): Server | HttpsServer {
  const { service, health, metrics, logger, auth, tls, maxBodyBytes } = deps;
  const body = (request: IncomingMessage) => readJson(request, maxBodyBytes);

  const collection: Partial<Record<Verb, Route>> = {
    POST: {
      method: 'SetSession',
      handle: async (request) => {
        const input = parseBody(SetSessionBody, await body(request));
        const stored = await service.set({
          sessionKey: input.session_key,
          fleetListRequest: input.fleet_list_request,
          fleetListResponse: input.fleet_list_response,
          attributes: input.attributes,
          ttlSeconds: input.ttl_seconds,
        });
        return {
          sessionKey: stored.sessionKey,
          expiresAtUnixMs: String(stored.expiresAtMs),
          version: String(stored.version),
        };
      },
    },
  };
  const item: Partial<Record<Verb, Route>> = {
    GET: {
      method: 'GetSession',
      handle: async (_request, key, query) =>
        sessionJson(await service.get(key, query.get('touch') === 'true')),
    },
    PATCH: {
      method: 'UpdateSession',
      handle: async (request, key) => {
        const input = parseBody(UpdateSessionBody, await body(request));
        return sessionJson(
          await service.update({
            sessionKey: key,
            ...(input.fleet_list_request && { fleetListRequest: input.fleet_list_request }),
            ...(input.fleet_list_response && { fleetListResponse: input.fleet_list_response }),
            ...(input.expected_version !== undefined && {
              expectedVersion: input.expected_version,
            }),
            setAttributes: input.set_attributes,
            removeAttributes: input.remove_attributes,
            ttlSeconds: input.ttl_seconds,
          }),
        );
      },
    },
    DELETE: {
      method: 'DeleteSession',
      handle: async (_request, key) => ({ deleted: await service.delete(key) }),
    },
  };
  const actions: Record<string, Route> = {
    touch: {
      method: 'TouchSession',
      handle: async (request, key) => {
        const input = parseBody(TouchSessionBody, await body(request));
        return { expiresAtUnixMs: String(await service.touch(key, input.ttl_seconds)) };
      },
    },
    consume: {
      method: 'ConsumeSession',
      handle: async (_request, key) => sessionJson(await service.consume(key)),
    },
    rotate: {
      method: 'RotateSessionKey',
      handle: async (_request, key) => {
        const rotated = await service.rotate(key);
        return {
          sessionKey: rotated.sessionKey,
          expiresAtUnixMs: String(rotated.expiresAtMs),
          version: String(rotated.version),
        };
      },
    },
  };

  const probe = (response: ServerResponse, path: string): boolean => {
    if (path === '/healthz') send(response, 200, { status: 'ok' });
    else if (path === '/readyz') {
      const ready = health.status === 'SERVING';
      send(response, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' });
    } else if (path === '/openapi.json') send(response, 200, openApiDocument);
    else if (path === '/metrics') {
      metrics.exposition().then(
        (text) => {
          response.writeHead(200, { 'content-type': metrics.registry.contentType });
          response.end(text);
        },
        () => send(response, 500, { code: 'INTERNAL', message: 'metrics unavailable' }),
      );
    } else return false;
    return true;
  };

  const handler = (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    if (request.method === 'GET' && probe(response, url.pathname)) return;

    const id = requestId(request.headers['x-request-id']);
    response.setHeader('x-request-id', id);
    const match = matchRoute(request.method ?? '', url.pathname, collection, item, actions);
    if ('error' in match) {
      send(response, match.status, { code: match.error, message: match.message });
      return;
    }
    const started = performance.now();
    let result: Promise<object>;
    try {
      const touch = match.route.method === 'GetSession' && url.searchParams.get('touch') === 'true';
      if (tls?.clientCa && !(request.socket as TLSSocket).authorized)
        throw new SessionError(
          ErrorCode.Unauthenticated,
          'client certificate: required (mutual TLS); present one signed by TLS_CLIENT_CA_FILE',
        );
      auth.check(request.headers.authorization, match.route.method, touch);
      result = match.route.handle(request, match.key, url.searchParams);
    } catch (error) {
      result = Promise.reject(error);
    }
    result.then(
      (payload) => {
        metrics.observeCall('http', match.route.method, 'OK', (performance.now() - started) / 1000);
        send(response, 200, payload);
      },
      (error: unknown) => {
        const status = toStatus(error);
        const code = statusName(status.code);
        if (status.code === grpcStatus.INTERNAL) {
          logger.error({ err: error, method: match.route.method, requestId: id }, 'call failed');
        }
        metrics.observeCall('http', match.route.method, code, (performance.now() - started) / 1000);
        if (status.details.startsWith('authorization:'))
          response.setHeader('www-authenticate', 'Bearer');
        // Refused before its body was read: close rather than drain it.
        if (
          status.code === grpcStatus.UNAUTHENTICATED ||
          status.code === grpcStatus.PERMISSION_DENIED
        )
          response.setHeader('connection', 'close');
        send(response, HTTP_STATUS[status.code] ?? 500, { code, message: status.details });
      },
    );
  };
  if (!tls) return createServer(handler);
  return createHttpsServer(
    {
      cert: tls.cert,
      key: tls.key,
      minVersion: 'TLSv1.2',
      // Asked for, checked per route: probes come without a certificate.
      ...(tls.clientCa && { ca: tls.clientCa, requestCert: true, rejectUnauthorized: false }),
    },
    handler,
  );
}

type Match = { route: Route; key: string } | { error: string; status: number; message: string };

function matchRoute(
  verb: string,
  path: string,
  collection: Partial<Record<Verb, Route>>,
  item: Partial<Record<Verb, Route>>,
  actions: Record<string, Route>,
): Match {
  if (path === '/v1/sessions') {
    const route = collection[verb as Verb];
    return route ? { route, key: '' } : notAllowed(verb, path);
  }
  if (!path.startsWith('/v1/sessions/')) {
    return { error: 'NOT_FOUND', status: 404, message: `no route ${verb} ${path}` };
  }
  let rest: string;
  try {
    rest = decodeURIComponent(path.slice('/v1/sessions/'.length));
  } catch {
    return { error: 'INVALID_ARGUMENT', status: 400, message: 'session_key: bad percent-encoding' };
  }
  if (verb === 'POST') {
    const colon = rest.lastIndexOf(':');
    const route = colon > 0 ? actions[rest.slice(colon + 1)] : undefined;
    return route
      ? { route, key: rest.slice(0, colon) }
      : {
          error: 'NOT_FOUND',
          status: 404,
          message: `no route POST ${path}: expected /v1/sessions/{key}:touch, :consume or :rotate`,
        };
  }
  const route = item[verb as Verb];
  return route ? { route, key: rest } : notAllowed(verb, path);
}

function notAllowed(verb: string, path: string): Match {
  return { error: 'UNIMPLEMENTED', status: 405, message: `${verb} is not allowed on ${path}` };
}

function send(response: ServerResponse, status: number, payload: unknown): void {
  const text = JSON.stringify(payload);
  response.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  response.end(text);
}

/** Reads a JSON body, refusing (413) past the limit before buffering it, and bad JSON (400). */
async function readJson(request: IncomingMessage, maxBytes: number): Promise<unknown> {
  const declared = Number(request.headers['content-length'] ?? 0);
  if (declared > maxBytes) throw tooLargeBody(maxBytes);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw tooLargeBody(maxBytes);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw invalidArgument('body', 'is not valid JSON');
  }
}

function tooLargeBody(maxBytes: number): SessionError {
  return new SessionError(ErrorCode.TooLarge, `body: larger than ${maxBytes} bytes`);
}
