import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

// The protocol code under src/wire/ knows nothing of sessions: it imports
// node's modules and its own files, nothing else of the service.

const WIRE = join(import.meta.dirname, '../../src/wire');

describe('src/wire imports nothing from the domain', () => {
  it('every import under src/wire is node:* or another file under src/wire', () => {
    const files = readdirSync(WIRE, { recursive: true, encoding: 'utf8' }).filter((name) =>
      name.endsWith('.ts'),
    );
    assert.ok(files.length >= 2, files.join(', '));
    for (const name of files) {
      const file = join(WIRE, name);
      const source = readFileSync(file, 'utf8');
      for (const [, specifier] of source.matchAll(/(?:import|export)[^'"]*from\s+'([^']+)'/g)) {
        if (specifier?.startsWith('node:')) continue;
        const target = resolve(dirname(file), specifier ?? '');
        assert.ok(
          specifier?.startsWith('.') && !relative(WIRE, target).startsWith('..'),
          `${relative(WIRE, file)} imports ${specifier}`,
        );
      }
    }
  });
});
