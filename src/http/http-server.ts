import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { TLSSocket } from 'node:tls';
import type { CallScope } from '../call-scope.ts';
import type { TlsConfig } from '../config.ts';
import { ErrorCode, invalidArgument, SessionError } from '../errors.ts';
import { IDEMPOTENCY_HEADER } from '../idempotency.ts';
import type { Metrics } from '../metrics.ts';
import { requestId } from '../request-id.ts';
import { abandoned, type CallWrapper, type ServedMethod, statusOf } from '../rpc/call.ts';
import { METHODS, messages, type RpcMethod, SERVICE_NAME } from '../rpc/methods.ts';
import type { HealthMonitor } from '../transport/health.ts';
import { httpStatus, Status, statusName } from '../wire/grpc-status.ts';
import { parseFlags, parseMessage } from './json-mapping.ts';
import { openApiDocument } from './openapi.ts';

export interface HttpDependencies {
  readonly calls: CallWrapper;
  readonly health: HealthMonitor;
  readonly metrics: Metrics;
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
  readonly method: RpcMethod;
  readonly served: ServedMethod;
}

const PROBES = new Set(['/healthz', '/readyz', '/metrics', '/openapi.json']);
const ITEM_PREFIX = '/v1/sessions/';

/**
 * The admin and HTTP/JSON port: probes, metrics, the OpenAPI document and
 * the session API, the method table's routes in the proto3 JSON mapping,
 * through the same call wrapper as gRPC.
 */
