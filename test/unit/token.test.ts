import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { createTokenGenerator } from '../../src/token.ts';

describe('session key generator', () => {
  it('makes 43-character base64url keys (256 bits) that the key rule accepts', () => {
    const next = createTokenGenerator();
    for (let i = 0; i < 1000; i++) {
      const key = next();
      assert.match(key, /^[A-Za-z0-9_-]{43}$/);
      assert.equal(Buffer.from(key, 'base64url').length, 32);
    }
  });

  it('never repeats across pool refills, and bits are balanced', () => {
    const next = createTokenGenerator();
    const seen = new Set<string>();
    let ones = 0;
    const count = 5000;
    for (let i = 0; i < count; i++) {
      const key = next();
      seen.add(key);
      for (const byte of Buffer.from(key, 'base64url')) {
        for (let b = byte; b; b >>= 1) ones += b & 1;
      }
    }
    assert.equal(seen.size, count);
    const ratio = ones / (count * 256);
    assert.ok(ratio > 0.49 && ratio < 0.51, `share of one bits ${ratio}`);
  });
});
