#!/usr/bin/env bash
# The client package as a Node team installs it: `npm pack`, then the tarball
# installed into throwaway projects that use it through plain require() and
# import, Jest 30 in CommonJS mode, and TypeScript 5.x with the commonjs/node10,
# nodenext and bundler settings; `npm publish --dry-run` must be clean. Jest
# and TypeScript for those projects come from the npm registry (pinned), so
# this runs from .ci/run, not from `npm test`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

npm run build -w client --silent
(cd client && npm publish --dry-run --ignore-scripts 2>&1 | tee "$work/publish.log" | tail -n 5)
if grep -i "warn" "$work/publish.log" | grep -v "requires you to be logged in"; then
  echo "npm publish --dry-run warned"; exit 1
fi
tarball="$work/$(cd client && npm pack --silent --pack-destination "$work")"
echo "packed $tarball"

project() { # name, then package.json dependencies as JSON
  mkdir -p "$work/$1"
  printf '{ "name": "%s", "private": true, "version": "1.0.0", "devDependencies": %s }\n' "$1" "$2" >"$work/$1/package.json"
  (cd "$work/$1" && npm install --no-audit --no-fund --prefer-offline --silent "$tarball" >/dev/null)
}

echo "== require() and import, and the CLI"
project plain '{}'
cat >"$work/plain/use.cjs" <<'JS'
const { createClient, SessionError } = require('@sessionmanager/client');
const client = createClient({ address: '127.0.0.1:1', retries: false, deadlineMs: 2000 });
client.getSession({ sessionKey: 'k' }).then(
  () => { throw new Error('succeeded'); },
  (error) => {
    if (!(error instanceof SessionError) || error.code !== 'UNAVAILABLE') throw error;
    client.close();
    console.log('require: ok');
  },
);
JS
cat >"$work/plain/use.mjs" <<'JS'
import { createRequire } from 'node:module';
import { createClient, SessionError } from '@sessionmanager/client';
const required = createRequire(import.meta.url)('@sessionmanager/client');
if (required.SessionError !== SessionError) throw new Error('two copies of SessionError');
const client = createClient({ address: '127.0.0.1:1', retries: false, deadlineMs: 2000 });
await client.getSession({ sessionKey: 'k' }).catch((error) => {
  if (!(error instanceof SessionError)) throw error;
});
client.close();
console.log('import: ok');
JS
(cd "$work/plain" && node use.cjs && node use.mjs && npx --no-install sessionmanager --help | head -n 1)

echo "== Jest 30, CommonJS"
project jest '{ "jest": "30.2.0" }'
cat >"$work/jest/client.test.js" <<'JS'
const { createClient, SessionError, rawCodec } = require('@sessionmanager/client');
test('the client loads under Jest and fails with a SessionError', async () => {
  const client = createClient({ address: '127.0.0.1:1', retries: false, deadlineMs: 2000, codec: { attributes: rawCodec } });
  await expect(client.deleteSession({ sessionKey: 'k' })).rejects.toBeInstanceOf(SessionError);
  client.close();
});
JS
(cd "$work/jest" && npx --no-install jest --ci 2>&1 | tail -n 5)

typescript_project() { # name, typescript version, tsconfig compilerOptions JSON, file extension
  project "$1" "{ \"typescript\": \"$2\", \"@types/node\": \"20.19.43\" }"
  printf '{ "compilerOptions": %s, "include": ["*.%s"] }\n' "$3" "$4" >"$work/$1/tsconfig.json"
  cat >"$work/$1/use.$4" <<'TS'
import { createClient, SessionError, type SessionClient } from '@sessionmanager/client';
const client: SessionClient<{ from: string }, unknown, string> = createClient({ host: 'localhost', transport: 'lean' });
export async function read(key: string): Promise<string | undefined> {
  try {
    return (await client.getSession({ sessionKey: key }, { metadata: { 'x-request-id': 'r1' } }))?.fleetListRequest?.from;
  } catch (error) {
    if (error instanceof SessionError) return error.requestId;
    throw error;
  }
}
TS
  (cd "$work/$1" && npx --no-install tsc --noEmit -p . && echo "$1 (typescript $2): ok")
}

echo "== TypeScript"
typescript_project ts-node10 5.4.5 '{ "module": "commonjs", "moduleResolution": "node10", "target": "es2022", "strict": true, "types": ["node"] }' ts
typescript_project ts-nodenext-cjs 5.4.5 '{ "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022", "strict": true, "types": ["node"] }' cts
typescript_project ts-nodenext-esm 5.9.3 '{ "module": "nodenext", "moduleResolution": "nodenext", "target": "es2022", "strict": true, "types": ["node"] }' mts
typescript_project ts-bundler 5.9.3 '{ "module": "esnext", "moduleResolution": "bundler", "target": "es2022", "strict": true, "types": ["node"] }' ts
echo "client install matrix: all passed"
