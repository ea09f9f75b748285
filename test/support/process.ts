import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const MAIN = fileURLToPath(new URL('../../src/main.ts', import.meta.url));

export interface ServiceProcess {
  readonly child: ChildProcess;
  /** Every JSON log line the process has written so far. */
  readonly logs: Array<Record<string, unknown>>;
  /** What the process wrote to stderr so far. */
  stderr(): string;
  exited(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/**
 * The service as its own process (`src/main.ts` through tsx), for tests of
 * process behaviour: signals, exit codes, start-up errors, logs. Resolves
 * once the process logs that it listens, or exits.
 */
export async function spawnService(env: Record<string, string>): Promise<ServiceProcess> {
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', HTTP_PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Array<Record<string, unknown>> = [];
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const listening = new Promise<void>((resolve) => {
    createInterface({ input: child.stdout }).on('line', (line) => {
      try {
        const entry = JSON.parse(line) as Record<string, unknown>;
        logs.push(entry);
        if (entry.msg === 'sessionmanager listening') resolve();
      } catch {
        logs.push({ raw: line });
      }
    });
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  process.once('exit', () => child.kill('SIGKILL'));
  let timer: NodeJS.Timeout | undefined;
  const tooSlow = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(
        new Error(`the service did not log "sessionmanager listening" within 60 s: ${stderr}`),
      );
      // Generous: starting through tsx on a machine busy with other work takes seconds.
    }, 60_000);
  });
  await Promise.race([listening, exit, tooSlow]).finally(() => clearTimeout(timer));
  return { child, logs, stderr: () => stderr, exited: () => exit };
}
