import { status } from '@grpc/grpc-js';
import { compactKey } from '../../src/store/redis/keys.ts';
import { sleep } from './faults.ts';
import type { Message, RawClient } from './grpc.ts';
import type { ScriptRun } from './write-log.ts';

/**
 * The workload and the checker of the network-fault suite
 * (test/fault/network.test.ts). Callers run set, get, get-with-touch,
 * update (with and without expected_version), touch, consume and delete on
 * keys each caller owns, so that the calls on one key never overlap: each
 * payload names its key and its call, and Redis's own record of the scripts
 * it ran (WriteLog) says when each write really applied. From the calls and
 * that record the checker counts what the invariants forbid.
 */

export type Operation =
  | 'set'
  | 'get'
  | 'getTouch'
  | 'update'
  | 'cas'
  | 'touch'
  | 'consume'
  | 'delete';

export interface Call {
  readonly key: string;
  readonly op: Operation;
  /** Unique per call: the payload of a set and the attribute an update writes name it. */
  readonly id: number;
  readonly deadlineMs: number;
  readonly start: number;
  end: number;
  code: number;
}

/** What a key can hold, as far as the checker tracks it. */
interface State {
  readonly present: boolean;
  readonly payload: string | null;
  readonly w: string | null;
}

const ABSENT: State = { present: false, payload: null, w: null };
const sameState = (a: State, b: State) =>
  a.present === b.present && a.payload === b.payload && a.w === b.w;

const DEADLINES_MS = [400, 1500] as const;
const TTL_SECONDS = 3600;

/** Codes that are answers, not failures: the session was absent, or the version differed. */
const ANSWERS = new Set<number>([status.OK, status.NOT_FOUND, status.ABORTED]);

export const statusName = (code: number) => status[code] ?? String(code);

/** The load: `callers` callers with `keysEach` keys of their own, until stop() resolves. */
export class Workload {
  readonly calls: Call[] = [];
  /** Replies that carried another key's session: a reply handed to the wrong caller. */
  misdelivered = 0;
  readonly keys: string[] = [];
  readonly #client: RawClient;
  readonly #versions = new Map<string, number>();
  #nextId = 0;
  #running = false;
  #callers: Promise<void>[] = [];

  constructor(client: RawClient, name: string, callers: number, keysEach: number) {
    this.#client = client;
    for (let c = 0; c < callers; c++) {
      const own = Array.from({ length: keysEach }, (_, k) => `${name}-${c}-${k}-${process.pid}`);
      this.keys.push(...own);
    }
    this.#keysEach = keysEach;
    this.#callerCount = callers;
  }

  readonly #keysEach: number;
  readonly #callerCount: number;

