import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, waitFor } from './ports.ts';

export interface TestRedis {
  readonly port: number;
  /** The process id of the running redis-server (0 before it starts). */
  readonly pid: number;
  /** True until the process exits (stop, dispose, or killed). */
  readonly running: boolean;
  /** Runs one command through redis-cli and returns its raw output. */
  cli(...args: string[]): string;
  /** Stops the process (SIGTERM by default) and waits for it to exit; the data directory stays. */
  stop(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the process and removes its data directory. */
  dispose(): Promise<void>;
  /** Sends a signal without waiting (SIGSTOP / SIGCONT to pause and resume). */
  signal(signal: NodeJS.Signals): void;
  /** Starts it again on the same port with the same data directory. */
  restart(): Promise<void>;
}

export function requireRedisServer(): void {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'redis-server is not installed: these tests start their own Redis. Install it with `apt-get install redis-server` (Debian) or `brew install redis`.',
    );
  }
}

export function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(500);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
  });
}

/** Every redis-server started here and still running: one exit hook kills them all. */
const liveServers = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of liveServers) child.kill('SIGKILL');
});

/** A throwaway redis-server on a free loopback port, owned by the test. */
export async function startRedis(extraArgs: string[] = []): Promise<TestRedis> {
  requireRedisServer();
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'sessionmanager-redis-'));
  let child: ChildProcess | undefined;

  const launch = async () => {
    child = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', ...extraArgs],
      { stdio: 'ignore' },
    );
    const launched = child;
    liveServers.add(launched);
    launched.once('exit', () => liveServers.delete(launched));
    await waitFor(`redis-server on port ${port}`, () => answersPing(port));
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const running = child;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill(signal);
    await exited;
  };
  await launch();

  return {
    port,
    get pid() {
      return child?.pid ?? 0;
    },
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    cli: (...args) =>
      execFileSync('redis-cli', ['-p', String(port), ...args], { encoding: 'utf8' }).trim(),
    stop,
    dispose: async () => {
      await stop('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    },
    signal: (signal) => child?.kill(signal),
    restart: async () => {
      await stop();
      await launch();
    },
  };
}
