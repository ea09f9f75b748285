// `npm test`: every test file under test/<kind>/ and client/test/, through node's
// test runner with tsx. Tests start their own redis-server; say so up front
// when it is missing instead of failing file by file.
import { execFileSync, spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';

try {
  execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
} catch {
  console.error(
    'npm test: redis-server is not installed. The tests start their own Redis processes on free loopback ports;\n' +
      'install it first: `apt-get install -y redis-server` (Debian/Ubuntu) or `brew install redis` (macOS).',
  );
  process.exit(1);
}

// Tests by kind; test/deploy and test/container need kubectl, promtool and
// podman, and run from their own scripts (npm run test:deploy, test:container).
const KINDS = [
  'test/unit',
  'test/contract',
  'test/e2e',
  'test/fault',
  'test/topology',
  'client/test',
];
const files = KINDS.flatMap((dir) =>
  readdirSync(dir)
    .filter((name) => name.endsWith('.test.ts'))
    .map((name) => join(dir, name)),
);
const only = process.argv.slice(2);
const selected = only.length > 0 ? files.filter((f) => only.some((o) => f.includes(o))) : files;

const result = spawnSync(
  process.execPath,
  [
    '--conditions=@sessionmanager/source',
    '--import',
    'tsx',
    '--test',
    '--test-reporter=spec',
    '--test-concurrency=2',
    ...selected,
  ],
  { stdio: 'inherit' },
);
process.exit(result.status ?? 1);
