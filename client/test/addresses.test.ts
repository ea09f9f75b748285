// The `addresses` option: validation, the grpc-js targets it makes, and
// round robin with failover against two in-process scripted servers.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { type ClientOptions, createClient, type SessionClient } from '../src/index.ts';
import { type ResolvedOptions, resolveOptions } from '../src/options.ts';
import { type ScriptedServer, startScriptedServer } from './scripted-server.ts';

const ROUND_ROBIN = { loadBalancingConfig: [{ round_robin: {} }] };

function resolve(addresses: readonly string[]): ResolvedOptions<unknown, unknown, unknown> {
  return resolveOptions({ addresses });
}

function serviceConfig(resolved: ResolvedOptions<unknown, unknown, unknown>): unknown {
  const config = resolved.channelOptions['grpc.service_config'];
  return typeof config === 'string' ? JSON.parse(config) : config;
}

describe('addresses: targets', () => {
  test('IPv4 literals make one ipv4: target, balanced round robin by grpc-js', () => {
    const resolved = resolve(['10.0.0.1:6027', '10.0.0.2:7000', '10.0.0.3']);
    assert.deepEqual(resolved.targets, ['ipv4:10.0.0.1:6027,10.0.0.2:7000,10.0.0.3:6027']);
    assert.deepEqual(serviceConfig(resolved), ROUND_ROBIN);
  });

  test('IPv6 literals, in brackets, make one ipv6: target', () => {
    assert.deepEqual(resolve(['[::1]:6027', '[fd00::2]']).targets, [
      'ipv6:[::1]:6027,[fd00::2]:6027',
    ]);
  });

  test('one hostname makes a dns:/// target, balanced over every address it resolves to', () => {
    const resolved = resolve(['sessions-headless.default.svc:6027']);
    assert.deepEqual(resolved.targets, ['dns:///sessions-headless.default.svc:6027']);
    assert.deepEqual(serviceConfig(resolved), ROUND_ROBIN);
  });

  test('several hostnames, or mixed families, make one target per address', () => {
    assert.deepEqual(resolve(['a.example:6027', 'b.example:6028']).targets, [
      'dns:///a.example:6027',
      'dns:///b.example:6028',
    ]);
    assert.deepEqual(resolve(['10.0.0.1:1', '[::1]:2', 'c.example:3']).targets, [
      'ipv4:10.0.0.1:1',
      'ipv6:[::1]:2',
      'dns:///c.example:3',
    ]);
  });

  test('host/port and address keep grpc-js defaults (pick_first)', () => {
    assert.equal(
      resolveOptions({ host: '10.0.0.1' }).channelOptions['grpc.service_config'],
      undefined,
    );
    assert.deepEqual(resolveOptions({ address: 'dns:///x:1' }).targets, ['dns:///x:1']);
  });
});

describe('addresses: validation', () => {
  const rejects = (addresses: unknown, message: RegExp) =>
    assert.throws(
      () => createClient({ addresses: addresses as string[] }),
      (error: unknown) => error instanceof TypeError && message.test(error.message),
      `${JSON.stringify(addresses)} is rejected with ${message}`,
    );

  test('invalid entries fail at creation, naming the option and the entry', () => {
    rejects([], /addresses must be a non-empty array/);
    rejects('127.0.0.1:6027', /addresses must be a non-empty array/);
    rejects(['127.0.0.1:6027', 6028], /addresses\[1\].*not a string/);
    rejects([''], /addresses\[0\].*no host/);
    rejects([':6027'], /addresses\[0\].*no host/);
    rejects(['host:0'], /addresses\[0\].*port must be 1-65535/);
    rejects(['host:65536'], /addresses\[0\].*port must be 1-65535/);
    rejects(['host:port'], /addresses\[0\].*not a host and port/);
    rejects(['::1:6027'], /addresses\[0\].*IPv6 literal needs brackets/);
    rejects(['[not-ip]:6027'], /addresses\[0\].*not an IPv6 literal/);
    rejects(['dns:///sessions:6027'], /addresses\[0\].*use `address` for a raw gRPC target/);
    rejects(['bad host:1'], /addresses\[0\].*not a valid hostname/);
    rejects(['-bad:1'], /addresses\[0\].*not a valid hostname/);
    rejects(['a:1', 'b:2', 'A:1'], /addresses\[2\] repeats addresses\[0\] \(a:1\)/);
    rejects(['10.0.0.1', '10.0.0.1:6027'], /addresses\[1\] repeats addresses\[0\]/);
  });

  test('addresses cannot be combined with host, port or address', () => {
    for (const other of [{ host: 'a' }, { port: 1 }, { address: 'a:1' }]) {
      const options = { addresses: ['b:1'], ...other } as unknown as ClientOptions;
      assert.throws(() => createClient(options), /give addresses alone/);
    }
  });
});

describe('addresses: round robin and failover against two scripted servers', () => {
  let servers: ScriptedServer[];

  before(async () => {
    const handlers = {
      GetSession: () => ({ session_key: 'k', attributes: {}, version: 1 }),
      ConsumeSession: () => ({ session_key: 'k', attributes: {}, version: 1 }),
    };
    servers = [await startScriptedServer(handlers), await startScriptedServer(handlers)];
  });
  after(() => {
    for (const server of servers) server.close();
  });

  const share = (client: SessionClient) => async () => {
    const before = servers.map((server) => server.calls.length);
    for (let i = 0; i < 40; i++) {
      await client.getSession({ sessionKey: 'k' });
    }
    return servers.map((server, index) => server.calls.length - (before[index] ?? 0));
  };

  for (const [mode, host] of [
    ['IP literals (one grpc-js channel)', '127.0.0.1'],
    ['hostnames (a channel each, rotated by the client)', 'localhost'],
  ] as const) {
    test(`${mode}: calls alternate between both servers`, async () => {
      const client = createClient({ addresses: servers.map((server) => `${host}:${server.port}`) });
      try {
        await waitUntil(async () => {
          const counts = await share(client)();
          return counts.every((count) => count >= 15);
        });
      } finally {
        client.close();
      }
    });
  }

  test('after one server stops, retried calls all succeed on the other', async () => {
    const [first, second] = servers;
    assert.ok(first && second);
    const spare = await startScriptedServer({
      GetSession: () => ({ session_key: 'k', attributes: {}, version: 1 }),
    });
    const client = createClient({ addresses: [`localhost:${spare.port}`, second.address] });
    try {
      await waitUntil(async () => {
        await client.getSession({ sessionKey: 'k' });
        return spare.calls.length > 0 && second.calls.length > 0;
      });
      spare.close();
      const served = second.calls.length;
      for (let i = 0; i < 20; i++) {
        assert.ok(await client.getSession({ sessionKey: 'k' }));
      }
      assert.equal(second.calls.length - served, 20, 'the survivor served every call');
    } finally {
      client.close();
      spare.close();
    }
  });
});

async function waitUntil(check: () => Promise<boolean>, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
