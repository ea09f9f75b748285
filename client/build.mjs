// Builds the package: one CommonJS bundle per entry (the client's sources
// and the wire modules of ../src/wire it imports, so the package carries the
// one HTTP/2, HPACK, gRPC and protobuf implementation the server runs, and
// depends on nothing of the server), thin ES module wrappers that re-export
// them (one copy of every class, so `instanceof SessionError` holds whether
// the caller used import or require), and declarations for both.
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { build } from 'esbuild';

const dist = new URL('./dist/', import.meta.url);
rmSync(dist, { recursive: true, force: true });
mkdirSync(new URL('cjs/', dist), { recursive: true });
mkdirSync(new URL('esm/', dist), { recursive: true });

const entries = { index: 'src/index.ts', 'cli-run': 'src/cli/run.ts' };
await build({
  entryPoints: entries,
  outdir: 'dist/cjs',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'cjs',
  packages: 'external',
  sourcemap: true,
  sourcesContent: false,
  logLevel: 'warning',
});
writeFileSync(new URL('cjs/package.json', dist), '{ "type": "commonjs" }\n');
writeFileSync(
  new URL('cjs/cli.js', dist),
  "#!/usr/bin/env node\n'use strict';\nrequire('./cli-run.js')\n  .run(process.argv.slice(2))\n  .then((code) => {\n    process.exitCode = code;\n  });\n",
);
chmodSync(new URL('cjs/cli.js', dist), 0o755);

// Declarations of client/src and the wire modules it imports, kept in their
// relative layout; under dist/cjs they read as CommonJS, as the bundles are.
const typescript = createRequire(import.meta.url).resolve('typescript/package.json');
execFileSync(
  process.execPath,
  [new URL('bin/tsc', `file://${typescript}`).pathname, '-p', 'tsconfig.types.json'],
  {
    stdio: 'inherit',
  },
);

const require = createRequire(import.meta.url);
for (const name of Object.keys(entries)) {
  const exported = Object.keys(require(`./dist/cjs/${name}.js`)).filter((key) => key !== 'default');
  writeFileSync(
    new URL(`esm/${name}.js`, dist),
    `export { ${exported.join(', ')} } from '../cjs/${name}.js';\n`,
  );
  const source = entries[name].replace(/^src\//, '').replace(/\.ts$/, '.js');
  writeFileSync(
    new URL(`esm/${name}.d.ts`, dist),
    `export * from '../cjs/types/client/src/${source}';\n`,
  );
}
