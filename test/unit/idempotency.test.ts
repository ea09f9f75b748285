import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { claimOf, derivedKeys, idempotencyKey } from '../../src/idempotency.ts';

const request = (attributes: Array<[string, string]>, ttlSeconds = 0) => ({
  sessionKey: '',
  fleetListRequest: Buffer.from('q'),
  fleetListResponse: Buffer.alloc(1024, 7),
  attributes: new Map(attributes.map(([name, value]) => [name, Buffer.from(value)])),
  ttlSeconds,
});

describe('idempotency keys', () => {
  it('takes 1-255 visible ASCII characters, once; names the header otherwise', () => {
    assert.equal(idempotencyKey(undefined), undefined);
    assert.equal(idempotencyKey('booking-42/consume'), 'booking-42/consume');
    assert.equal(idempotencyKey(['a']), 'a');
    for (const bad of ['', 'has space', 'é', 'x'.repeat(256), ['a', 'b']]) {
      assert.throws(
        () => idempotencyKey(bad),
        (error: unknown) =>
          error instanceof SessionError &&
          error.code === ErrorCode.InvalidArgument &&
          error.message.startsWith('idempotency-key:'),
        JSON.stringify(bad),
      );
    }
  });

  it('a claim is per caller and key; its fingerprint is per method and request, in any map order', () => {
    const base = claimOf(
      '',
      'k',
      'SetSession',
      request([
        ['a', '1'],
        ['b', '2'],
      ]),
    );
    assert.deepEqual(
      claimOf(
        '',
        'k',
        'SetSession',
        request([
          ['b', '2'],
          ['a', '1'],
        ]),
      ),
      base,
    );
    assert.notEqual(claimOf('caller-b', 'k', 'SetSession', request([])).id, base.id);
    assert.notEqual(claimOf('', 'k2', 'SetSession', request([])).id, base.id);
    for (const other of [
      claimOf(
        '',
        'k',
        'UpdateSession',
        request([
          ['a', '1'],
          ['b', '2'],
        ]),
      ),
      claimOf(
        '',
        'k',
        'SetSession',
        request([
          ['a', '1'],
          ['b', '3'],
        ]),
      ),
      claimOf('', 'k', 'SetSession', request([['a', '1']])),
      claimOf(
        '',
        'k',
        'SetSession',
        request(
          [
            ['a', '1'],
            ['b', '2'],
          ],
          60,
        ),
      ),
    ]) {
      assert.equal(other.id, base.id, 'the same caller and key');
      assert.notEqual(other.fingerprint, base.fingerprint);
    }
    assert.ok(!base.id.includes('k\n'), 'neither the key nor the caller is kept');
  });

  it('derived keys are a fixed sequence per secret and claim, 256 bits each', () => {
    const claim = claimOf('', 'k', 'RotateSessionKey', 'session');
    const secret = Buffer.alloc(32, 1);
    const first = derivedKeys(secret, claim);
    const again = derivedKeys(secret, claim);
    const keys = [first(), first(), first()];
    assert.deepEqual([again(), again(), again()], keys);
    assert.equal(new Set(keys).size, 3);
    for (const key of keys) assert.match(key, /^[A-Za-z0-9_-]{43}$/);
    assert.notEqual(derivedKeys(Buffer.alloc(32, 2), claim)(), keys[0]);
  });
});
