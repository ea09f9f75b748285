import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A Lua script loaded once from lua/<name>-<number of keys>.lua. */
export interface Script {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
}

const read = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

const FENCE = read('fence');

/** Every script here writes, so every one starts with the fence (lua/fence.lua). */
function load(name: string): Script {
  const source = `${FENCE}\n${read(name)}`;
  return { name, source, sha1: createHash('sha1').update(source).digest('hex') };
}

export const Scripts = {
  put: load('put-1'),
  touch: load('touch-1'),
  update: load('update-1'),
  consume: load('consume-1'),
  delete: load('delete-1'),
  rotate: load('rotate-2'),
} as const;
