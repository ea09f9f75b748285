import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { status } from '@grpc/grpc-js';
import { createClient, type SessionClient, SessionError } from '../src/index.ts';
import {
  hang,
  type MethodName,
  type ScriptedServer,
  StatusError,
  startScriptedServer,
} from './scripted-server.ts';

interface Quote {
  from: string;
  to: string;
}
interface Fleet {
  cars: { id: string; priceCents: number }[];
}

const quote: Quote = { from: 'Airport', to: 'Station' };
const fleet: Fleet = { cars: [{ id: 'c1', priceCents: 1234 }] };

const stored = {
  session_key: 'k1',
  fleet_list_request: Buffer.from(JSON.stringify(quote)),
  fleet_list_response: Buffer.from(JSON.stringify(fleet)),
  // A computed key makes "__proto__" an own property, as an attribute name can be.
  attributes: { seat: Buffer.from('"12A"'), ['__proto__']: Buffer.from('1') },
  ttl_seconds: 600,
  expires_at_unix_ms: 1_700_000_600_000,
  version: 3,
  created_at_unix_ms: 1_700_000_000_000,
};

const notFound = () => {
  throw new StatusError(status.NOT_FOUND, 'session_key: no such session');
};

describe('the client against a scripted server', () => {
  let server: ScriptedServer;
  let client: SessionClient<Quote, Fleet, string | number>;

  before(async () => {
    server = await startScriptedServer({
      SetSession: (request) => ({
        session_key: request.session_key || 'generated',
        expires_at_unix_ms: 1_700_000_600_000,
        version: 1,
      }),
      GetSession: (request) => (request.session_key === 'k1' ? stored : notFound()),
      UpdateSession: (request) =>
        request.session_key === 'k1' ? { ...stored, version: 4 } : notFound(),
      TouchSession: (request) =>
        request.session_key === 'k1' ? { expires_at_unix_ms: 1_700_000_900_000 } : notFound(),
      ConsumeSession: (request) => (request.session_key === 'k1' ? stored : notFound()),
      DeleteSession: (request) => ({ deleted: request.session_key === 'k1' }),
      ListSessions: (request) => ({
        sessions:
          request.owner === 'rider-1'
            ? [
                {
                  handle: 'h-old',
                  created_at_unix_ms: 1_700_000_000_000,
                  expires_at_unix_ms: 1_700_000_600_000,
                  version: 3,
                  ttl_seconds: 600,
                  size_bytes: 99,
                  ...(request.include_content === true
                    ? {
                        fleet_list_request: stored.fleet_list_request,
                        attributes: { seat: Buffer.from('"12A"') },
                      }
                    : {}),
                },
                { handle: 'h-new', version: 1 },
              ]
            : [],
      }),
      RevokeSessions: (request) => ({ revoked: request.owner === 'rider-1' ? 2 : 0 }),
    });
    client = createClient({ host: '127.0.0.1', port: server.port });
  });
  after(() => {
    client.close();
    server.close();
  });

  function lastRequest(method: MethodName): Record<string, unknown> {
    const request = server.callsTo(method).at(-1)?.request;
    assert.ok(request, `${method} was called`);
    return request;
  }

  test('setSession encodes payloads with the codec and returns the stored key', async () => {
    const result = await client.setSession({
      sessionKey: 'k1',
      fleetListRequest: quote,
      fleetListResponse: fleet,
      attributes: { seat: '12A', passengers: 2 },
      ttlSeconds: 600,
    });
    assert.deepStrictEqual(result, {
      sessionKey: 'k1',
      expiresAtUnixMs: 1_700_000_600_000,
      version: 1,
    });
    const sent = lastRequest('SetSession');
    assert.equal(sent.session_key, 'k1');
    assert.deepStrictEqual(JSON.parse(String(sent.fleet_list_request)), quote);
    assert.deepStrictEqual(JSON.parse(String(sent.fleet_list_response)), fleet);
    assert.deepStrictEqual(
      Object.fromEntries(
        Object.entries(sent.attributes as Record<string, Buffer>).map(([k, v]) => [k, String(v)]),
      ),
      { seat: '"12A"', passengers: '2' },
    );
    assert.equal(sent.ttl_seconds, 600);
  });

  test('setSession without a key or payloads sends empty fields', async () => {
    const result = await client.setSession({});
    assert.equal(result.sessionKey, 'generated');
    const sent = lastRequest('SetSession');
    assert.equal(sent.session_key, '');
    assert.equal((sent.fleet_list_request as Buffer).length, 0);
    assert.equal(sent.ttl_seconds, 0);
  });

  test('getSession decodes the session into plain typed values', async () => {
    const session = await client.getSession({ sessionKey: 'k1', touch: true });
    assert.deepStrictEqual(session, {
      sessionKey: 'k1',
      fleetListRequest: quote,
      fleetListResponse: fleet,
      attributes: { seat: '12A', ['__proto__']: 1 },
      ttlSeconds: 600,
      expiresAtUnixMs: 1_700_000_600_000,
      version: 3,
      createdAtUnixMs: 1_700_000_000_000,
    });
    assert.equal(lastRequest('GetSession').touch, true);
  });

  test('getSession and consumeSession return null for a missing session', async () => {
    assert.equal(await client.getSession({ sessionKey: 'gone' }), null);
    assert.equal(await client.consumeSession({ sessionKey: 'gone' }), null);
  });

  test('updateSession and touchSession throw NOT_FOUND for a missing session', async () => {
    const isNotFound = (error: unknown) =>
      error instanceof SessionError &&
      error.code === 'NOT_FOUND' &&
      error.message === 'session_key: no such session';
    await assert.rejects(client.updateSession({ sessionKey: 'gone' }), isNotFound);
    await assert.rejects(client.touchSession({ sessionKey: 'gone' }), isNotFound);
  });

  test('updateSession sends only the optional fields the caller set', async () => {
    await client.updateSession({ sessionKey: 'k1', setAttributes: { seat: '14C' } });
    const bare = lastRequest('UpdateSession');
    assert.equal('expected_version' in bare, false);
    assert.equal('fleet_list_request' in bare, false);
    assert.equal('fleet_list_response' in bare, false);
    assert.equal(String((bare.set_attributes as Record<string, Buffer>).seat), '"14C"');

    const updated = await client.updateSession({
      sessionKey: 'k1',
      fleetListResponse: fleet,
      removeAttributes: ['passengers'],
      expectedVersion: 0,
      ttlSeconds: 120,
    });
    assert.equal(updated.version, 4);
    const full = lastRequest('UpdateSession');
    assert.equal(full.expected_version, 0, 'an expected version of 0 is still sent');
    assert.equal('fleet_list_request' in full, false);
    assert.deepStrictEqual(JSON.parse(String(full.fleet_list_response)), fleet);
    assert.deepStrictEqual(full.remove_attributes, ['passengers']);
    assert.equal(full.ttl_seconds, 120);
  });

  test('touchSession and deleteSession return their results', async () => {
    assert.deepStrictEqual(await client.touchSession({ sessionKey: 'k1', ttlSeconds: 30 }), {
      expiresAtUnixMs: 1_700_000_900_000,
    });
    assert.equal(lastRequest('TouchSession').ttl_seconds, 30);
    assert.deepStrictEqual(await client.deleteSession({ sessionKey: 'k1' }), { deleted: true });
    assert.deepStrictEqual(await client.deleteSession({ sessionKey: 'x' }), { deleted: false });
  });

  test('setSession sends the owner only when given', async () => {
    await client.setSession({ owner: 'rider-1', fleetListRequest: quote });
    assert.equal(lastRequest('SetSession').owner, 'rider-1');
    await client.setSession({});
    assert.equal(lastRequest('SetSession').owner, '');
  });

  test('listSessions returns handles and metadata, and the decoded content only when asked', async () => {
    const bare = await client.listSessions('rider-1');
    assert.equal(lastRequest('ListSessions').include_content, false);
    assert.deepStrictEqual(bare, [
      {
        handle: 'h-old',
        createdAtUnixMs: 1_700_000_000_000,
        expiresAtUnixMs: 1_700_000_600_000,
        version: 3,
        ttlSeconds: 600,
        sizeBytes: 99,
      },
      {
        handle: 'h-new',
        createdAtUnixMs: 0,
        expiresAtUnixMs: 0,
        version: 1,
        ttlSeconds: 0,
        sizeBytes: 0,
      },
    ]);
    const full = await client.listSessions('rider-1', { includeContent: true });
    assert.equal(lastRequest('ListSessions').include_content, true);
    assert.deepStrictEqual(full[0]?.fleetListRequest, quote);
    assert.equal('fleetListResponse' in (full[0] ?? {}), false, 'an empty payload is left out');
    assert.deepStrictEqual(full[0]?.attributes, { seat: '12A' });
    assert.deepStrictEqual(full[1]?.attributes, {});
    assert.deepStrictEqual(await client.listSessions('nobody'), []);
    assert.equal(lastRequest('ListSessions').owner, 'nobody');
  });

  test('revokeSessions returns the count', async () => {
    assert.deepStrictEqual(await client.revokeSessions('rider-1'), { revoked: 2 });
    assert.deepStrictEqual(await client.revokeSessions('nobody'), { revoked: 0 });
    assert.equal(lastRequest('RevokeSessions').owner, 'nobody');
  });

  test('consumeSession returns the session it removed', async () => {
    const consumed = await client.consumeSession({ sessionKey: 'k1' });
    assert.deepStrictEqual(consumed?.fleetListRequest, quote);
  });

  test('an integer field that is not a safe integer is refused before sending', async () => {
    const before = server.calls.length;
    await assert.rejects(client.touchSession({ sessionKey: 'k1', ttlSeconds: 1.5 }), {
      code: 'INVALID_ARGUMENT',
      message: 'ttlSeconds must be an integer, got 1.5',
    });
    await assert.rejects(client.updateSession({ sessionKey: 'k1', expectedVersion: 2 ** 53 }), {
      code: 'INVALID_ARGUMENT',
    });
    assert.equal(server.calls.length, before);
  });

  test('metadata is sent with every call, static or computed per attempt', async () => {
    let token = 0;
    const withToken = createClient({
      address: server.address,
      metadata: async () => ({ authorization: `Bearer t${++token}` }),
    });
    const withStatic = createClient({ address: server.address, metadata: { 'x-team': 'fleet' } });
    try {
      await withToken.deleteSession({ sessionKey: 'a' });
      await withToken.deleteSession({ sessionKey: 'a' });
      const sent = server.callsTo('DeleteSession').slice(-2);
      assert.deepStrictEqual(
        sent.map((call) => call.metadata.get('authorization')),
        [['Bearer t1'], ['Bearer t2']],
      );
      await withStatic.deleteSession({ sessionKey: 'a' });
      assert.deepStrictEqual(server.callsTo('DeleteSession').at(-1)?.metadata.get('x-team'), [
        'fleet',
      ]);
    } finally {
      withToken.close();
      withStatic.close();
    }
  });

  test('a closed client refuses calls with CANCELLED', async () => {
    const closing = createClient({ address: server.address });
    closing.close();
    await assert.rejects(closing.getSession({ sessionKey: 'k1' }), {
      name: 'SessionError',
      code: 'CANCELLED',
      message: 'the client has been closed',
    });
  });
});

