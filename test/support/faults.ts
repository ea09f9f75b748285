import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type Server, Socket } from 'node:net';
import type { ServiceProcess } from './process.ts';

/** Long variants (`npm run faults:long`) scale the fault tests up; `npm test` runs the short ones. */
export const LONG = process.env.FAULTS_LONG === '1';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resident set size of a process, in MB, from /proc (Linux). */
export function rssMb(pid: number): number {
  const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) / 1024;
}

/** Samples a process's RSS every `everyMs` until stopped; reports the first and the peak sample. */
export function watchRss(pid: number, everyMs = 100) {
  const first = rssMb(pid);
  let peak = first;
  const timer = setInterval(() => {
    try {
      peak = Math.max(peak, rssMb(pid));
    } catch {
      // the process exited; the test notices that itself
    }
  }, everyMs);
  return {
    first,
    stop(): { firstMb: number; peakMb: number; growthMb: number } {
      clearInterval(timer);
      try {
        peak = Math.max(peak, rssMb(pid));
      } catch {}
      return { firstMb: round(first), peakMb: round(peak), growthMb: round(peak - first) };
    },
  };
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/** Everything a spawned service wrote: its JSON log lines and its stderr. */
export function logText(service: ServiceProcess): string {
  return `${service.logs.map((line) => JSON.stringify(line)).join('\n')}\n${service.stderr()}`;
}

/**
 * Session keys never reach the logs: not one of `keys` (of 16 characters or
 * more) occurs in any line the services wrote. Returns how many lines and
 * keys were checked.
 */
export function assertNoKeysInLogs(
  services: readonly ServiceProcess[],
  keys: Iterable<string>,
): { lines: number; keys: number } {
  const text = services.map(logText).join('\n');
  let checked = 0;
  for (const key of keys) {
    // A caller-chosen key of a few characters ("_", "a1") occurs in any text by chance.
    if (key.length < 16) continue;
    checked++;
    assert.ok(!text.includes(key), `a session key appears in the logs: ${key.slice(0, 8)}...`);
  }
  const lines = services.reduce((n, s) => n + s.logs.length, 0);
  return { lines, keys: checked };
}

/** No line says a promise rejection went unhandled or the process failed. */
export function assertNoUnhandled(service: ServiceProcess): void {
  const bad = service.logs.filter(
    (line) => line.msg === 'unhandled rejection' || line.msg === 'uncaughtException',
  );
  assert.deepEqual(bad, [], 'unhandled rejections in the service log');
  assert.doesNotMatch(service.stderr(), /Unhandled|uncaught|TypeError|RangeError/i);
}

export function assertAlive(service: ServiceProcess): void {
  assert.equal(service.child.exitCode, null, `the service exited: ${service.stderr()}`);
  assert.equal(service.child.signalCode, null, 'the service was killed');
}

/** Which way bytes flow through the proxy: service → Redis, or Redis → service. */
export type Direction = 'commands' | 'replies';

/** Network faults a FaultProxy applies to every connection while they are set. */
export interface NetworkFaults {
  /** One-way delay added to each chunk, ms (sampled per chunk; order is kept). */
  readonly latencyMs?: () => number;
  /** Forward in segments of this many bytes, one segment per turn of the event loop. */
  readonly segmentBytes?: number;
  /** Chance, per chunk of replies, that the connection is reset halfway through the chunk. */
  readonly resetMidReply?: number;
  /** Chance, per chunk either way, that the connection is reset after a random part of it. */
  readonly dropRate?: number;
  /**
   * Where in this chunk to reset the connection, or undefined to pass it: for
   * faults that read the protocol. `connection` is the same object for every
   * chunk of one connection, in order, either way.
   */
  readonly resetAt?: (
    connection: object,
    direction: Direction,
    bytes: Buffer,
  ) => number | undefined;
}

interface Chunk {
  bytes: Buffer;
  readonly dueAt: number;
}

/** One direction of one proxied connection: bytes wait here as they would in a network. */
class Pipe {
  readonly #proxy: FaultProxy;
  readonly #direction: Direction;
  readonly #to: Socket;
  readonly #kill: () => void;
  readonly #queue: Chunk[] = [];
  /** Stalls of this connection alone (FaultProxy.hold with `only: 'open'`). */
  holds = 0;
  #timer: NodeJS.Timeout | undefined;
  #pacing = false;
  #ended = false;

  constructor(
    proxy: FaultProxy,
    readonly direction: Direction,
    to: Socket,
    kill: () => void,
    readonly connection: object,
  ) {
    this.#proxy = proxy;
    this.#direction = direction;
    this.#to = to;
    this.#kill = kill;
  }

  push(bytes: Buffer): void {
    this.#queue.push({ bytes, dueAt: Date.now() + (this.#proxy.faults.latencyMs?.() ?? 0) });
    this.pump();
  }

  /** The sender closed its side: deliver what is on its way, then close ours. */
  end(): void {
    this.#ended = true;
    this.pump();
  }

  drop(): void {
    this.#queue.length = 0;
    clearTimeout(this.#timer);
  }

  pump(): void {
    if (this.#pacing) return;
    while (this.#queue.length > 0) {
      if (this.holds > 0 || this.#proxy.holding(this.#direction)) return;
      const chunk = this.#queue[0] as Chunk;
      const wait = chunk.dueAt - Date.now();
      if (wait > 0) {
        clearTimeout(this.#timer);
        this.#timer = setTimeout(() => this.pump(), wait);
        return;
      }
      const faults = this.#proxy.faults;
      const segment = faults.segmentBytes;
      if (segment !== undefined && chunk.bytes.length > segment) {
        this.#write(chunk.bytes.subarray(0, segment));
        chunk.bytes = chunk.bytes.subarray(segment);
        this.#pacing = true;
        setImmediate(() => {
          this.#pacing = false;
          this.pump();
        });
        return;
      }
      this.#queue.shift();
      const resetAt = this.#resetPoint(chunk.bytes, faults);
      if (resetAt !== undefined) {
        this.#write(chunk.bytes.subarray(0, resetAt));
        this.#kill();
        return;
      }
      this.#write(chunk.bytes);
    }
    if (this.#ended && !this.#to.destroyed) this.#to.end();
  }

  #resetPoint(bytes: Buffer, faults: NetworkFaults): number | undefined {
    const chosen = faults.resetAt?.(this.connection, this.#direction, bytes);
    if (chosen !== undefined) return chosen;
    if (
      this.#direction === 'replies' &&
      bytes.length >= 2 &&
      Math.random() < (faults.resetMidReply ?? 0)
    )
      return Math.floor(bytes.length / 2);
    if (Math.random() < (faults.dropRate ?? 0)) return Math.floor(Math.random() * bytes.length);
    return undefined;
  }

  #write(bytes: Buffer): void {
    if (!this.#to.destroyed && bytes.length > 0) this.#to.write(bytes);
  }
}

/**
 * Resets a connection (RST), or closes it when it cannot be reset: libuv
 * forbids a reset after a shutdown (end()), and Node then never finishes
 * closing the socket, which hangs the process at exit.
 */
function reset(socket: Socket): void {
  if (socket.destroyed) return;
  if (socket.writableEnded || socket.connecting) socket.destroy();
  else socket.resetAndDestroy();
}

/**
 * A TCP proxy in front of Redis that injects network faults: added latency,
 * small segments, resets in the middle of a reply, random drops, and stalls
 * of either direction (a half-open blackhole is both). Stalled bytes are
 * kept, in order, and delivered when the stall ends, even on a connection the
 * service has since closed: so do a network's retransmissions once a
 * partition heals, which is how a write the service gave up on can reach
 * Redis late. It also counts the connections it accepts: while Redis is down
 * it accepts and closes at once, so each count is one reconnect attempt.
 */
export class FaultProxy {
  faults: NetworkFaults = {};
  #connections = 0;
  readonly #held = new Map<Direction, number>([
    ['commands', 0],
    ['replies', 0],
  ]);
  readonly #pipes = new Set<Pipe>();
  readonly #killers = new Set<() => void>();
  readonly #server: Server;
  readonly #targetPort: number;

  private constructor(targetPort: number) {
    this.#targetPort = targetPort;
    this.#server = createServer((client) => this.#accept(client));
  }

  static async start(targetPort: number): Promise<FaultProxy> {
    const proxy = new FaultProxy(targetPort);
    await new Promise<void>((resolve) => proxy.#server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    const address = this.#server.address();
    return typeof address === 'object' && address ? address.port : 0;
  }

  /** Connections accepted so far. */
  get connections(): number {
    return this.#connections;
  }

  holding(direction: Direction): boolean {
    return (this.#held.get(direction) ?? 0) > 0;
  }

  /**
   * Stops the bytes going one way (or both: a half-open blackhole) until the
   * returned function is called: on every connection, open now or later, or
   * `only` on those open now.
   */
  hold(direction: Direction | 'both', only: 'all' | 'open' = 'all'): () => void {
    const directions: Direction[] = direction === 'both' ? ['commands', 'replies'] : [direction];
    const pipes = [...this.#pipes].filter((pipe) => directions.includes(pipe.direction));
    if (only === 'open') for (const pipe of pipes) pipe.holds++;
    else for (const d of directions) this.#held.set(d, (this.#held.get(d) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      if (only === 'open') for (const pipe of pipes) pipe.holds--;
      else for (const d of directions) this.#held.set(d, (this.#held.get(d) ?? 0) - 1);
      for (const pipe of this.#pipes) pipe.pump();
      for (const pipe of pipes) pipe.pump();
    };
  }

  /** Resets every open connection. */
  resetAll(): void {
    for (const kill of [...this.#killers]) kill();
  }

  async close(): Promise<void> {
    this.resetAll();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #accept(client: Socket): void {
    this.#connections++;
    const upstream = new Socket();
    const connection = {};
    const toRedis = new Pipe(this, 'commands', upstream, () => kill(), connection);
    const toClient = new Pipe(this, 'replies', client, () => kill(), connection);
    const kill = () => {
      toRedis.drop();
      toClient.drop();
      reset(client);
      reset(upstream);
    };
    this.#killers.add(kill);
    this.#pipes.add(toRedis);
    this.#pipes.add(toClient);
    const forget = () => {
      this.#killers.delete(kill);
      this.#pipes.delete(toRedis);
      this.#pipes.delete(toClient);
    };
    client.on('error', () => client.destroy());
    upstream.on('error', () => upstream.destroy());
    client.on('data', (bytes: Buffer) => toRedis.push(bytes));
    upstream.on('data', (bytes: Buffer) => toClient.push(bytes));
    // The service closed its side: what it sent is still on its way to Redis.
    client.once('close', () => toRedis.end());
    upstream.once('close', () => {
      forget();
      client.destroy();
    });
    upstream.connect(this.#targetPort, '127.0.0.1');
  }
}
