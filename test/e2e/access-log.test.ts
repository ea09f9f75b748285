import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.ts';
import { createServer } from '../../src/server.ts';
import { createStore } from '../../src/store/create-store.ts';
import { rawClient } from '../support/grpc.ts';
import { freePort } from '../support/ports.ts';

/** The server with a logger whose lines the test reads. */
async function serve(level: 'debug' | 'info', transport: 'lean' | 'grpc-js') {
  const lines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) lines.push(JSON.parse(line));
      done();
    },
  });
  const config = loadConfig({
    HOST: '127.0.0.1',
    PORT: '0',
    HTTP_PORT: String(await freePort()),
    LOG_LEVEL: level,
    GRPC_TRANSPORT: transport,
  });
  const logger = pino({ level }, sink);
  const server = createServer(config, { store: createStore(config, logger), logger });
  const ports = await server.listen();
  return { server, lines, grpc: `127.0.0.1:${ports.grpc}`, http: `http://127.0.0.1:${ports.http}` };
}

describe('the access log', () => {
  for (const transport of ['lean', 'grpc-js'] as const) {
    it(`${transport}: at debug, one line per call with method, code, duration and request id, never the key`, async () => {
      const { server, lines, grpc, http } = await serve('debug', transport);
      const client = rawClient(grpc);
      const key = 'secret-session-key-7f3a';
      let sentId: unknown;
      try {
        await client.call(
          'SetSession',
          { session_key: key },
          { metadata: { 'x-request-id': 'req-1' } },
        );
        const failure: { code: number; metadata: { get(name: string): unknown[] } } = await client
          .call('GetSession', { session_key: `${key}-absent` })
          .then(
            () => assert.fail('expected NOT_FOUND'),
            (error) => error,
          );
        assert.equal(failure.code, 5);
        sentId = failure.metadata.get('x-request-id')[0];
        await fetch(`${http}/v1/sessions/${key}`, { headers: { 'x-request-id': 'req-3' } });
      } finally {
        client.close();
        await server.close();
      }
      const calls = lines.filter((line) => line.msg === 'call');
      assert.deepEqual(
        calls.map(({ transport: t, method, code, requestId }) => ({ t, method, code, requestId })),
        [
          { t: 'grpc', method: 'SetSession', code: 'OK', requestId: 'req-1' },
          { t: 'grpc', method: 'GetSession', code: 'NOT_FOUND', requestId: sentId },
          { t: 'http', method: 'GetSession', code: 'OK', requestId: 'req-3' },
        ],
      );
      assert.match(
        String(sentId),
        /^[0-9a-f-]{36}$/,
        'a failure gets a generated id, logged as sent',
      );
      for (const line of calls) assert.equal(typeof line.ms, 'number');
      const text = JSON.stringify(lines);
      assert.ok(!text.includes(key), 'no session key in any log line');
    });
  }

  it('above debug, no call is logged', async () => {
    const { server, lines, grpc } = await serve('info', 'lean');
    const client = rawClient(grpc);
    try {
      await client.call('SetSession', {});
    } finally {
      client.close();
      await server.close();
    }
    assert.equal(lines.filter((line) => line.msg === 'call').length, 0);
  });
});
