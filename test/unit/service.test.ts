import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import type { SessionLimits } from '../../src/config.ts';
import { ErrorCode, SessionError } from '../../src/errors.ts';
import { SessionService } from '../../src/service.ts';
import { sessionHandle } from '../../src/session-keys.ts';
import { MemoryStore } from '../../src/store/memory-store.ts';
import { createTokenGenerator } from '../../src/token.ts';

const limits: SessionLimits = {
  defaultTtlSeconds: 900,
  maxTtlSeconds: 3600,
  maxLifetimeMs: 24 * 3_600_000,
  maxBytes: 4096,
  maxAttributes: 16,
  idempotencyTtlMs: 60_000,
  maxPerOwner: 3,
  atOwnerLimit: 'evict-oldest',
};
const store = new MemoryStore(limits, 64 * 1024 * 1024);
after(() => store.close());
const service = new SessionService(store, limits, () => 'generated-key');

const content = {
  fleetListRequest: Buffer.from('req'),
  fleetListResponse: Buffer.from('res'),
  attributes: new Map<string, Buffer>(),
  owner: '',
};

async function fails(promise: Promise<unknown>, code: ErrorCode, field: string): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof SessionError);
    assert.equal(error.code, code);
    assert.ok(error.message.startsWith(`${field}:`), `"${error.message}" names ${field}`);
    return true;
  });
}