describe('deadlines and cancellation', () => {
  let server: ScriptedServer;

  before(async () => {
    server = await startScriptedServer({ GetSession: hang, ConsumeSession: hang });
  });
  after(() => server.close());

  test('the default deadline fires on a server that never answers', async () => {
    const client = createClient({ address: server.address, deadlineMs: 200 });
    try {
      const started = Date.now();
      await assert.rejects(client.getSession({ sessionKey: 'k' }), { code: 'DEADLINE_EXCEEDED' });
      const elapsed = Date.now() - started;
      // Room for a busy machine above the 200 ms deadline, far below a hang.
      assert.ok(elapsed >= 190 && elapsed < 3000, `${elapsed} ms`);
    } finally {
      client.close();
    }
  });

  test('a per-call deadline overrides the default', async () => {
    const client = createClient({ address: server.address, deadlineMs: 60_000 });
    try {
      const started = Date.now();
      await assert.rejects(client.consumeSession({ sessionKey: 'k' }, { deadlineMs: 100 }), {
        code: 'DEADLINE_EXCEEDED',
      });
      assert.ok(Date.now() - started < 3000, 'the 100 ms deadline, not the 60 s default');
    } finally {
      client.close();
    }
  });

  test('aborting the signal cancels the call in flight', async () => {
    const client = createClient({ address: server.address });
    try {
      const controller = new AbortController();
      const pending = client.consumeSession({ sessionKey: 'k' }, { signal: controller.signal });
      await waitFor(() => server.callsTo('ConsumeSession').length === 1);
      controller.abort(new Error('rider cancelled'));
      await assert.rejects(pending, (error: unknown) => {
        assert.ok(error instanceof SessionError);
        assert.equal(error.code, 'CANCELLED');
        assert.equal((error.cause as Error).message, 'rider cancelled');
        return true;
      });
      await waitFor(() => server.callsTo('ConsumeSession')[0]?.cancelled() === true);
    } finally {
      client.close();
    }
  });

  test('an already aborted signal sends nothing', async () => {
    const client = createClient({ address: server.address });
    try {
      const before = server.calls.length;
      await assert.rejects(
        client.getSession({ sessionKey: 'k' }, { signal: AbortSignal.abort() }),
        {
          code: 'CANCELLED',
        },
      );
      assert.equal(server.calls.length, before);
    } finally {
      client.close();
    }
  });
});

