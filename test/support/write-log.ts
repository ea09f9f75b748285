import { createHash } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { Scripts } from '../../src/store/redis/scripts.ts';
import { waitFor } from './ports.ts';

/**
 * Redis's own record of the writes it ran, from MONITOR: when each script
 * ran by Redis's clock, on which key, with which arguments, and whether it
 * wrote anything (a fenced-off script runs TIME and stops). The fault suite
 * checks its invariants against this record, not against what the service
 * reported.
 */
export interface ScriptRun {
  /** Redis's clock when the script's commands ran, Unix ms (with µs as decimals). */
  readonly atMs: number;
  /** The script's operation (put, update, ...), as src/store/redis/scripts.ts names the legacy layout's. */
  readonly script: string;
  /** A script of the compact layout (whose put takes more arguments before the payloads). */
  readonly compact: boolean;
  /**
   * The script's keys and arguments: KEYS[1], then ARGV (the fence first,
   * then the script's own, without lua/idempotency.lua's three).
   */
  readonly key: string;
  readonly argv: readonly string[];
  /** True when the script wrote (HSET, DEL, HDEL, PEXPIRE, RENAMENX, PEXPIREAT). */
  readonly wrote: boolean;
  /** True when its fence refused it: it read Redis's clock and stopped. */
  readonly fenced: boolean;
}

const WRITES = new Set(['HSET', 'DEL', 'HDEL', 'PEXPIRE', 'PEXPIREAT', 'RENAMENX']);

const IDEMPOTENCY_ARGUMENTS = 3;

/** compactPut → put, ... */
const COMPACT = /^compact(\w)(\w*)$/;

const IDEMPOTENT = new Set(
  Object.entries(Scripts)
    .filter(([, script]) => script.idempotent)
    .map(([name]) => name),
);

const SCRIPT_BY_SHA = new Map(
  Object.entries(Scripts).map(([name, script]) => [script.sha1, name] as const),
);

interface Line {
  readonly atMs: number;
  readonly lua: boolean;
  readonly args: string[];
}

/** One MONITOR line: `<sec.usec> [<db> <client or lua>] "arg" "arg" ...`. */
function parseLine(text: string): Line | undefined {
  const match = /^\+?(\d+\.\d+) \[\d+ ([^\]]+)\] (.*)$/.exec(text);
  if (!match) return undefined;
  const args: string[] = [];
  const rest = match[3] as string;
  let i = 0;
  while (i < rest.length) {
    if (rest[i] !== '"') {
      i++;
      continue;
    }
    let arg = '';
    i++;
    while (i < rest.length && rest[i] !== '"') {
      if (rest[i] === '\\') {
        const next = rest[i + 1];
        if (next === 'x') {
          arg += String.fromCharCode(Number.parseInt(rest.slice(i + 2, i + 4), 16));
          i += 4;
          continue;
        }
        arg += { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b' }[next as string] ?? next;
        i += 2;
        continue;
      }
      arg += rest[i];
      i++;
    }
    args.push(arg);
    i++;
  }
  return { atMs: Number(match[1]) * 1000, lua: match[2] === 'lua', args };
}

const nameOf = (command: Line): string | undefined => {
  const [verb, script] = command.args;
  if (verb === undefined || script === undefined) return undefined;
  const upper = verb.toUpperCase();
  if (upper === 'EVALSHA') return SCRIPT_BY_SHA.get(script);
  if (upper === 'EVAL')
    return SCRIPT_BY_SHA.get(createHash('sha1').update(script, 'latin1').digest('hex'));
  return undefined;
};

export class WriteLog {
  readonly runs: ScriptRun[] = [];
  #socket: Socket | undefined;
  #pending = '';
  /** Script lines waiting for their lua lines (Redis 7.0 logs a script before its commands). */
  #open: { command: Line; lua: Line[] } | undefined;
  /** Lua lines waiting for their script line (newer Redis logs a script after its commands). */
  #orphans: Line[] = [];
  #scriptFirst: boolean | undefined;
  readonly #marker = `write-log-probe-${process.pid}`;
  readonly #echoes = new Set<string>();
  #closed = false;

  private constructor(readonly port: number) {}

  /** Starts recording; resolves once Redis is known to feed this log. */
  static async start(port: number): Promise<WriteLog> {
    const log = new WriteLog(port);
    await log.attach();
    return log;
  }

