import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { protoPath } from './scripted-server.ts';

test('the packaged proto is a byte-identical copy of the contract', () => {
  const contract = new URL('../../proto/sessionmanager/v1/sessionmanager.proto', import.meta.url);
  assert.ok(
    readFileSync(protoPath).equals(readFileSync(contract)),
    'client/proto is stale: cp proto/sessionmanager/v1/sessionmanager.proto client/proto/sessionmanager/v1/',
  );
});
