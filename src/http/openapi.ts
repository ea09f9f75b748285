import { METHODS, type MessageName, messages, type RpcMethod } from '../rpc/methods.ts';
import { httpStatus, Status, type StatusName } from '../wire/grpc-status.ts';
import { type JsonMessage, messageSchema } from './json-mapping.ts';

/**
 * The OpenAPI 3.1 description of the HTTP/JSON API, served at /openapi.json.
 * The session operations, their messages and the errors each can return come
 * from the method table (rpc/methods.ts); the probes are listed here.
 */

/** What each status means on this API, for the error responses. */
const ERROR_MEANING: Partial<Record<StatusName, string>> = {
  INVALID_ARGUMENT: 'a malformed field, named at the start of the message',
  UNAUTHENTICATED:
    'no, malformed or unknown bearer token (when tokens are configured), or no valid client certificate (mutual TLS)',
  PERMISSION_DENIED: 'the token does not grant the permission the call needs',
  NOT_FOUND: 'the session is absent or expired',
  ABORTED: 'expectedVersion differs from the stored version',
  FAILED_PRECONDITION:
    'the Idempotency-Key was used for a different request within IDEMPOTENCY_TTL; nothing changed',
  RESOURCE_EXHAUSTED:
    'the body or the session is larger than allowed (SESSION_MAX_BYTES, SESSION_MAX_ATTRIBUTES), the memory store is full, or the owner holds SESSION_MAX_PER_OWNER sessions and SESSION_OWNER_LIMIT is refuse',
  UNAVAILABLE: 'the store cannot be reached; see the method for whether a retry is safe',
  INTERNAL: 'a bug, logged with its cause and the request id',
};
/** Errors any session call can return. */
const EVERY_CALL: readonly StatusName[] = [
  'INVALID_ARGUMENT',
  'UNAUTHENTICATED',
  'PERMISSION_DENIED',
  'UNAVAILABLE',
  'INTERNAL',
];

const ERROR_SCHEMA = {
  type: 'object',
  required: ['code', 'message'],
  properties: {
    code: { type: 'string', description: 'the gRPC status name (NOT_FOUND, ABORTED, ...)' },
    message: { type: 'string', description: 'starts with the field at fault' },
  },
};

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: string) => ({ content: { 'application/json': { schema: ref(name) } } });

function errorResponses(method: RpcMethod) {
  const names = [
    ...EVERY_CALL,
    ...method.errors,
    ...(method.idempotent ? (['FAILED_PRECONDITION'] as const) : []),
  ];
  const byHttp = new Map<number, StatusName[]>();
  for (const name of names) {
    const status = httpStatus(Status[name]);
    byHttp.set(status, [...(byHttp.get(status) ?? []), name]);
  }
  return Object.fromEntries(
    [...byHttp].map(([status, codes]) => [
      String(status),
      {
        description: codes.map((code) => `${code}: ${ERROR_MEANING[code]}`).join('; '),
        ...json('Error'),
      },
    ]),
  );
}

const key = {
  name: 'key',
  in: 'path',
  required: true,
  description: 'the session key',
  schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
};

const IDEMPOTENCY_KEY = {
  name: 'Idempotency-Key',
  in: 'header',
  required: false,
  description:
    "a repeat with this key within IDEMPOTENCY_TTL returns the first call's response without doing the work again",
  schema: { type: 'string', pattern: '^[\\x21-\\x7e]{1,255}$' },
};

function operation(method: RpcMethod) {
  const { http } = method;
  const parameters = [
    ...(http.path.includes('{key}') ? [key] : []),
    ...(method.idempotent ? [IDEMPOTENCY_KEY] : []),
    ...(http.flags ?? []).map((name) => ({
      name,
      in: 'query',
      required: false,
      description: 'a flag: true or false',
      schema: { type: 'boolean', default: false },
    })),
  ];
  return {
    operationId: method.name,
    summary: method.summary,
    tags: ['sessions'],
    ...(parameters.length > 0 && { parameters }),
    ...(http.body && { requestBody: { required: http.optionalBody !== true, ...json(http.body) } }),
    responses: {
      '200': { description: 'OK', ...json(http.reply) },
      ...errorResponses(method),
    },
  };
}

const paths: Record<string, Record<string, unknown>> = {};
const schemas: Record<string, unknown> = { Error: ERROR_SCHEMA };
for (const method of METHODS) {
  const { path, verb, body, reply } = method.http;
  paths[path] = { ...paths[path], [verb]: operation(method) };
  if (body) schemas[body] = messageSchema(messages[body] as JsonMessage);
  schemas[reply] = messageSchema(messages[reply as MessageName] as JsonMessage, true);
}

/** Node's HTTP server answers any request whose headers pass its limit so, probes included. */
const HEADERS_TOO_LARGE = {
  '431': { description: 'the request headers are larger than the server accepts (16 KiB)' },
};
const probe = (operationId: string, summary: string, responses: Record<string, unknown>) => ({
  get: {
    operationId,
    summary,
    tags: ['operations'],
    security: [],
    responses: { ...responses, ...HEADERS_TOO_LARGE },
  },
});
const status = (description: string) => ({
  description,
  content: {
    'application/json': {
      schema: { type: 'object', required: ['status'], properties: { status: { type: 'string' } } },
    },
  },
});

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'sessionmanager',
    version: '1',
    description:
      'The session API of sessionmanager over HTTP/JSON (the proto3 JSON mapping of sessionmanager.v1: lowerCamelCase names, the proto field names accepted too; bytes as base64; int64 written as decimal strings, read from numbers or strings), plus probes and metrics.',
    license: { name: 'MIT', identifier: 'MIT' },
  },
  servers: [{ url: '/', description: 'the server this document is served by (HTTP_PORT)' }],
  tags: [
    { name: 'sessions', description: 'the session API, as over gRPC' },
    { name: 'operations', description: 'probes, metrics and this document' },
  ],
  paths: {
    ...paths,
    '/healthz': probe('Healthz', 'Liveness: 200 while the process runs', {
      '200': status('the process is alive'),
    }),
    '/readyz': probe('Readyz', 'Readiness: 200 while the store answers PING', {
      '200': status('the store answers PING'),
      '503': status('the store does not answer'),
    }),
    '/metrics': probe('Metrics', 'Prometheus metrics', {
      '200': {
        description: 'Prometheus text format',
        content: { 'text/plain': { schema: { type: 'string' } } },
      },
    }),
    '/openapi.json': probe('OpenApi', 'This document', {
      '200': {
        description: 'this document',
        content: { 'application/json': { schema: { type: 'object' } } },
      },
    }),
  },
  components: {
    schemas,
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        description:
          'Required on the /v1/sessions and /v1/owner-sessions routes when the server has AUTH_TOKENS; GET without touch needs "read", the /v1/owner-sessions routes "admin", everything else "write" ("admin" includes "write", which includes "read").',
      },
    },
  },
  // Either no credentials (tokens not configured) or a bearer token.
  security: [{}, { bearer: [] }],
};
