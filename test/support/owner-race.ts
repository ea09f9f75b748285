import assert from 'node:assert/strict';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { ownerRef, sessionHandle, withTag } from '../../src/session-keys.ts';
import type { OwnerLimitPolicy, SessionStore } from '../../src/store/store.ts';
import { createTokenGenerator } from '../../src/token.ts';
import type { StoreProbe } from './owner-property.ts';
import { draft, uniqueKey } from './store-contract.ts';

export interface OwnerRace {
  /** The writers' stores: each its own connection where the backend has them, all on one backend. */
  readonly stores: readonly SessionStore[];
  readonly limit: number;
  readonly policy: OwnerLimitPolicy;
  /** Sessions the owner holds before the race. */
  readonly held: number;
  readonly writers: number;
  readonly probe?: StoreProbe;
}

/**
 * `writers` concurrent SetSessions of new sessions of one owner that holds
 * `held` of its `limit`: afterwards the owner holds exactly its limit, the
 * sessions evicted or refused add up, no other error occurred, and the
 * owner's listing (and, with a probe, its index) is exactly the set of its
 * sessions that are still there. Returns the figures.
 */
export async function raceOwner(race: OwnerRace) {
  const { stores, limit, policy, held, writers } = race;
  const first = stores[0] as SessionStore;
  const owner = ownerRef(await first.idempotencySecret(), `racer-${uniqueKey()}`);
  const generate = createTokenGenerator();
  const keyOf = () => withTag(generate(), owner.tag);
  const before = Array.from({ length: held }, keyOf);
  for (const key of before) await first.put(key, draft({ owner }), Date.now());

  const raced = Array.from({ length: writers }, keyOf);
  const results = await Promise.allSettled(
    raced.map((key, i) =>
      (stores[i % stores.length] as SessionStore).put(key, draft({ owner }), Date.now()),
    ),
  );
  const stored = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
  const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
  for (const error of errors) {
    assert.ok(error instanceof SessionError, `a writer failed with ${String(error)}`);
    assert.equal(error.code, ErrorCode.TooLarge);
    assert.match(error.message, /^owner: /);
  }
  const evicted = stored.reduce((sum, s) => sum + s.evicted, 0);
  const figures = {
    policy,
    limit,
    held,
    writers,
    stored: stored.length,
    refused: errors.length,
    evicted,
  };

  const now = Date.now();
  const live: string[] = [];
  for (const key of [...before, ...raced]) if (await first.get(key, now, false)) live.push(key);
  const listed = await first.listOwned(owner, now, false);
  assert.deepEqual(
    listed.map((session) => session.handle).sort(),
    live.map(sessionHandle).sort(),
    `the listing is the owner's sessions still there: ${JSON.stringify(figures)}`,
  );
  await race.probe?.checkIndex(
    owner,
    listed.map((session) => session.handle),
  );
  assert.equal(live.length, limit, `the owner holds its limit: ${JSON.stringify(figures)}`);
  assert.equal(held + stored.length - evicted, live.length, 'stored less evicted is what is left');
  if (policy === 'evict-oldest') {
    assert.equal(errors.length, 0, 'evict-oldest refuses nothing');
    const evicting = stored.filter((s) => s.evicted > 0).length;
    assert.equal(evicting, writers - Math.max(0, limit - held), 'each put at the limit evicted');
    assert.ok(
      stored.every((s) => s.evicted <= 1),
      'one put evicts one session at most',
    );
    if (held === limit) {
      for (const key of before) assert.ok(!live.includes(key), 'the oldest went first');
    }
  } else {
    assert.equal(evicted, 0, 'refuse evicts nothing');
    assert.equal(stored.length, limit - held, 'the free places were taken, no more');
    assert.equal(errors.length, writers - stored.length, 'every other writer was refused');
    for (const key of before) assert.ok(live.includes(key), 'refuse keeps what the owner held');
  }
  return figures;
}
