// The servers a benchmark measures: each its own process on a free loopback
// port, killed when the benchmark exits.
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import { freePort, waitFor } from '../test/support/ports.ts';

const children: ChildProcess[] = [];
process.once('exit', () => {
  for (const child of children) child.kill('SIGKILL');
});

/** A child with only PATH and `extraEnv` for environment; stderr goes to ours. */
export function spawnOwned(command: string, args: string[], extraEnv: Record<string, string>) {
  const child = spawn(command, args, {
    env: { PATH: process.env.PATH ?? '', ...extraEnv },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  return child;
}

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export interface Target {
  readonly name: string;
  readonly port: number;
  readonly pid: number;
  stop(): Promise<void>;
}

/**
 * Starts a server on a free port, given to it as PORT (this service) and
 * GRPC_PORT (the Go reference), and resolves once the port accepts.
 */
export async function startTarget(
  name: string,
  command: string,
  args: string[],
  targetEnv: Record<string, string>,
): Promise<Target> {
  const port = await freePort();
  const child = spawnOwned(command, args, {
    ...targetEnv,
    PORT: String(port),
    GRPC_PORT: String(port),
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await waitFor(`${name} on port ${port}`, () => listening(port), 20_000);
  return {
    name,
    port,
    pid: child.pid ?? 0,
    stop: async () => {
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * This service's environment: loopback, quiet logs, the admin/HTTP port off
 * unless `extra` sets it, and the bench's Redis when given its port.
 */
export const serviceEnv = (redisPort: number | undefined, extra: Record<string, string> = {}) => ({
  HOST: '127.0.0.1',
  LOG_LEVEL: 'warn',
  HTTP_PORT: '0',
  ...(redisPort === undefined
    ? {}
    : { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(redisPort), REDIS_DATABASE: '5' }),
  ...extra,
});
