// Idempotency keys over gRPC, on both server transports and both stores: a
// repeat gets the first outcome, and keys are scoped to the caller's token.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, type SessionClient, SessionError } from '../../client/src/index.ts';
import { STORE_TRANSPORT_MATRIX } from '../support/grpc.ts';
import { startRedis, type TestRedis } from '../support/redis.ts';
import { startServer, type TestServer } from '../support/server.ts';

const ALICE = 'idempotency-alice-0123456789';
const BOB = 'idempotency-bob-0123456789';

for (const [storeName, transport] of STORE_TRANSPORT_MATRIX) {
  describe(`idempotency keys over gRPC: ${storeName} store, ${transport} server`, () => {
    let redis: TestRedis | undefined;
    let server: TestServer;
    let alice: SessionClient;
    let bob: SessionClient;

    before(async () => {
      redis = storeName === 'redis' ? await startRedis() : undefined;
      server = await startServer({
        ...(redis && { redisPort: redis.port }),
        env: { GRPC_TRANSPORT: transport, AUTH_TOKENS: `${ALICE}:write,${BOB}:write` },
      });
      const as = (token: string) =>
        createClient({ address: server.address, metadata: { authorization: `Bearer ${token}` } });
      alice = as(ALICE);
      bob = as(BOB);
    });

    after(async () => {
      alice.close();
      bob.close();
      await server.close();
      await redis?.dispose();
    });

    it('a keyless set repeated under its key returns the same session key and creates one session', async () => {
      const idempotencyKey = `set-${Date.now()}-${Math.random()}`;
      const first = await alice.setSession({ attributes: { n: 1 } }, { idempotencyKey });
      const again = await alice.setSession({ attributes: { n: 1 } }, { idempotencyKey });
      assert.deepEqual(again, first);
      await assert.rejects(
        alice.setSession({ attributes: { n: 2 } }, { idempotencyKey }),
        (error: unknown) =>
          error instanceof SessionError && error.code === 'IDEMPOTENCY_KEY_REUSED',
      );
      const other = await bob.setSession({ attributes: { n: 1 } }, { idempotencyKey });
      assert.notEqual(other.sessionKey, first.sessionKey, "bob's key is his own");
    });

    it("one caller cannot replay another's key to read what it consumed", async () => {
      const { sessionKey } = await alice.setSession({ fleetListResponse: 'quote' });
      const idempotencyKey = `consume-${Date.now()}-${Math.random()}`;
      const consumed = await alice.consumeSession({ sessionKey }, { idempotencyKey });
      assert.equal(consumed?.fleetListResponse, 'quote');
      assert.deepEqual(await alice.consumeSession({ sessionKey }, { idempotencyKey }), consumed);
      assert.equal(await bob.consumeSession({ sessionKey }, { idempotencyKey }), null);
    });
  });
}
