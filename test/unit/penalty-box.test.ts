import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PenaltyBox } from '../../src/wire/http2/penalty-box.ts';

describe('penalty box', () => {
  it('delays an address 100 ms after its first strike, doubling per strike up to the cap', () => {
    const box = new PenaltyBox(1000);
    assert.equal(box.delayFor('10.0.0.1', 0), 0);
    const delays = [];
    for (let i = 0; i < 6; i++) {
      box.strike('10.0.0.1', i);
      delays.push(box.delayFor('10.0.0.1', i));
    }
    assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
    assert.equal(box.delayFor('10.0.0.2', 5), 0, 'other addresses are not touched');
  });

  it('forgets an address 10 s after its last strike, and starts over', () => {
    const box = new PenaltyBox(2000);
    box.strike('a', 0);
    box.strike('a', 1000);
    assert.equal(box.delayFor('a', 10_999), 200);
    assert.equal(box.delayFor('a', 11_000), 0);
    box.strike('a', 11_000);
    assert.equal(box.delayFor('a', 11_000), 100);
  });

  it('keeps at most 10,000 addresses, dropping the one struck longest ago', () => {
    const box = new PenaltyBox(2000);
    for (let i = 0; i <= 10_000; i++) box.strike(`addr-${i}`, 1);
    assert.equal(box.delayFor('addr-0', 1), 0);
    assert.equal(box.delayFor('addr-1', 1), 100);
    assert.equal(box.delayFor('addr-10000', 1), 100);
  });

  it('does nothing when turned off', () => {
    const box = new PenaltyBox(0);
    box.strike('a', 0);
    assert.equal(box.delayFor('a', 0), 0);
  });
});