export function createHttpServer(deps: HttpDependencies): Server | HttpsServer {
  const { calls, health, metrics, tls, maxBodyBytes } = deps;
  // Routes by path template, then verb; actions (":touch") by name.
  const routes = new Map<string, Map<string, Route>>();
  for (const method of METHODS) {
    const { path, verb } = method.http;
    const byVerb = routes.get(path) ?? new Map<string, Route>();
    byVerb.set(verb.toUpperCase(), {
      method,
      served: calls.serve('http', SERVICE_NAME, method.name),
    });
    routes.set(path, byVerb);
  }

  const probe = (response: ServerResponse, path: string): void => {
    if (path === '/healthz') send(response, 200, { status: 'ok' });
    else if (path === '/readyz') {
      const ready = health.status === 'SERVING';
      send(response, ready ? 200 : 503, { status: ready ? 'ready' : 'not ready' });
    } else if (path === '/openapi.json') send(response, 200, openApiDocument);
    else {
      metrics.exposition().then(
        (text) => {
          response.writeHead(200, { 'content-type': metrics.registry.contentType });
          response.end(text);
        },
        () => send(response, 500, { code: 'INTERNAL', message: 'metrics unavailable' }),
      );
    }
  };

  const handler = (request: IncomingMessage, response: ServerResponse) => {
    const url = new URL(request.url ?? '/', 'http://localhost');
    const verb = request.method ?? '';
    if (PROBES.has(url.pathname)) {
      if (verb === 'GET') probe(response, url.pathname);
      else notAllowed(response, verb, url.pathname, ['GET']);
      return;
    }
    const id = requestId(request.headers['x-request-id']);
    response.setHeader('x-request-id', id);
    const match = matchRoute(routes, verb, url.pathname);
    if ('allow' in match) {
      notAllowed(response, verb, url.pathname, match.allow);
      return;
    }
    if ('message' in match) {
      send(response, match.status, { code: statusName(match.code), message: match.message });
      return;
    }
    const { method, served } = match.route;
    served.metrics.started();
    const startedAt = performance.now();
    const scope = httpCallScope(request, response);
    const credentials = request.headers.authorization;
    const result = (async () => {
      if (tls?.clientCa && !(request.socket as TLSSocket).authorized) {
        throw new SessionError(
          ErrorCode.Unauthenticated,
          'client certificate: required (mutual TLS); present one signed by TLS_CLIENT_CA_FILE',
        );
      }
      calls.admit(method, credentials);
      const route = method.http;
      const flags = parseFlags(route.flags ?? [], url.searchParams);
      const body = route.body
        ? parseMessage(messages[route.body], await readJson(request, maxBodyBytes))
        : undefined;
      const input = route.request(match.key, body as never, flags);
      return route.toJson(
        await calls.run(method, input, credentials, scope, request.headers[IDEMPOTENCY_HEADER]),
      );
    })();
    result.then(
      (payload) => {
        const seconds = (performance.now() - startedAt) / 1000;
        calls.record(served, scope.cancelled ? abandoned(scope) : Status.OK, seconds, id);
        send(response, 200, payload);
      },
      (error: unknown) => {
        const status = statusOf(error);
        const seconds = (performance.now() - startedAt) / 1000;
        calls.record(served, scope.cancelled ? abandoned(scope) : status.code, seconds, id, error);
        if (status.details.startsWith('authorization:')) {
          response.setHeader('www-authenticate', 'Bearer');
        }
        // Refused before its body was read: close rather than drain it.
        if (status.code === Status.UNAUTHENTICATED || status.code === Status.PERMISSION_DENIED) {
          response.setHeader('connection', 'close');
        }
        send(response, httpStatus(status.code), {
          code: statusName(status.code),
          message: status.details,
        });
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

/**
 * An HTTP call as the store sees it: no deadline of its own (HTTP has no
 * grpc-timeout), and cancelled once the response is finished or the client
 * has closed the connection before it.
 */
export function httpCallScope(request: IncomingMessage, response: ServerResponse): CallScope {
  return {
    deadlineMs: Number.POSITIVE_INFINITY,
    get cancelled() {
      return response.writableEnded || response.destroyed || request.socket.destroyed;
    },
  };
}

type Match =
  | { route: Route; key: string }
  | { allow: readonly string[] }
  | { code: number; status: number; message: string };

function matchRoute(routes: Map<string, Map<string, Route>>, verb: string, path: string): Match {
  const at = (template: string): Match => {
    const byVerb = routes.get(template);
    const route = byVerb?.get(verb);
    return route ? { route, key: '' } : { allow: [...(byVerb?.keys() ?? [])] };
  };
  // A path without a key (/v1/sessions, /v1/owner-sessions:list) is its own template.
  if (!path.includes('{') && routes.has(path)) return at(path);
  if (!path.startsWith(ITEM_PREFIX)) {
    return { code: Status.NOT_FOUND, status: 404, message: `no route ${verb} ${path}` };
  }
  let key: string;
  try {
    key = decodeURIComponent(path.slice(ITEM_PREFIX.length));
  } catch {
    return {
      code: Status.INVALID_ARGUMENT,
      status: 400,
      message: 'session_key: bad percent-encoding',
    };
  }
  // Keys may hold ':', so only POST, which items do not take, reads a ":action" suffix.
  if (verb === 'POST') {
    const colon = key.lastIndexOf(':');
    const route =
      colon > 0 ? routes.get(`${ITEM_PREFIX}{key}${key.slice(colon)}`)?.get(verb) : undefined;
    if (route) return { route, key: key.slice(0, colon) };
    const actions = [...routes.keys()]
      .filter((template) => template.startsWith(`${ITEM_PREFIX}{key}:`))
      .map((template) => template.slice(template.indexOf('}') + 1));
    const expected = `${actions.slice(0, -1).join(', ')} or ${actions.at(-1)}`;
    return {
      code: Status.NOT_FOUND,
      status: 404,
      message: `no route POST ${path}: expected /v1/sessions/{key}${expected}`,
    };
  }
  const match = at(`${ITEM_PREFIX}{key}`);
  return 'route' in match ? { route: match.route, key } : match;
}

function notAllowed(
  response: ServerResponse,
  verb: string,
  path: string,
  allow: readonly string[],
): void {
  response.setHeader('allow', allow.join(', '));
  send(response, 405, { code: 'UNIMPLEMENTED', message: `${verb} is not allowed on ${path}` });
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
