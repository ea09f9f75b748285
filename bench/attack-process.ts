// One HTTP/2 attack as its own process, so that its CPU is not the measuring
// process's: `node --import tsx bench/attack-process.ts NAME PORT SECONDS`.
// Prints the attack's report (test/support/h2-attacks.ts) as JSON.
import { ATTACKS } from '../test/support/h2-attacks.ts';

const [name, port, seconds] = process.argv.slice(2);
const attack = ATTACKS.find((candidate) => candidate.name === name);
if (!attack || !port || !seconds) {
  console.error(
    `usage: attack-process.ts NAME PORT SECONDS; NAME is one of: ${ATTACKS.map((a) => a.name).join(', ')}`,
  );
  process.exit(2);
}
const stop = new AbortController();
setTimeout(() => stop.abort(), Number(seconds) * 1000);
const report = await attack.run(Number(port), stop.signal);
console.log(JSON.stringify(report));
process.exit(0);
