/**
 * The OpenAPI 3.1 description of the HTTP/JSON API, served at /openapi.json.
 * Written by hand to match the routes in http-server.ts; a test calls every
 * operation listed here and checks the server answers it.
 */

const int64 = { type: 'string', pattern: '^-?\\d+$', description: 'int64 as a decimal string' };
const bytes = { type: 'string', contentEncoding: 'base64' };
const attributes = { type: 'object', additionalProperties: bytes };

const schemas = {
  SessionData: {
    type: 'object',
    properties: {
      sessionKey: { type: 'string' },
      fleetListRequest: bytes,
      fleetListResponse: bytes,
      attributes,
      ttlSeconds: int64,
      expiresAtUnixMs: int64,
      version: int64,
      createdAtUnixMs: int64,
    },
  },
  SetSessionRequest: {
    type: 'object',
    additionalProperties: false,
    properties: {
      sessionKey: { type: 'string', description: 'empty or absent: the server generates one' },
      fleetListRequest: bytes,
      fleetListResponse: bytes,
      attributes,
      ttlSeconds: int64,
    },
  },
  SetSessionResponse: {
    type: 'object',
    properties: { sessionKey: { type: 'string' }, expiresAtUnixMs: int64, version: int64 },
  },
  UpdateSessionRequest: {
    type: 'object',
    additionalProperties: false,
    properties: {
      fleetListRequest: bytes,
      fleetListResponse: bytes,
      setAttributes: attributes,
      removeAttributes: { type: 'array', items: { type: 'string' } },
      expectedVersion: int64,
      ttlSeconds: int64,
    },
  },
  TouchSessionRequest: {
    type: 'object',
    additionalProperties: false,
    properties: { ttlSeconds: int64 },
  },
  TouchSessionResponse: { type: 'object', properties: { expiresAtUnixMs: int64 } },
  RotateSessionKeyResponse: {
    type: 'object',
    properties: {
      sessionKey: { type: 'string', description: 'the new key; the old one no longer exists' },
      expiresAtUnixMs: int64,
      version: int64,
    },
  },
  DeleteSessionResponse: { type: 'object', properties: { deleted: { type: 'boolean' } } },
  Error: {
    type: 'object',
    properties: {
      code: {
        type: 'string',
        description:
          'the gRPC status name: INVALID_ARGUMENT, NOT_FOUND, ABORTED, RESOURCE_EXHAUSTED, UNAVAILABLE, ...',
      },
      message: { type: 'string', description: 'starts with the field at fault' },
    },
  },
};

const ref = (name: keyof typeof schemas) => ({ $ref: `#/components/schemas/${name}` });
const json = (name: keyof typeof schemas) => ({
  content: { 'application/json': { schema: ref(name) } },
});
const errors = Object.fromEntries(
  [
    ['400', 'INVALID_ARGUMENT: a malformed field'],
    [
      '401',
      'UNAUTHENTICATED: no, malformed or unknown bearer token (when tokens are configured), or no valid client certificate (mutual TLS)',
    ],
    ['403', 'PERMISSION_DENIED: the token does not grant the permission the call needs'],
    ['404', 'NOT_FOUND: absent or expired'],
    ['409', 'ABORTED: expected_version differs'],
    ['413', 'RESOURCE_EXHAUSTED: over SESSION_MAX_BYTES'],
    ['503', 'UNAVAILABLE: the store cannot be reached'],
  ].map(([status, description]) => [status, { description, ...json('Error') }]),
);
const key = {
  name: 'key',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,128}$' },
};
const text = (description: string) => ({ description, content: { 'text/plain': {} } });

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'sessionmanager',
    version: '1',
    description:
      'The session API of sessionmanager over HTTP/JSON (proto3 JSON mapping of sessionmanager.v1), plus probes and metrics.',
  },
  paths: {
    '/v1/sessions': {
      post: {
        operationId: 'SetSession',
        requestBody: json('SetSessionRequest'),
        responses: { '200': { description: 'stored', ...json('SetSessionResponse') }, ...errors },
      },
    },
    '/v1/sessions/{key}': {
      get: {
        operationId: 'GetSession',
        parameters: [key, { name: 'touch', in: 'query', schema: { type: 'boolean' } }],
        responses: { '200': { description: 'the session', ...json('SessionData') }, ...errors },
      },
      patch: {
        operationId: 'UpdateSession',
        parameters: [key],
        requestBody: json('UpdateSessionRequest'),
        responses: {
          '200': { description: 'the updated session', ...json('SessionData') },
          ...errors,
        },
      },
      delete: {
        operationId: 'DeleteSession',
        parameters: [key],
        responses: {
          '200': { description: 'deleted or absent', ...json('DeleteSessionResponse') },
          ...errors,
        },
      },
    },
    '/v1/sessions/{key}:touch': {
      post: {
        operationId: 'TouchSession',
        parameters: [key],
        requestBody: json('TouchSessionRequest'),
        responses: {
          '200': { description: 'extended', ...json('TouchSessionResponse') },
          ...errors,
        },
      },
    },
    '/v1/sessions/{key}:consume': {
      post: {
        operationId: 'ConsumeSession',
        parameters: [key],
        responses: {
          '200': { description: 'the session, now deleted', ...json('SessionData') },
          ...errors,
        },
      },
    },
    '/v1/sessions/{key}:rotate': {
      post: {
        operationId: 'RotateSessionKey',
        description:
          'Moves the session to a new server-generated key and removes the old key, atomically; data, version and expiry are unchanged. Not safe to retry.',
        parameters: [key],
        responses: {
          '200': { description: 'the new key', ...json('RotateSessionKeyResponse') },
          ...errors,
        },
      },
    },
    '/healthz': {
      get: {
        operationId: 'Healthz',
        security: [],
        responses: { '200': { description: 'the process is alive' } },
      },
    },
    '/readyz': {
      get: {
        operationId: 'Readyz',
        security: [],
        responses: {
          '200': { description: 'the store answers PING' },
          '503': { description: 'the store does not answer' },
        },
      },
    },
    '/metrics': {
      get: {
        operationId: 'Metrics',
        security: [],
        responses: { '200': text('Prometheus text format') },
      },
    },
    '/openapi.json': {
      get: {
        operationId: 'OpenApi',
        security: [],
        responses: { '200': { description: 'this document' } },
      },
    },
  },
  components: {
    schemas,
    securitySchemes: {
      bearer: {
        type: 'http',
        scheme: 'bearer',
        description:
          'Required on /v1/sessions routes when the server has AUTH_TOKENS; GET without touch needs "read", everything else "write".',
      },
    },
  },
  // Either no credentials (tokens not configured) or a bearer token.
  security: [{}, { bearer: [] }],
};
