import { readFileSync } from 'node:fs';
import type { Config } from './config.ts';
import type { BuildInfo } from './metrics.ts';

/**
 * What runs, for `sessionmanager_build_info`: the version from package.json
 * (beside `src/` and `dist/` alike, and in the image), the Node.js version,
 * the gRPC transport and the store (`memory` or `redis-<topology>`).
 */
export function buildInfo(config: Config): BuildInfo {
  const manifest = JSON.parse(
    readFileSync(new URL('../package.json', import.meta.url), 'utf8'),
  ) as { version: string };
  return {
    version: manifest.version,
    node_version: process.version,
    transport: config.transport,
    store: config.redis ? `redis-${config.redis.topology.kind}` : 'memory',
  };
}
