import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A Lua script loaded once from lua/<name>-<number of keys>.lua, with the includes it uses. */
export interface Script {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
}

const read = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

/** Every script here writes, so every one starts with the fence (lua/fence.lua). */
const FENCE = read('fence');
/** The expiry rule and the check for torn sessions (lua/session.lua). */
const SESSION = read('session');

function load(name: string, includes: readonly string[] = []): Script {
  const source = [FENCE, ...includes, read(name)].join('\n');
  return { name, source, sha1: createHash('sha1').update(source).digest('hex') };
}

export const Scripts = {
  put: load('put-1', [SESSION]),
  touch: load('touch-1', [SESSION]),
  update: load('update-1', [SESSION]),
  consume: load('consume-1'),
  delete: load('delete-1', [SESSION]),
  rotate: load('rotate-2', [SESSION]),
  repair: load('repair-1', [SESSION]),
} as const;