describe('session service rules', () => {
  it('generates a key when none is given and applies the default ttl', async () => {
    const stored = await service.set({ ...content, sessionKey: '', ttlSeconds: 0 });
    assert.equal(stored.sessionKey, 'generated-key');
    const session = await service.get('generated-key', false);
    assert.equal(session.ttlSeconds, 900);
  });

  it('accepts caller keys of 1-128 characters of [A-Za-z0-9._:-]', async () => {
    for (const key of ['a', 'A.b_c:d-9', 'x'.repeat(128)]) {
      const stored = await service.set({ ...content, sessionKey: key, ttlSeconds: 10 });
      assert.equal(stored.sessionKey, key);
    }
  });

  it('rejects any other key with INVALID_ARGUMENT naming session_key, and never echoes it', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .string({ minLength: 1, maxLength: 300, unit: 'binary' })
          .filter((s) => !/^[A-Za-z0-9._:-]{1,128}$/.test(s)),
        async (key) => {
          for (const call of [
            service.get(key, false),
            service.set({ ...content, sessionKey: key, ttlSeconds: 0 }),
            service.touch(key, 0),
            service.consume({ sessionKey: key }),
            service.delete({ sessionKey: key }),
            service.update({
              sessionKey: key,
              setAttributes: new Map(),
              removeAttributes: [],
              ttlSeconds: 0,
            }),
          ]) {
            await assert.rejects(call, (error: unknown) => {
              assert.ok(error instanceof SessionError);
              assert.equal(error.code, ErrorCode.InvalidArgument);
              assert.ok(error.message.startsWith('session_key:'));
              assert.ok(key.length < 4 || !error.message.includes(key));
              return true;
            });
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('an empty key is required everywhere but SetSession', async () => {
    await fails(service.get('', false), ErrorCode.InvalidArgument, 'session_key');
    await fails(service.delete({ sessionKey: '' }), ErrorCode.InvalidArgument, 'session_key');
  });

  it('ttl_seconds must be 0 or 1..max', async () => {
    for (const ttl of [-1, 3601, 1.5, Number.MAX_SAFE_INTEGER]) {
      await fails(
        service.set({ ...content, sessionKey: 'k', ttlSeconds: ttl }),
        ErrorCode.InvalidArgument,
        'ttl_seconds',
      );
      await fails(service.touch('k', ttl), ErrorCode.InvalidArgument, 'ttl_seconds');
    }
  });

  it('attribute names must be 1-128 printable characters', async () => {
    for (const name of ['', 'a\u0000b', 'tab\there', 'x'.repeat(129), '\ud800']) {
      await fails(
        service.set({
          ...content,
          sessionKey: 'k',
          ttlSeconds: 0,
          attributes: new Map([[name, Buffer.from('v')]]),
        }),
        ErrorCode.InvalidArgument,
        'attributes',
      );
    }
    const ok = await service.set({
      ...content,
      sessionKey: 'k',
      ttlSeconds: 0,
      attributes: new Map([['ключ 🚕 *?[]', Buffer.from('v')]]),
    });
    assert.equal(ok.version > 0, true);
  });

  it('a session over the size limit is RESOURCE_EXHAUSTED naming the session', async () => {
    await fails(
      service.set({
        ...content,
        sessionKey: 'big',
        ttlSeconds: 0,
        fleetListRequest: Buffer.alloc(4097),
      }),
      ErrorCode.TooLarge,
      'session',
    );
    await assert.rejects(service.get('big', false), { code: ErrorCode.NotFound });
  });

  it('too many attributes is refused', async () => {
    const attributes = new Map(
      Array.from({ length: 17 }, (_, i) => [`a${i}`, Buffer.alloc(1)] as const),
    );
    await fails(
      service.set({ ...content, sessionKey: 'many', ttlSeconds: 0, attributes }),
      ErrorCode.TooLarge,
      'attributes',
    );
  });

  it('an attribute may not be both set and removed in one update', async () => {
    await service.set({ ...content, sessionKey: 'both', ttlSeconds: 0 });
    await fails(
      service.update({
        sessionKey: 'both',
        setAttributes: new Map([['a', Buffer.from('1')]]),
        removeAttributes: ['a'],
        ttlSeconds: 0,
      }),
      ErrorCode.InvalidArgument,
      'remove_attributes',
    );
  });

  it('absent sessions are NOT_FOUND for get, update, touch and consume; delete reports false', async () => {
    await fails(service.get('absent', false), ErrorCode.NotFound, 'session_key');
    await fails(service.touch('absent', 0), ErrorCode.NotFound, 'session_key');
    await fails(service.consume({ sessionKey: 'absent' }), ErrorCode.NotFound, 'session_key');
    await fails(
      service.update({
        sessionKey: 'absent',
        setAttributes: new Map(),
        removeAttributes: [],
        ttlSeconds: 0,
      }),
      ErrorCode.NotFound,
      'session_key',
    );
    assert.equal(await service.delete({ sessionKey: 'absent' }), false);
  });
});

describe('owners', () => {
  const owned = new SessionService(store, limits, createTokenGenerator());
  const setFor = (owner: string, sessionKey = '') =>
    owned.set({ ...content, sessionKey, ttlSeconds: 0, owner });

  it('a session with an owner gets a generated key carrying the owner tag, and is listed by its handle', async () => {
    const { sessionKey } = await setFor('rider-1');
    assert.match(sessionKey, /^[A-Za-z0-9_-]{43}\.[A-Za-z0-9_-]{3}$/);
    const listed = await owned.listOwned('rider-1', false);
    assert.deepEqual(
      listed.map((session) => session.handle),
      [sessionHandle(sessionKey)],
    );
    assert.equal(listed[0]?.content, undefined);
    assert.deepEqual(await owned.listOwned('rider-2', false), []);
  });

  it('a key this service generated for the owner may be set again; any other key with an owner is INVALID_ARGUMENT naming session_key', async () => {
    const { sessionKey } = await setFor('rider-3');
    assert.equal((await setFor('rider-3', sessionKey)).version, 2);
    const { sessionKey: plain } = await owned.set({ ...content, sessionKey: '', ttlSeconds: 0 });
    for (const key of ['caller-chosen', plain, (await setFor('rider-4')).sessionKey]) {
      await fails(setFor('rider-3', key), ErrorCode.InvalidArgument, 'session_key');
    }
  });

  it('an owner must be 1-256 characters with no control character; the message never holds it', async () => {
    const bad = ['tab\there', 'nul\u0000', 'line\nbreak', '\u007f', 'x'.repeat(257), '\ud800'];
    for (const owner of bad) {
      for (const call of [setFor(owner), owned.listOwned(owner, true), owned.revokeOwned(owner)]) {
        await assert.rejects(call, (error: unknown) => {
          assert.ok(error instanceof SessionError);
          assert.equal(error.code, ErrorCode.InvalidArgument);
          assert.match(error.message, /^owner: must be 1-256 characters/);
          assert.ok(!error.message.includes(owner), error.message);
          return true;
        });
      }
    }
    await fails(owned.listOwned('', false), ErrorCode.InvalidArgument, 'owner');
    await fails(owned.revokeOwned(''), ErrorCode.InvalidArgument, 'owner');
    for (const owner of ['r', 'x'.repeat(256), 'Рикша 🚕 #42 ä']) {
      await setFor(owner);
      assert.equal((await owned.listOwned(owner, false)).length, 1, owner);
    }
  });

  it('revoke deletes every session of the owner and no other', async () => {
    const mine = [await setFor('rider-5'), await setFor('rider-5')];
    const other = await setFor('rider-6');
    assert.equal(await owned.revokeOwned('rider-5'), 2);
    for (const { sessionKey } of mine) {
      await fails(owned.get(sessionKey, false), ErrorCode.NotFound, 'session_key');
    }
    assert.equal((await owned.get(other.sessionKey, false)).version, 1);
    assert.equal(await owned.revokeOwned('rider-5'), 0);
  });
});