  /** (Re)connects after Redis restarted; what ran in between is not in the log. */
  async attach(): Promise<void> {
    this.#socket?.destroy();
    this.#pending = '';
    this.#open = undefined;
    this.#orphans = [];
    const socket = connect(this.port, '127.0.0.1');
    this.#socket = socket;
    socket.setEncoding('latin1');
    socket.on('error', () => socket.destroy());
    socket.on('data', (text: string) => this.#receive(text));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    socket.write('MONITOR\r\n');
    // Learn the order of script and lua lines from a script of our own.
    const marker = `${this.#marker}-${Date.now()}`;
    await this.#probe(
      `EVAL "redis.call('ECHO', ARGV[1])" 0 ${marker}`,
      () => this.#scriptFirst !== undefined,
    );
    await this.settle();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#flush();
    this.#socket?.destroy();
  }

  /** Resolves once everything Redis ran before the call is in `runs`. */
  async settle(): Promise<void> {
    const marker = `${this.#marker}-settle-${Date.now()}`;
    await this.#probe(`ECHO ${marker}`, () => this.#echoes.has(marker));
    this.#echoes.delete(marker);
    this.#flush();
  }

  /** Sends `command` on a connection of its own until MONITOR shows `seen`. */
  async #probe(command: string, seen: () => boolean): Promise<void> {
    const probe = connect(this.port, '127.0.0.1');
    probe.on('error', () => probe.destroy());
    try {
      await waitFor('MONITOR to show a probe', async () => {
        probe.write(`${command}\r\n`);
        await new Promise((resolve) => setTimeout(resolve, 50));
        return seen();
      });
    } finally {
      probe.destroy();
    }
  }

  #receive(text: string): void {
    if (this.#closed) return;
    this.#pending += text;
    let end = this.#pending.indexOf('\r\n');
    while (end >= 0) {
      const line = this.#pending.slice(0, end);
      this.#pending = this.#pending.slice(end + 2);
      const parsed = parseLine(line);
      if (parsed) this.#line(parsed);
      end = this.#pending.indexOf('\r\n');
    }
  }

  #line(line: Line): void {
    const [verb, first] = line.args;
    if (!line.lua && verb?.toUpperCase() === 'ECHO' && first !== undefined) this.#echoes.add(first);
    if (this.#scriptFirst === undefined) {
      if (line.lua && verb === 'ECHO' && first?.startsWith(this.#marker)) {
        this.#scriptFirst = this.#open !== undefined;
        this.#open = undefined;
        this.#orphans = [];
        return;
      }
      if (!line.lua && verb?.toUpperCase() === 'EVAL' && line.args.at(-1)?.startsWith(this.#marker))
        this.#open = { command: line, lua: [] };
      return;
    }
    if (line.lua) {
      if (this.#scriptFirst) this.#open?.lua.push(line);
      else this.#orphans.push(line);
      return;
    }
    if (this.#scriptFirst) {
      this.#flush();
      if (nameOf(line)) this.#open = { command: line, lua: [] };
    } else if (nameOf(line)) {
      this.#record(line, this.#orphans);
      this.#orphans = [];
    } else this.#orphans = [];
  }

  #flush(): void {
    if (this.#open) this.#record(this.#open.command, this.#open.lua);
    this.#open = undefined;
  }

  #record(command: Line, lua: readonly Line[]): void {
    const script = nameOf(command);
    if (!script) return;
    // EVALSHA sha numkeys key... arg...
    const numkeys = Number(command.args[2]);
    const argv = command.args.slice(3 + numkeys);
    if (IDEMPOTENT.has(script)) argv.splice(1, IDEMPOTENCY_ARGUMENTS);
    // The compact layout's scripts (compactPut ...) count as their operation
    // (put ...); their first two arguments after the fence (the owner stem,
    // the pieces flag) go.
    const compact = COMPACT.exec(script);
    if (compact) argv.splice(1, 2);
    this.runs.push({
      atMs: lua[0]?.atMs ?? command.atMs,
      script: compact ? `${compact[1]?.toLowerCase()}${compact[2]}` : script,
      compact: compact !== null,
      key: command.args[3] ?? '',
      argv,
      wrote: lua.some((l) => WRITES.has(l.args[0]?.toUpperCase() ?? '')),
      fenced: lua.length === 1 && lua[0]?.args[0]?.toUpperCase() === 'TIME',
    });
  }
}
