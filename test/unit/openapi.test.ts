import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { openApiDocument } from '../../src/http/openapi.ts';
import { METHODS } from '../../src/rpc/methods.ts';

const run = promisify(execFile);
type Operation = {
  operationId: string;
  summary?: string;
  responses: Record<string, unknown>;
  requestBody?: unknown;
  parameters?: Array<{ name: string; in: string }>;
};
const operations = Object.values(openApiDocument.paths).flatMap(
  (item) => Object.values(item) as Operation[],
);
const byId = new Map(operations.map((operation) => [operation.operationId, operation]));

describe('the OpenAPI document', () => {
  it('passes `redocly lint` with the recommended rules, without a warning', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'openapi-'));
    try {
      const file = join(dir, 'openapi.json');
      writeFileSync(file, JSON.stringify(openApiDocument));
      const redocly = join(import.meta.dirname, '../../node_modules/.bin/redocly');
      // No telemetry and no update check: the lint runs offline.
      const { stdout, stderr } = await run(
        redocly,
        ['lint', '--extends=recommended', '--format=json', file],
        {
          env: {
            ...process.env,
            REDOCLY_TELEMETRY: 'off',
            REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true',
          },
          timeout: 60_000,
        },
      ).catch((error: { stdout: string; stderr: string }) => error);
      const report = JSON.parse(stdout) as { totals: Record<string, number>; problems: unknown[] };
      assert.deepEqual(
        { errors: report.totals.errors, warnings: report.totals.warnings },
        { errors: 0, warnings: 0 },
        `${JSON.stringify(report.problems, null, 1)}\n${stderr}`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('lists every method of the table, with a summary and only the errors that call can return', () => {
    for (const method of METHODS) {
      const operation = byId.get(method.name);
      assert.ok(operation, method.name);
      assert.ok(operation.summary);
    }
    const statuses = (id: string) => Object.keys(byId.get(id)?.responses ?? {}).sort();
    const every = ['200', '400', '401', '403', '500', '503'];
    const plus = (...codes: string[]) => [...every, ...codes].sort();
    // 422: an Idempotency-Key reused for another request, on every write.
    assert.deepEqual(statuses('SetSession'), plus('413', '422'));
    assert.deepEqual(statuses('GetSession'), plus('404'));
    assert.deepEqual(statuses('UpdateSession'), plus('404', '409', '413', '422'));
    assert.deepEqual(statuses('TouchSession'), plus('404', '422'));
    assert.deepEqual(statuses('DeleteSession'), plus('409', '422'));
    assert.deepEqual(statuses('ConsumeSession'), plus('404', '409', '422'));
    assert.deepEqual(statuses('RotateSessionKey'), plus('404', '422'));
    assert.deepEqual(statuses('ListSessions'), plus());
    assert.deepEqual(statuses('RevokeSessions'), plus('422'));
    const headers = (id: string) =>
      (byId.get(id)?.parameters ?? [])
        .filter((parameter) => parameter.in === 'header')
        .map((parameter) => parameter.name);
    assert.deepEqual(headers('SetSession'), ['Idempotency-Key']);
    assert.deepEqual(headers('GetSession'), []);
    assert.deepEqual(headers('RevokeSessions'), ['Idempotency-Key']);
    assert.deepEqual(headers('ListSessions'), []);
  });

  it('marks what a reply always holds as required, and request bodies reject unknown fields', () => {
    const schemas = openApiDocument.components.schemas as Record<
      string,
      { required?: string[]; additionalProperties?: boolean; properties: object }
    >;
    assert.deepEqual(schemas.SessionData?.required, [
      'sessionKey',
      'fleetListRequest',
      'fleetListResponse',
      'attributes',
      'ttlSeconds',
      'expiresAtUnixMs',
      'version',
      'createdAtUnixMs',
    ]);
    assert.deepEqual(schemas.Error?.required, ['code', 'message']);
    assert.equal(schemas.UpdateSessionRequest?.additionalProperties, false);
    assert.ok('expectedVersion' in (schemas.UpdateSessionRequest?.properties ?? {}));
    assert.ok('owner' in (schemas.SetSessionRequest?.properties ?? {}));
    const listed = schemas.ListSessionsResponse?.properties as {
      sessions: { items: { required: string[] } };
    };
    assert.deepEqual(listed.sessions.items.required, [
      'handle',
      'createdAtUnixMs',
      'expiresAtUnixMs',
      'version',
      'ttlSeconds',
      'sizeBytes',
      'fleetListRequest',
      'fleetListResponse',
      'attributes',
    ]);
  });

  it('keeps owner ids out of URLs: the owner routes take them in a POST body', () => {
    const paths = openApiDocument.paths as Record<string, Record<string, Operation>>;
    for (const [path, id] of [
      ['/v1/owner-sessions:list', 'ListSessions'],
      ['/v1/owner-sessions:revoke', 'RevokeSessions'],
    ] as const) {
      const operation = paths[path]?.post;
      assert.equal(operation?.operationId, id, path);
      assert.ok(operation.requestBody, `${id} has a body`);
      const inUrl = (operation.parameters ?? []).filter((parameter) => parameter.in !== 'header');
      assert.deepEqual(inUrl, [], `${id} takes nothing in its URL`);
    }
  });
});
