import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { sessionHandle } from '../../src/session-keys.ts';

describe('session handles', () => {
  it('are the first 16 bytes of the key’s SHA-256, base64url, whatever the key', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 200 }), (key) => {
        const expected = createHash('sha256').update(key).digest().toString('base64url', 0, 16);
        assert.equal(sessionHandle(key), expected);
      }),
      { numRuns: 2000 },
    );
  });
});
