import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { codeFromStatus } from '../src/errors.ts';
import {
  createClient,
  SessionError,
  type SessionErrorCode,
  sessionErrorCodes,
} from '../src/index.ts';
import { type ScriptedServer, StatusError, startScriptedServer } from './scripted-server.ts';

const expected: Record<Exclude<keyof typeof status, 'OK'>, SessionErrorCode> = {
  CANCELLED: 'CANCELLED',
  UNKNOWN: 'UNKNOWN',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  NOT_FOUND: 'NOT_FOUND',
  ALREADY_EXISTS: 'CONFLICT',
  PERMISSION_DENIED: 'PERMISSION_DENIED',
  RESOURCE_EXHAUSTED: 'RESOURCE_EXHAUSTED',
  FAILED_PRECONDITION: 'IDEMPOTENCY_KEY_REUSED',
  ABORTED: 'CONFLICT',
  OUT_OF_RANGE: 'INVALID_ARGUMENT',
  UNIMPLEMENTED: 'INTERNAL',
  INTERNAL: 'INTERNAL',
  UNAVAILABLE: 'UNAVAILABLE',
  DATA_LOSS: 'INTERNAL',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
};
const statuses = Object.entries(expected) as [keyof typeof expected, SessionErrorCode][];

test('every gRPC status maps to its documented code', () => {
  for (const [name, code] of statuses) {
    assert.equal(codeFromStatus(status[name]), code, name);
  }
  assert.equal(codeFromStatus(99 as status), 'UNKNOWN');
});

test('the README documents every error code', () => {
  const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
  for (const code of sessionErrorCodes) {
    assert.match(readme, new RegExp(`^\\| \`${code}\` +\\|`, 'm'), code);
  }
});

describe('errors from the server', () => {
  let server: ScriptedServer;

  before(async () => {
    server = await startScriptedServer({
      // The deleted key names the status to fail with.
      DeleteSession: (request) => {
        const name = String(request.session_key) as keyof typeof expected;
        throw new StatusError(status[name], `scripted ${name}`);
      },
    });
  });
  after(() => server.close());

  test('arrive as SessionError with the code, the server message and the status as cause', async () => {
    const client = createClient({ address: server.address, retries: false });
    try {
      for (const [name, code] of statuses) {
        await assert.rejects(client.deleteSession({ sessionKey: name }), (error: unknown) => {
          assert.ok(error instanceof SessionError, name);
          assert.equal(error.name, 'SessionError');
          assert.equal(error.code, code, name);
          assert.equal(error.message, `scripted ${name}`);
          assert.equal((error.cause as { code?: unknown }).code, status[name]);
          return true;
        });
      }
    } finally {
      client.close();
    }
  });
});
