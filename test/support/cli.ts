import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

export interface CliRun {
  code: number | null;
  /** stdout parsed as JSON, when it is JSON. */
  // biome-ignore lint/suspicious/noExplicitAny: JSON output is checked field by field
  json: any;
  stdout: string;
  stderr: string;
}

/** Runs the `sessionmanager` command as a subprocess, with only PATH and `env` set. */
export function runCli(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--conditions=@sessionmanager/source', '--import', 'tsx', CLI, ...args],
      { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk;
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    child.on('exit', (code) => {
      let json: unknown;
      try {
        json = JSON.parse(stdout);
      } catch {}
      resolve({ code, json, stdout, stderr });
    });
  });
}
