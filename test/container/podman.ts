import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/**
 * podman as this machine runs it: runc with cgroupfs (no systemd), and the
 * ulimits set explicitly because the sandbox refuses to raise them.
 */
const PODMAN = ['--runtime', 'runc', '--cgroup-manager', 'cgroupfs'];
export const ULIMITS = ['--ulimit', 'nofile=4096:4096', '--ulimit', 'nproc=4096:4096'];

export async function podman(...args: string[]): Promise<string> {
  const { stdout } = await run('podman', [...PODMAN, ...args], {
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout.trim();
}

/** Runs a command and resolves to its exit code and output, whatever the code. */
export async function podmanStatus(...args: string[]): Promise<{ code: number; output: string }> {
  try {
    return { code: 0, output: await podman(...args) };
  } catch (error) {
    const failed = error as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof failed.code === 'number' ? failed.code : 1,
      output: `${failed.stdout ?? ''}${failed.stderr ?? ''}`,
    };
  }
}

export async function inspect(container: string, format: string): Promise<string> {
  return podman('inspect', '--format', format, container);
}