  start(): void {
    this.#running = true;
    this.#callers = Array.from({ length: this.#callerCount }, (_, c) =>
      this.#caller(this.keys.slice(c * this.#keysEach, (c + 1) * this.#keysEach), c),
    );
  }

  /** Stops the callers and waits for every call in flight to end. */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all(this.#callers);
  }

  /**
   * True once every caller's latest finished call began after `since` and
   * was answered (OK, NOT_FOUND, ABORTED): the service serves again.
   */
  answeringSince(since: number): boolean {
    return (
      this.#latest.length === this.#callerCount &&
      this.#latest.every(
        (call) => call !== undefined && call.start >= since && ANSWERS.has(call.code),
      )
    );
  }

  readonly #latest: Array<Call | undefined> = [];

  /** True once a call that ended after `since` failed (not an answer). */
  failedSince(since: number): boolean {
    for (let i = this.calls.length - 1; i >= 0; i--) {
      const call = this.calls[i] as Call;
      if (call.end === 0) continue;
      if (call.start < since - 10_000) return false;
      if (call.end >= since && !ANSWERS.has(call.code)) return true;
    }
    return false;
  }

  async #caller(keys: readonly string[], index: number): Promise<void> {
    this.#latest[index] = undefined;
    while (this.#running) {
      const key = keys[Math.floor(Math.random() * keys.length)] as string;
      const op = pick();
      const call: Call = {
        key,
        op,
        id: this.#nextId++,
        deadlineMs: DEADLINES_MS[Math.floor(Math.random() * DEADLINES_MS.length)] as number,
        start: Date.now(),
        end: 0,
        code: status.OK,
      };
      this.calls.push(call);
      try {
        this.#check(call, await this.#send(call));
      } catch (error) {
        call.code = (error as { code: number }).code;
      }
      call.end = Date.now();
      this.#latest[index] = call;
      // A retrying client pauses after a failure rather than spinning.
      if (!ANSWERS.has(call.code)) await sleep(10 + Math.random() * 20);
    }
  }

  #send(call: Call): Promise<Message> {
    const { key, id } = call;
    const options = { deadlineMs: call.deadlineMs };
    const session_key = key;
    switch (call.op) {
      case 'set':
        return this.#client.call(
          'SetSession',
          {
            session_key,
            fleet_list_request: Buffer.from(`${key}#${id}`),
            ttl_seconds: TTL_SECONDS,
          },
          options,
        );
      case 'get':
        return this.#client.call('GetSession', { session_key }, options);
      case 'getTouch':
        return this.#client.call('GetSession', { session_key, touch: true }, options);
      case 'update':
      case 'cas':
        return this.#client.call(
          'UpdateSession',
          {
            session_key,
            set_attributes: { w: Buffer.from(String(id)) },
            ...(call.op === 'cas' && { expected_version: this.#versions.get(key) ?? 1 }),
          },
          options,
        );
      case 'touch':
        return this.#client.call(
          'TouchSession',
          { session_key, ttl_seconds: TTL_SECONDS },
          options,
        );
      case 'consume':
        return this.#client.call('ConsumeSession', { session_key }, options);
      case 'delete':
        return this.#client.call('DeleteSession', { session_key }, options);
    }
  }

  /** A session in a reply must be this key's. */
  #check(call: Call, reply: Message): void {
    const payload = reply.fleet_list_request;
    if (Buffer.isBuffer(payload) && payload.length > 0) {
      if (!payload.toString().startsWith(`${call.key}#`)) this.misdelivered++;
    }
    if (reply.version !== undefined && Number(reply.version) > 0)
      this.#versions.set(call.key, Number(reply.version));
  }
}

/** Writes first: the state the checker follows changes often; reads see it. */
function pick(): Operation {
  const roll = Math.random();
  if (roll < 0.3) return 'set';
  if (roll < 0.45) return 'get';
  if (roll < 0.52) return 'getTouch';
  if (roll < 0.64) return 'update';
  if (roll < 0.72) return 'cas';
  if (roll < 0.8) return 'touch';
  if (roll < 0.9) return 'consume';
  return 'delete';
}

/** What one fault did, for the table in docs/guarantees.md. */
export interface FaultFigures {
  readonly fault: string;
  readonly calls: number;
  /** Every outcome by status name: answers (OK, NOT_FOUND, ABORTED) and failures. */
  readonly byCode: Record<string, number>;
  /** Slowest call as the caller saw it, and the most any call overran its deadline. */
  readonly maxCallMs: number;
  readonly maxOverDeadlineMs: number;
  readonly overDeadline: number;
  /** Writes Redis applied after their caller was told they failed. */
  readonly ghosts: number;
  /**
   * Writes applied after their caller's own deadline passed, where the
   * service provably read the request later than the fence's margin allows:
   * outside the guarantee's conditions (a service starved of CPU).
   */
  readonly outsideConditions: number;
  readonly outsideSamples: readonly string[];
  /** Failed writes Redis applied before their caller was told: allowed, and counted. */
  readonly failedButApplied: number;
  readonly lost: number;
  readonly resurrected: number;
  readonly misdelivered: number;
  /** From the fault clearing to the last failure of a call started after it (0: none failed). */
  readonly recoveryMs: number;
  /** Runs of the write scripts on the workload's keys in Redis's record. */
  readonly writesSeen: number;
  /** Writes Redis refused because their fence had closed. */
  readonly fencedOff: number;
  /** The first ghosts, as Redis ran them and as their callers saw them. */
  readonly ghostSamples: readonly string[];
}

/**
 * Checks a finished workload against Redis's record and the final state of
 * every key (as the service reads it): ghosts, lost and resurrected writes,
 * misdelivered replies, calls past their deadline, recovery.
 */
