import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
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

/**
 * A TCP proxy in front of Redis that counts the connections it accepts: while
 * Redis is down it accepts and closes at once, so each count is one reconnect
 * attempt of the service.
 */
export async function countingProxy(targetPort: number): Promise<{
  readonly port: number;
  readonly connections: number;
  close(): Promise<void>;
}> {
  let connections = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    connections++;
    sockets.add(client);
    client.once('close', () => sockets.delete(client));
    const upstream = new Socket();
    sockets.add(upstream);
    upstream.once('close', () => {
      sockets.delete(upstream);
      client.destroy();
    });
    client.once('close', () => upstream.destroy());
    client.on('error', () => client.destroy());
    upstream.on('error', () => upstream.destroy());
    upstream.connect(targetPort, '127.0.0.1', () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return {
    port,
    get connections() {
      return connections;
    },
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
