import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { createLogger } from '../../src/logger.ts';
import { RedisStore } from '../../src/store/redis/redis-store.ts';
import {
  ACL_PASSWORD,
  ACL_USER,
  aclDenials,
  assertRefused,
  CLUSTER_COMMANDS,
  createAclUser,
  SENTINEL_COMMANDS,
  SERVICE_COMMANDS,
  SETINFO_COMMANDS,
} from '../support/acl.ts';
import { rawClient } from '../support/grpc.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { redisConfig, untilAnswers } from '../support/redis-config.ts';
import { startServer } from '../support/server.ts';
import { draft, LIMITS, storeContract, uniqueKey } from '../support/store-contract.ts';

/**
 * The least-privilege ACL docs/security.md documents, on a real redis-server: the
 * whole store contract passes as that user, nothing it did was denied, and
 * what lies outside the ACL is refused.
 */

const SECURITY_DOC = new URL('../../docs/security.md', import.meta.url);

let redis: TestRedis;
let store: RedisStore;
const prefix = 'sessionmanager:';

const aclConfig = (keyPrefix: string) => ({
  ...redisConfig(redis.port, keyPrefix),
  username: ACL_USER,
  password: ACL_PASSWORD,
});

before(async () => {
  redis = await startRedis();
  createAclUser(redis.cli, prefix);
  store = new RedisStore(aclConfig(prefix), LIMITS, createLogger('silent'));
  await untilAnswers(store, 'the store to answer as the ACL user');
});

after(async () => {
  await store?.close();
  await redis?.dispose();
});

storeContract('redis store as the least-privilege ACL user', () => ({ store, now: Date.now }));

describe('the documented Redis ACL', () => {
  it('docs/security.md documents exactly these rules', () => {
    const doc = readFileSync(SECURITY_DOC, 'utf8');
    const rules = [
      'resetkeys',
      '~sessionmanager:*',
      'resetchannels',
      '-@all',
      ...SERVICE_COMMANDS,
      ...SETINFO_COMMANDS,
    ];
    assert.ok(
      doc.includes(`ACL SETUSER sessionmanager on >PASSWORD ${rules.join(' ')}\n`),
      'docs/security.md: the standalone/Sentinel ACL line differs from test/support/acl.ts',
    );
    assert.ok(
      doc.includes(`${rules.join(' ')} ${CLUSTER_COMMANDS.join(' ')}\n`),
      'docs/security.md: the Cluster ACL line differs from test/support/acl.ts',
    );
  });

  it('docs/security.md documents the sentinel user', () => {
    const doc = readFileSync(SECURITY_DOC, 'utf8');
    const rules = [
      'resetchannels',
      'allchannels',
      '-@all',
      ...SENTINEL_COMMANDS,
      ...SETINFO_COMMANDS,
    ];
    assert.ok(
      doc.includes(`ACL SETUSER sessionmanager on >PASSWORD ${rules.join(' ')}\n`),
      'docs/security.md: the sentinel ACL line differs from test/support/acl.ts',
    );
  });

  it('the contract suite needed nothing outside it: ACL LOG is empty', () => {
    assert.deepEqual(aclDenials(redis.cli), []);
  });

  it('refuses commands, keys and channels outside it', async () => {
    const database = 5;
    const refused: string[][] = [
      ['KEYS', '*'],
      ['SCAN', '0'],
      ['FLUSHALL'],
      ['FLUSHDB'],
      ['CONFIG', 'GET', 'maxmemory'],
      ['INFO'],
      ['CLIENT', 'LIST'],
      ['SCRIPT', 'FLUSH'],
      ['ACL', 'LIST'],
      ['SET', `${prefix}x`, '1'],
      ['GET', `${prefix}x`],
      ['RENAME', `${prefix}a`, `${prefix}b`],
      ['HGETALL', 'other:x'],
      ['DEL', 'other:x'],
      ['SUBSCRIBE', 'news'],
      ['EVAL', "return redis.call('SET', KEYS[1], 1)", '1', `${prefix}x`],
      ['EVAL', "return redis.call('HGETALL', KEYS[1])", '1', 'other:x'],
      ['EVAL', "return redis.call('FLUSHALL')", '0'],
      ['EVAL', "return redis.call('HGETALL', 'other:y')", '0'],
    ];
    for (const args of refused) await assertRefused(redis.port, database, args);
  });

  it('a store whose prefix lies outside the key pattern is refused', async () => {
    const outside = new RedisStore(aclConfig('other:'), LIMITS, createLogger('silent'));
    try {
      await untilAnswers(outside, 'the outside store to connect');
      await assert.rejects(outside.put(uniqueKey(), draft(), Date.now()), (error: unknown) => {
        assert.ok(error instanceof SessionError);
        assert.equal(error.code, ErrorCode.Internal);
        assert.match(String((error.cause as Error).message), /^NOPERM/);
        return true;
      });
    } finally {
      await outside.close();
    }
  });

  it('the service runs as that user with REDIS_USERNAME and REDIS_PASSWORD', async () => {
    redis.cli('ACL', 'LOG', 'RESET');
    const server = await startServer({
      redisPort: redis.port,
      env: { REDIS_USERNAME: ACL_USER, REDIS_PASSWORD: ACL_PASSWORD },
    });
    const client = rawClient(server.address);
    try {
      assert.equal(await client.health(), 'SERVING');
      const { session_key } = await client.call('SetSession', { ttl_seconds: 60 });
      const rotated = await client.call('RotateSessionKey', { session_key });
      await client.call('GetSession', { session_key: rotated.session_key, touch: true });
      await client.call('ConsumeSession', { session_key: rotated.session_key });
      assert.deepEqual(aclDenials(redis.cli), []);
    } finally {
      client.close();
      await server.close();
    }
  });
});