export function checkRun(options: {
  fault: string;
  prefix: string;
  workload: Workload;
  runs: readonly ScriptRun[];
  finalStates: ReadonlyMap<string, State>;
  clearedAt: number;
  marginMs: number;
  commandTimeoutMs: number;
}): FaultFigures {
  const { workload, prefix, runs, finalStates, clearedAt, marginMs } = options;
  const byId = new Map<number, Call>();
  const byKey = new Map<string, Call[]>();
  const keyOf = new Map<string, string>();
  for (const key of workload.keys) {
    keyOf.set(compactKey(prefix, key), key);
    byKey.set(key, []);
  }
  for (const call of workload.calls) {
    byId.set(call.id, call);
    byKey.get(call.key)?.push(call);
  }

  const byCode: Record<string, number> = {};
  let maxCallMs = 0;
  let maxOverDeadlineMs = Number.NEGATIVE_INFINITY;
  let overDeadline = 0;
  let recoveryMs = 0;
  for (const call of workload.calls) {
    const name = statusName(call.code);
    byCode[name] = (byCode[name] ?? 0) + 1;
    const took = call.end - call.start;
    maxCallMs = Math.max(maxCallMs, took);
    maxOverDeadlineMs = Math.max(maxOverDeadlineMs, took - call.deadlineMs);
    if (took > call.deadlineMs + marginMs) overDeadline++;
    if (call.start >= clearedAt && !ANSWERS.has(call.code))
      recoveryMs = Math.max(recoveryMs, call.end - clearedAt);
  }

  let ghosts = 0;
  let failedButApplied = 0;
  let fencedOff = 0;
  let writesSeen = 0;
  const attributed = new Set<Call>();
  const ghostSamples: string[] = [];
  let outsideConditions = 0;
  const outsideSamples: string[] = [];
  const ghost = (run: ScriptRun, call: Call | undefined) => {
    ghosts++;
    if (ghostSamples.length < 3) ghostSamples.push(JSON.stringify({ run, call }));
  };
  const applied = (call: Call, run: ScriptRun) => {
    if (call.code === status.OK) return;
    // Redis's clock has µs, the caller's ms: 1 ms is the rounding.
    if (run.atMs <= call.end + 1) failedButApplied++;
    else if (readLate(call, run)) {
      outsideConditions++;
      if (outsideSamples.length < 3) outsideSamples.push(JSON.stringify({ run, call }));
    } else ghost(run, call);
  };
  /**
   * The guarantee's condition (docs/guarantees.md): the service reads a
   * request within the margin its fence leaves before the caller's deadline.
   * The fence says when the service read the request, at the latest:
   * fence = read + min(3/4 of the command timeout, half the time left), the
   * time left being at most the caller's deadline.
   */
  const readLate = (call: Call, run: ScriptRun) => {
    if (call.code !== status.DEADLINE_EXCEEDED) return false;
    const fenceInMs = Math.min(options.commandTimeoutMs * 0.75, call.deadlineMs / 2);
    const readAtLeastAt = Number(run.argv[0]) - fenceInMs;
    return readAtLeastAt - call.start > call.deadlineMs - fenceInMs;
  };
  for (const run of runs) {
    const key = keyOf.get(run.key);
    if (key === undefined) continue;
    writesSeen++;
    if (run.fenced) fencedOff++;
    if (!run.wrote) continue;
    if (run.script === 'put' || run.script === 'update') {
      const call = byId.get(idOf(run));
      if (call) applied(call, run);
      else ghost(run, undefined);
    } else if (run.script === 'consume' || run.script === 'delete') {
      // Calls on a key never overlap: the write belongs to the call of its
      // kind in flight when it ran, once; any other is from a call that had
      // already ended, and an acknowledged call's write never comes late.
      const during = (byKey.get(key) ?? []).find(
        (c) =>
          c.op === run.script && c.start <= run.atMs && run.atMs <= c.end + 1 && !attributed.has(c),
      );
      if (during) {
        attributed.add(during);
        applied(during, run);
      } else ghost(run, undefined);
    }
  }

  let lost = 0;
  let resurrected = 0;
  for (const key of workload.keys) {
    const possible = possibleStates(byKey.get(key) ?? []);
    const actual = finalStates.get(key) ?? ABSENT;
    if (possible.some((state) => sameState(state, actual))) continue;
    if (actual.present && possible.every((state) => !state.present)) resurrected++;
    else lost++;
  }

  return {
    fault: options.fault,
    calls: workload.calls.length,
    byCode,
    maxCallMs,
    maxOverDeadlineMs,
    overDeadline,
    ghosts,
    outsideConditions,
    outsideSamples,
    failedButApplied,
    lost,
    resurrected,
    misdelivered: workload.misdelivered,
    recoveryMs,
    writesSeen,
    fencedOff,
    ghostSamples,
  };
}

