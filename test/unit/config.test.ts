import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ConfigError, loadConfig, parseDuration } from '../../src/config.ts';

describe('config', () => {
  it('defaults: port 6027, 15 minute ttl, 24 hour lifetime, 1 MiB, memory store', () => {
    const config = loadConfig({});
    assert.equal(config.port, 6027);
    assert.equal(config.session.defaultTtlSeconds, 900);
    assert.equal(config.session.maxLifetimeMs, 24 * 3_600_000);
    assert.equal(config.session.maxBytes, 1024 * 1024);
    assert.equal(config.session.idempotencyTtlMs, 10 * 60_000);
    assert.equal(config.redis, undefined);
    assert.ok(Object.isFrozen(config));
  });

  it('GRPC_TRANSPORT defaults to lean; WORKERS defaults to 1; auto means the cores with Redis and 1 without', () => {
    assert.equal(loadConfig({}).transport, 'lean');
    assert.equal(loadConfig({ GRPC_TRANSPORT: 'grpc-js' }).transport, 'grpc-js');
    assert.equal(loadConfig({}).workers, 1);
    assert.equal(loadConfig({ REDIS_HOST: 'h' }).workers, 1);
    assert.equal(loadConfig({ REDIS_HOST: 'h', WORKERS: 'auto' }).workers, availableParallelism());
    assert.equal(loadConfig({ WORKERS: 'auto' }).workers, 1);
    assert.equal(loadConfig({ REDIS_HOST: 'h', WORKERS: '3' }).workers, 3);
    assert.throws(
      () => loadConfig({ WORKERS: '2' }),
      /WORKERS="2": more than one worker needs REDIS_HOST/,
    );
    assert.throws(() => loadConfig({ GRPC_TRANSPORT: 'fast' }), /GRPC_TRANSPORT="fast"/);
  });

  it('REDIS_HOST selects Redis with the documented defaults', () => {
    const config = loadConfig({ REDIS_HOST: 'redis.internal' });
    assert.deepEqual(
      { ...config.redis },
      {
        topology: { kind: 'standalone' },
        host: 'redis.internal',
        port: 6379,
        database: 5,
        username: undefined,
        password: undefined,
        tls: false,
        keyPrefix: 'sessionmanager:',
        layout: 'compact',
        payloadPieces: true,
        commandTimeoutMs: 1000,
        connectTimeoutMs: 2000,
      },
    );
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: '7000',
      SESSION_TTL: '900s',
      SESSION_MAX_TTL: '2h',
      SESSION_MAX_LIFETIME: '1h',
      SESSION_MAX_BYTES: '2048',
      REDIS_HOST: 'h',
      REDIS_PORT: '6380',
      REDIS_DATABASE: '0',
      REDIS_USERNAME: 'svc',
      REDIS_PASSWORD: 'secret',
      REDIS_TLS: 'true',
      REDIS_KEY_PREFIX: 'sm:',
    });
    assert.equal(config.port, 7000);
    assert.equal(config.session.defaultTtlSeconds, 900);
    assert.equal(config.session.maxTtlSeconds, 7200);
    assert.equal(config.session.maxLifetimeMs, 3_600_000);
    assert.equal(config.redis?.database, 0);
    assert.equal(config.redis?.tls, true);
    assert.equal(config.redis?.username, 'svc');
    assert.equal(config.redis?.keyPrefix, 'sm:');
  });

  it('an empty variable counts as unset', () => {
    assert.equal(loadConfig({ REDIS_HOST: '', PORT: '' }).redis, undefined);
  });

  for (const [name, value] of [
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['SESSION_TTL', '15 minutes'],
    ['SESSION_TTL', '0s'],
    ['REDIS_DATABASE', '-1'],
    ['REDIS_TLS', 'yes'],
    ['LOG_LEVEL', 'loud'],
    ['SESSION_MAX_BYTES', '1.5'],
  ] as const) {
    it(`rejects ${name}=${value} with a message naming the variable and the value`, () => {
      assert.throws(
        () => loadConfig({ [name]: value }),
        (error: unknown) =>
          error instanceof ConfigError &&
          error.message.includes(name) &&
          error.message.includes(JSON.stringify(value)),
      );
    });
  }

  it('IDEMPOTENCY_TTL is a duration; REDIS_KEY_PREFIX may hold braces only as a hash tag', () => {
    assert.equal(loadConfig({ IDEMPOTENCY_TTL: '1h' }).session.idempotencyTtlMs, 3_600_000);
    assert.throws(() => loadConfig({ IDEMPOTENCY_TTL: '10ms' }), /IDEMPOTENCY_TTL="10ms"/);
    const prefix = (value: string) =>
      loadConfig({ REDIS_HOST: 'redis', REDIS_KEY_PREFIX: value }).redis?.keyPrefix;
    assert.equal(prefix('{sm}:'), '{sm}:');
    for (const bad of ['sm{:', 'sm}:', '{}sm:']) {
      assert.throws(() => prefix(bad), /REDIS_KEY_PREFIX=.*hash tag/, bad);
    }
  });

  it('rejects a default ttl above the maximum ttl', () => {
    assert.throws(
      () => loadConfig({ SESSION_TTL: '2h', SESSION_MAX_TTL: '1h' }),
      /SESSION_TTL="2h".*SESSION_MAX_TTL/,
    );
  });

  it('durations accept s, m, h, ms and bare seconds', () => {
    assert.equal(parseDuration('900s'), 900_000);
    assert.equal(parseDuration('15m'), 900_000);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('250ms'), 250);
    assert.equal(parseDuration('30'), 30_000);
    assert.equal(parseDuration('1.5h'), undefined);
    assert.equal(parseDuration('-1s'), undefined);
  });

  it('parseDuration never throws and returns a safe integer or undefined', () => {
    fc.assert(
      fc.property(fc.string(), (text) => {
        const ms = parseDuration(text);
        return ms === undefined || (Number.isSafeInteger(ms) && ms >= 0);
      }),
    );
  });

  describe('Redis topologies', () => {
    const rejects = (env: Record<string, string>, ...fragments: RegExp[]) =>
      assert.throws(
        () => loadConfig(env),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, String(error));
          for (const fragment of fragments) assert.match(error.message, fragment);
          return true;
        },
      );

    it('REDIS_SENTINELS with REDIS_SENTINEL_MASTER selects Sentinel; database 5 still applies', () => {
      const config = loadConfig({
        REDIS_SENTINELS: '10.0.0.1:26379, sentinel-b:26380,[::1]:26381',
        REDIS_SENTINEL_MASTER: 'sessions',
        REDIS_SENTINEL_USERNAME: 'watcher',
        REDIS_SENTINEL_PASSWORD: 's3cret',
        REDIS_PASSWORD: 'data',
      });
      assert.deepEqual(config.redis?.topology, {
        kind: 'sentinel',
        sentinels: [
          { host: '10.0.0.1', port: 26379 },
          { host: 'sentinel-b', port: 26380 },
          { host: '::1', port: 26381 },
        ],
        masterName: 'sessions',
        sentinelUsername: 'watcher',
        sentinelPassword: 's3cret',
      });
      assert.equal(config.redis?.database, 5);
      assert.equal(config.redis?.password, 'data');
      assert.ok(Object.isFrozen(config.redis?.topology));
    });

    it('REDIS_CLUSTER_NODES selects Cluster with database 0', () => {
      const config = loadConfig({ REDIS_CLUSTER_NODES: 'a:7000,b:7001' });
      assert.deepEqual(config.redis?.topology, {
        kind: 'cluster',
        nodes: [
          { host: 'a', port: 7000 },
          { host: 'b', port: 7001 },
        ],
      });
      assert.equal(config.redis?.database, 0);
      assert.equal(
        loadConfig({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_DATABASE: '0' }).redis?.database,
        0,
      );
    });

    it('Cluster with an explicit non-zero REDIS_DATABASE says Cluster has only database 0', () => {
      rejects(
        { REDIS_CLUSTER_NODES: 'a:7000', REDIS_DATABASE: '5' },
        /REDIS_DATABASE="5"/,
        /Cluster has only database 0/,
      );
    });

    it('conflicting topologies are refused with the reason', () => {
      rejects(
        { REDIS_HOST: 'h', REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm' },
        /REDIS_HOST and REDIS_SENTINELS/,
        /unset REDIS_HOST/,
      );
      rejects(
        { REDIS_HOST: 'h', REDIS_CLUSTER_NODES: 'a:7000' },
        /REDIS_HOST and REDIS_CLUSTER_NODES/,
      );
      rejects(
        { REDIS_SENTINELS: 's:26379', REDIS_SENTINEL_MASTER: 'm', REDIS_CLUSTER_NODES: 'a:7000' },
        /REDIS_SENTINELS and REDIS_CLUSTER_NODES/,
      );
      rejects({ REDIS_CLUSTER_NODES: 'a:7000', REDIS_PORT: '6380' }, /REDIS_PORT/, /standalone/);
    });

    it('Sentinel settings must come together', () => {
      rejects({ REDIS_SENTINELS: 's:26379' }, /without REDIS_SENTINEL_MASTER/);
      rejects(
        { REDIS_SENTINEL_MASTER: 'm' },
        /REDIS_SENTINEL_MASTER is set without REDIS_SENTINELS/,
      );
      rejects(
        { REDIS_HOST: 'h', REDIS_SENTINEL_PASSWORD: 'p' },
        /REDIS_SENTINEL_PASSWORD is set without/,
      );
    });

    for (const bad of ['a', 'a:', ':7000', 'a:0', 'a:70000', 'a:7000,,b:7001', 'a:7000;b:7001']) {
      it(`rejects the node list ${JSON.stringify(bad)} naming the variable`, () => {
        rejects({ REDIS_CLUSTER_NODES: bad }, /REDIS_CLUSTER_NODES=/, /expected host:port/);
        rejects({ REDIS_SENTINELS: bad, REDIS_SENTINEL_MASTER: 'm' }, /REDIS_SENTINELS=/);
      });
    }
  });
});
