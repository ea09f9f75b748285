// The Go reference (GO_REFERENCE: a directory holding bin/sessionmanager and
// bin/loadgen, built by its build.sh): its server as a target, its loadgen as
// the one client of every server.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { LoadResult } from './loadgen.ts';

const GO_DIR = process.env.GO_REFERENCE ?? '';
export const GO_SERVER = join(GO_DIR, 'bin/sessionmanager');
export const GO_LOADGEN = join(GO_DIR, 'bin/loadgen');
export const hasGo = GO_DIR !== '' && existsSync(GO_SERVER) && existsSync(GO_LOADGEN);

/** The Go server's environment against the bench's Redis (it listens on GRPC_PORT). */
export const goServerEnv = (redisPort: number) => ({
  GRPC_HOST: '127.0.0.1',
  REDIS_HOST: '127.0.0.1',
  REDIS_PORT: String(redisPort),
  REDIS_DATABASE: '5',
});

export interface GoLoadgenJson extends LoadResult {
  errors_by_code: Record<string, number>;
  cpu_pct: Record<string, number>;
}

/** Runs the loadgen with these flags (see its README) and returns its JSON line. */
export function goLoadgen(args: string[], timeoutMs: number): GoLoadgenJson {
  const out = execFileSync(GO_LOADGEN, args, {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
    timeout: timeoutMs,
  });
  return JSON.parse(out) as GoLoadgenJson;
}