/** The call id a put or update run carries: put's request is `key#id`, update's set attribute w is the id. */
function idOf(run: ScriptRun): number {
  // run.argv starts with the fence: put fence, now, ttl, lifetime, size, request ...; the
  // compact put: fence, now, ttl, lifetime, size, request length, owner, limit, policy,
  // retire, p0, the payloads (request then response: here the response is empty) ...
  const request = run.argv[run.compact ? 11 : 5];
  if (run.script === 'put') return Number(request?.slice(request.lastIndexOf('#') + 1));
  // update: fence, now, lifetime, max bytes, max attributes, expected, ttl, 4 payload args, n, attr:w, id
  return Number(run.argv[13]);
}

/**
 * The states a key may end in after its calls, in order: an acknowledged
 * call leaves its effect alone; a failed one may have applied, or not.
 */
function possibleStates(calls: readonly Call[]): State[] {
  let states: State[] = [ABSENT];
  for (const call of calls) {
    const after = (state: State): State | undefined => {
      switch (call.op) {
        case 'set':
          return { present: true, payload: `${call.key}#${call.id}`, w: null };
        case 'update':
        case 'cas':
          return state.present ? { ...state, w: String(call.id) } : state;
        case 'consume':
        case 'delete':
          return ABSENT;
        default:
          return undefined;
      }
    };
    if (call.code === status.NOT_FOUND) {
      // A definitive answer: the session was absent when the call ran.
      if (call.op !== 'delete') states = [ABSENT];
      continue;
    }
    if (call.code === status.ABORTED) continue;
    const next = states.map((state) => after(state) ?? state);
    if (call.code === status.OK) states = dedupe(next);
    else states = dedupe([...states, ...next]);
  }
  return states;
}

/** Drops repeated states; a Map, since a key's failed calls can add hundreds. */
function dedupe(states: State[]): State[] {
  const unique = new Map<string, State>();
  for (const state of states) unique.set(`${state.present} ${state.payload} ${state.w}`, state);
  return [...unique.values()];
}

/** Every key's state as the service reads it (GetSession), retrying while it recovers. */
export async function readFinalStates(
  client: RawClient,
  keys: readonly string[],
): Promise<Map<string, State>> {
  const states = new Map<string, State>();
  const queue = [...keys];
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      for (let key = queue.pop(); key !== undefined; key = queue.pop()) {
        for (let attempt = 1; ; attempt++) {
          try {
            const session = await client.call('GetSession', { session_key: key });
            const w = session.attributes?.w;
            states.set(key, {
              present: true,
              payload: Buffer.from(session.fleet_list_request).toString(),
              w: Buffer.isBuffer(w) ? w.toString() : null,
            });
            break;
          } catch (error) {
            const code = (error as { code: number }).code;
            if (code === status.NOT_FOUND) {
              states.set(key, ABSENT);
              break;
            }
            if (attempt === 100) throw error;
            await sleep(100);
          }
        }
      }
    }),
  );
  return states;
}

/** The fault-suite table, one row per fault, as docs/guarantees.md shows it. */
export function table(rows: readonly FaultFigures[]): string {
  const lines = [
    '| fault | calls | failures by code | answers (OK / NOT_FOUND / ABORTED) | max call ms | max over deadline ms | ghosts | ghosts outside the conditions | failed but applied before told | lost | resurrected | misdelivered | recovery ms |',
    '|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const row of rows) {
    const failures = Object.entries(row.byCode)
      .filter(([code]) => !['OK', 'NOT_FOUND', 'ABORTED'].includes(code))
      .map(([code, n]) => `${code} ${n}`)
      .join(', ');
    const answers = ['OK', 'NOT_FOUND', 'ABORTED'].map((code) => row.byCode[code] ?? 0).join(' / ');
    lines.push(
      `| ${row.fault} | ${row.calls} | ${failures || '–'} | ${answers} | ${row.maxCallMs} | ${row.maxOverDeadlineMs} | ${row.ghosts} | ${row.outsideConditions} | ${row.failedButApplied} | ${row.lost} | ${row.resurrected} | ${row.misdelivered} | ${row.recoveryMs} |`,
    );
  }
  return lines.join('\n');
}