describe('options', () => {
  test('invalid options fail at creation, naming the option', () => {
    assert.throws(() => createClient({ address: '127.0.0.1:1', deadlineMs: 0 }), /deadlineMs/);
    assert.throws(
      () => createClient({ address: '127.0.0.1:1', deadlineMs: Number.POSITIVE_INFINITY }),
      /deadlineMs must be a positive number/,
    );
    assert.throws(
      () => createClient({ address: '127.0.0.1:1', retries: { maxAttempts: 0 } }),
      /retries.maxAttempts/,
    );
    assert.throws(
      () => createClient({ address: '127.0.0.1:1', retries: { maxBackoffMs: 10 } }),
      /retries.maxBackoffMs must be >= retries.initialBackoffMs/,
    );
    assert.throws(() => createClient({ host: '127.0.0.1', port: 70000 }), /port must be 1-65535/);
    assert.throws(() => createClient({ host: '' }), /host/);
    assert.throws(
      () => createClient({ host: 'localhost', credentials: { tls: { cert: 'pem' } } }),
      /both cert and key/,
    );
    assert.throws(
      () => createClient({ host: 'localhost', keepalive: { timeMs: -1 } }),
      /keepalive.timeMs/,
    );
  });

  test('a per-call deadline is validated too', async () => {
    const client = createClient({ address: '127.0.0.1:1' });
    try {
      await assert.rejects(
        client.getSession({ sessionKey: 'k' }, { deadlineMs: -5 }),
        /deadlineMs/,
      );
    } finally {
      client.close();
    }
  });

  test('an unreachable server is UNAVAILABLE', async () => {
    const client = createClient({ address: '127.0.0.1:1', retries: false });
    try {
      await assert.rejects(client.deleteSession({ sessionKey: 'k' }), { code: 'UNAVAILABLE' });
    } finally {
      client.close();
    }
  });
});

async function waitFor(condition: () => boolean, timeoutMs = 2000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) {
      throw new Error('condition not met in time');
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
