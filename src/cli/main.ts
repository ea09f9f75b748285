#!/usr/bin/env node
// The server package's `sessionmanager`: `serve` starts the server; every
// other command is the client's CLI (@sessionmanager/client), which
// operators can also install alone.
const [command] = process.argv.slice(2);
if (command === 'serve') {
  await import('../main.ts');
} else {
  const { run } = await import('@sessionmanager/client/cli');
  process.exitCode = await run(process.argv.slice(2));
}
