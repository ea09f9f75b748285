// `npm run faults:long`: the fault suite's long variants (test/fault/*.test.ts
// with FAULTS_LONG=1): longer outages, more flaps, kills, races and fuzz runs.
// Each test prints its figures on a line containing "figures:"; the
// network-fault suite also prints its table (and writes it to FAULTS_TABLE
// when set). `npm run faults:long -- network` runs only test/fault/network.
import { spawnSync } from 'node:child_process';

const only = process.argv.slice(2).map((name) => `test/fault/${name}`);
const result = spawnSync(
  process.execPath,
  ['scripts/run-tests.js', ...(only.length > 0 ? only : ['test/fault/'])],
  {
    stdio: 'inherit',
    env: { ...process.env, FAULTS_LONG: '1', CRASH_KILLS: process.env.CRASH_KILLS ?? '25' },
  },
);
process.exit(result.status ?? 1);
