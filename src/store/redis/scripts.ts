import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A Lua script loaded once from lua/<name>-<number of keys>.lua, with the includes it uses. */
export interface Script {
  readonly name: string;
  readonly source: string;
  readonly sha1: string;
  /** Loaded with lua/idempotency.lua: its three arguments follow the fence. */
  readonly idempotent: boolean;
}

const read = (name: string) => readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), 'utf8');

/** Every script here writes, so every one starts with the fence (lua/fence.lua). */
const FENCE = read('fence');
/** The expiry rule and the check for torn sessions (lua/session.lua). */
const SESSION = read('session');
/** The compact layout's fields, owner indexes and expiry rule (lua/compact.lua). */
const COMPACT = read('compact');
/** The idempotency record read before, and written with, a write (lua/idempotency.lua). */
const IDEMPOTENCY = read('idempotency');

function load(name: string, includes: readonly string[] = []): Script {
  return script(name, false, [FENCE, ...includes, read(name)]);
}

/** A write that honours an idempotency key: its body runs inside lua/idempotency.lua's settle(). */
function loadIdempotent(name: string, includes: readonly string[] = []): Script {
  return script(name, true, [
    FENCE,
    IDEMPOTENCY,
    ...includes,
    `local function run()\n${read(name)}\nend`,
    'return settle(run())',
  ]);
}

function script(name: string, idempotent: boolean, parts: readonly string[]): Script {
  const source = parts.join('\n');
  return { name, source, sha1: createHash('sha1').update(source).digest('hex'), idempotent };
}

/** The legacy layout's scripts (put-1.lua ...), and the compact layout's (compact-put-2.lua ...). */
export const Scripts = {
  put: loadIdempotent('put-1', [SESSION]),
  touch: loadIdempotent('touch-1', [SESSION]),
  update: loadIdempotent('update-1', [SESSION]),
  consume: loadIdempotent('consume-1'),
  delete: loadIdempotent('delete-1', [SESSION]),
  rotate: loadIdempotent('rotate-2', [SESSION]),
  repair: load('repair-1', [SESSION]),
  secret: load('secret-1'),
  compactPut: loadIdempotent('compact-put-2', [COMPACT]),
  compactTouch: loadIdempotent('compact-touch-1', [COMPACT]),
  compactUpdate: loadIdempotent('compact-update-1', [COMPACT]),
  compactConsume: loadIdempotent('compact-consume-1', [COMPACT]),
  compactDelete: loadIdempotent('compact-delete-1', [COMPACT]),
  compactRotate: loadIdempotent('compact-rotate-2', [COMPACT]),
  compactRepair: load('compact-repair-1', [COMPACT]),
  ownerList: load('owner-list-1', [COMPACT]),
  ownerRevoke: loadIdempotent('owner-revoke-1', [COMPACT]),
} as const;
