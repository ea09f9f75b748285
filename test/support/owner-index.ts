import assert from 'node:assert/strict';
import { tagOf } from '../../src/session-keys.ts';
import {
  Compact,
  compactKey,
  indexKey,
  legacyKey,
  ownerStem,
  sessionStem,
} from '../../src/store/redis/keys.ts';
import type { StoreProbe } from './owner-property.ts';

/** One command, sent to the node that holds `key` (on Cluster, its slot's master). */
export type RedisCommand = (key: string, args: string[]) => Promise<unknown>;

/**
 * How far apart the expiry times of an index and its longest-lived session
 * may lie when one script set the first from the second's PTTL: the time the
 * script itself takes.
 */
const SAME_SCRIPT_MS = 50;

/**
 * The owner property test's look into Redis (keys.ts, lua/compact.lua): an
 * owner's index is a sorted set `<prefix>o:{<tag>}<digest>` of its sessions'
 * handles, and a session's hash is `<prefix>S:{<tag>}<handle>`.
 */
export function redisProbe(command: RedisCommand, prefix: string): StoreProbe {
  const exists = async (key: string) => (await command(key, ['EXISTS', key])) === 1;
  const expiresAt = async (key: string) => Number(await command(key, ['PEXPIRETIME', key]));
  return {
    async expire(sessionKey) {
      // What Redis's own expiry does, with no script running: the hash goes, and
      // the owner's index with it when no other session it lists is left (an
      // index expires with its longest-lived session).
      const key = compactKey(prefix, sessionKey);
      const owner = await command(key, ['HGET', key, Compact.owner]);
      await command(key, ['DEL', key]);
      const tag = tagOf(sessionKey);
      if (typeof owner !== 'string' || tag === undefined) return;
      const index = ownerStem(prefix, tag) + owner;
      const stem = sessionStem(prefix, tag);
      const listed = (await command(index, ['ZRANGE', index, '0', '-1'])) as string[];
      const left = await Promise.all(listed.map((handle) => exists(stem + handle)));
      if (!left.includes(true)) await command(index, ['DEL', index]);
    },

    async checkIndex(owner, handles) {
      const index = indexKey(prefix, owner);
      const listed = await command(index, ['ZRANGE', index, '0', '-1']);
      assert.deepEqual(listed, handles, 'the index holds exactly the live sessions, oldest first');
      if (handles.length === 0) {
        assert.equal(await exists(index), false, 'an owner without sessions has no index key');
        return;
      }
      const stem = sessionStem(prefix, owner.tag);
      const ends = await Promise.all(handles.map((handle) => expiresAt(stem + handle)));
      const last = Math.max(...ends);
      const indexEnd = await expiresAt(index);
      assert.ok(
        Math.abs(indexEnd - last) <= SAME_SCRIPT_MS,
        `the index expires at ${indexEnd}, its longest-lived session at ${last}`,
      );
    },

    async checkKeys(used, live) {
      for (const sessionKey of used) {
        const handle = compactKey(prefix, sessionKey).slice(-22);
        assert.equal(
          await exists(compactKey(prefix, sessionKey)),
          live.has(sessionKey),
          `the hash of session ${handle} ${live.has(sessionKey) ? 'is missing' : 'is left behind'}`,
        );
        assert.equal(await exists(legacyKey(prefix, sessionKey)), false, 'a legacy-layout copy');
      }
    },
  };
}
