import type { SocketBatch } from './socket-batch.ts';

/**
 * RESP2 (https://redis.io/docs/latest/develop/reference/protocol-spec/) as
 * the store speaks it on a standalone connection: commands written straight
 * into a socket batch, replies parsed in place with bulk strings as views of
 * the bytes received. The commands are few (EVALSHA, EVAL, HGETALL, AUTH,
 * SELECT, PING) and the replies simple: integers, bulk strings and arrays of
 * them, nil, status and error lines.
 */

/** An error reply ("-ERR ..."): Redis's answer, not a failure of the link. */
export class ErrorReply extends Error {
  override name = 'ErrorReply';
}

/** A status line ("+OK") is a Buffer like a bulk string; "-ERR ..." is an ErrorReply. */
export type Reply = Buffer | number | null | Reply[];

const CR = 0x0d;
const CRLF_BYTES = 2;

/** Decimal digits of a non-negative integer. */
function digits(n: number): number {
  let count = 1;
  while (n >= 10) {
    n = Math.floor(n / 10);
    count++;
  }
  return count;
}

/** Writes `prefix`, the decimal `n` and CRLF at `at`; returns the offset after them. */
function writeHeader(buf: Buffer, at: number, prefix: number, n: number): number {
  buf[at] = prefix;
  const width = digits(n);
  for (let i = width; i > 0; i--) {
    buf[at + i] = 0x30 + (n % 10);
    n = Math.floor(n / 10);
  }
  buf[at + width + 1] = CR;
  buf[at + width + 2] = 0x0a;
  return at + width + 3;
}

const headerBytes = (n: number) => 1 + digits(n) + CRLF_BYTES;

/** Appends one command (an array of bulk strings) to `out`. */
export function writeCommand(out: SocketBatch, args: ReadonlyArray<string | Buffer>): void {
  let at = out.claim(headerBytes(args.length));
  writeHeader(out.arena, at, 0x2a, args.length);
  for (const arg of args) {
    if (typeof arg === 'string') {
      const length = Buffer.byteLength(arg);
      at = out.claim(headerBytes(length) + length + CRLF_BYTES);
      const arena = out.arena;
      at = writeHeader(arena, at, 0x24, length);
      at += arena.write(arg, at);
      arena[at] = CR;
      arena[at + 1] = 0x0a;
    } else {
      at = out.claim(headerBytes(arg.length));
      writeHeader(out.arena, at, 0x24, arg.length);
      out.append(arg);
      at = out.claim(CRLF_BYTES);
      out.arena[at] = CR;
      out.arena[at + 1] = 0x0a;
    }
  }
}

/** The server sent bytes that are not RESP2: the connection cannot be trusted any more. */
export class ProtocolError extends Error {}

const LF = 0x0a;

const INCOMPLETE = Symbol('incomplete');
type Parsed = Reply | ErrorReply | typeof INCOMPLETE;

/** An array whose elements are still arriving. */
class OpenArray {
  readonly items: Reply[] = [];
  error: ErrorReply | undefined;
  constructor(public remaining: number) {}
}

/**
 * Parses the replies of one connection from the chunks it receives, in one
 * pass over the bytes however they are cut. A reply that lies whole in its
 * chunk (nearly all of them) is parsed in one recursive descent, its bulk
 * strings as views of the chunk. A reply cut by a chunk boundary is parsed
 * element by element from where that descent began, and continued where it
 * stopped when the next chunk comes, never parsed again from its start: a
 * bulk string cut by a boundary is copied, once, into a buffer of its
 * announced size. So each byte is looked at most twice.
 */
export class ReplyParser {
  readonly #onReply: (reply: Reply | ErrorReply) => void;
  #at = 0;
  /** Arrays of a cut reply being filled, innermost last. */
  readonly #open: OpenArray[] = [];
  /** The start of a line the last chunk cut, kept until its end arrives. */
  #lineParts: Buffer[] = [];
  /** A bulk string the last chunk cut: its buffer and how much of it has arrived. */
  #bulk: Buffer | undefined;
  #bulkFilled = 0;
  /** Bytes of a bulk string's CRLF still to come. */
  #crlfDue = 0;

  /** `onReply` gets every complete reply, in order. */
  constructor(onReply: (reply: Reply | ErrorReply) => void) {
    this.#onReply = onReply;
  }

  /** Parses what `chunk` adds; throws ProtocolError on bytes that are not RESP2. */
  feed(chunk: Buffer): void {
    let at = this.#cut ? this.#continue(chunk, 0) : 0;
    while (at < chunk.length) {
      this.#at = at;
      const reply = this.#whole(chunk);
      if (reply === INCOMPLETE) at = this.#continue(chunk, at);
      else {
        at = this.#at;
        this.#onReply(reply);
      }
    }
  }

  /** True while a reply cut by a chunk boundary is incomplete. */
  get #cut(): boolean {
    return (
      this.#open.length > 0 ||
      this.#bulk !== undefined ||
      this.#crlfDue > 0 ||
      this.#lineParts.length > 0
    );
  }

  /** The reply starting at #at if it lies whole in `buf`, moving #at past it; else INCOMPLETE. */
  #whole(buf: Buffer): Parsed {
    const lf = buf.indexOf(LF, this.#at);
    if (lf < 0) return INCOMPLETE;
    const start = this.#at;
    if (lf === start || buf[lf - 1] !== CR) throw notCrlf();
    const lineEnd = lf - 1;
    this.#at = lf + 1;
    switch (buf[start]) {
      case 0x2b: // +status
        return buf.subarray(start + 1, lineEnd);
      case 0x2d: // -error
        return new ErrorReply(buf.toString('utf8', start + 1, lineEnd));
      case 0x3a: // :integer
        return integer(buf, start + 1, lineEnd);
      case 0x24: {
        // $bulk
        const length = integer(buf, start + 1, lineEnd);
        if (length < 0) return null;
        const end = this.#at + length;
        if (end + CRLF_BYTES > buf.length) return INCOMPLETE;
        if (buf[end] !== CR || buf[end + 1] !== LF) throw notCrlf();
        const value = buf.subarray(this.#at, end);
        this.#at = end + CRLF_BYTES;
        return value;
      }
      case 0x2a: {
        // *array
        const count = integer(buf, start + 1, lineEnd);
        if (count < 0) return null;
        const items: Reply[] = [];
        let error: ErrorReply | undefined;
        for (let i = 0; i < count; i++) {
          const item = this.#whole(buf);
          if (item === INCOMPLETE) return INCOMPLETE;
          // Every element is read, so the next reply starts in the right place.
          if (item instanceof ErrorReply) error ??= item;
          else items.push(item);
        }
        return error ?? items;
      }
      default:
        throw new ProtocolError(`unexpected RESP type byte ${buf[start]}`);
    }
  }

  /**
   * Parses `buf` from `at` element by element until the cut reply is
   * complete or `buf` ends; returns where it stopped.
   */
  #continue(buf: Buffer, at: number): number {
    if (this.#cut) {
      if (this.#bulk !== undefined) at = this.#fillBulk(buf, at);
      if (this.#crlfDue > 0) at = this.#skipCrlf(buf, at);
      if (this.#lineParts.length > 0) at = this.#finishLine(buf, at);
      if (!this.#cut) return at;
    }
    const end = buf.length;
    while (at < end) {
      const lf = buf.indexOf(LF, at);
      if (lf < 0) {
        this.#lineParts.push(buf.subarray(at));
        return end;
      }
      if (lf === at || buf[lf - 1] !== CR) throw notCrlf();
      at = this.#line(buf, at, lf - 1, lf + 1);
      if (!this.#cut) return at;
    }
    return at;
  }

  /**
   * Handles the line buf[start, lineEnd) (CRLF excluded) whose next byte is
   * `next`; returns the offset parsing continues from.
   */
  #line(buf: Buffer, start: number, lineEnd: number, next: number): number {
    switch (buf[start]) {
      case 0x2b: // +status
        this.#value(buf.subarray(start + 1, lineEnd));
        return next;
      case 0x2d: // -error
        this.#value(new ErrorReply(buf.toString('utf8', start + 1, lineEnd)));
        return next;
      case 0x3a: // :integer
        this.#value(integer(buf, start + 1, lineEnd));
        return next;
      case 0x24: // $bulk
        return this.#bulkBody(buf, integer(buf, start + 1, lineEnd), next);
      case 0x2a: {
        // *array
        const count = integer(buf, start + 1, lineEnd);
        if (count < 0) this.#value(null);
        else if (count === 0) this.#value([]);
        else this.#open.push(new OpenArray(count));
        return next;
      }
      default:
        throw new ProtocolError(`unexpected RESP type byte ${buf[start]}`);
    }
  }

  /** The body of a bulk string of `length` bytes announced by a header that ended before `next`. */
  #bulkBody(buf: Buffer, length: number, next: number): number {
    if (length < 0) {
      this.#value(null);
      return next;
    }
    const end = next + length;
    if (end + CRLF_BYTES <= buf.length) {
      if (buf[end] !== CR || buf[end + 1] !== LF) throw notCrlf();
      this.#value(buf.subarray(next, end));
      return end + CRLF_BYTES;
    }
    this.#bulk = Buffer.allocUnsafe(length);
    this.#bulkFilled = 0;
    return this.#fillBulk(buf, next);
  }

  /** Copies what `buf` holds of the cut bulk string; delivers it once whole. */
  #fillBulk(buf: Buffer, at = 0): number {
    const bulk = this.#bulk as Buffer;
    const taken = buf.copy(bulk, this.#bulkFilled, at, at + bulk.length - this.#bulkFilled);
    this.#bulkFilled += taken;
    if (this.#bulkFilled < bulk.length) return buf.length;
    this.#bulk = undefined;
    this.#crlfDue = CRLF_BYTES;
    this.#value(bulk);
    return this.#skipCrlf(buf, at + taken);
  }

  #skipCrlf(buf: Buffer, at: number): number {
    while (this.#crlfDue > 0 && at < buf.length) {
      if (buf[at] !== (this.#crlfDue === CRLF_BYTES ? CR : LF)) throw notCrlf();
      this.#crlfDue--;
      at++;
    }
    return at;
  }

  /** Completes the line the last chunk cut, if `buf` holds its end. */
  #finishLine(buf: Buffer, at: number): number {
    if (at >= buf.length) return at;
    const lf = buf.indexOf(LF, at);
    if (lf < 0) {
      this.#lineParts.push(buf.subarray(at));
      return buf.length;
    }
    this.#lineParts.push(buf.subarray(at, lf + 1));
    const line = Buffer.concat(this.#lineParts);
    this.#lineParts = [];
    if (line.length < 3 || line[line.length - 2] !== CR) throw notCrlf();
    // A bulk string's header cut from its body: the body lies in `buf`, not in `line`.
    if (line[0] === 0x24)
      return this.#bulkBody(buf, integer(line, 1, line.length - CRLF_BYTES), lf + 1);
    this.#line(line, 0, line.length - CRLF_BYTES, line.length);
    return lf + 1;
  }

  /** A complete value: a reply of its own, or the next element of the innermost open array. */
  #value(value: Reply | ErrorReply): void {
    const open = this.#open;
    let done = value;
    for (;;) {
      const array = open[open.length - 1];
      if (array === undefined) {
        this.#onReply(done);
        return;
      }
      // Every element is read, so the next reply starts in the right place.
      if (done instanceof ErrorReply) array.error ??= done;
      else array.items.push(done);
      if (--array.remaining > 0) return;
      open.pop();
      done = array.error ?? array.items;
    }
  }
}

const notCrlf = () => new ProtocolError('a RESP line or bulk string not ended by CRLF');

/** Digits parsed byte by byte: no string per bulk header, which a large HGETALL has dozens of. */
const MAX_FAST_DIGITS = 15;

function integer(buf: Buffer, start: number, end: number): number {
  const negative = buf[start] === 0x2d;
  const first = negative ? start + 1 : start;
  if (first === end || end - first > MAX_FAST_DIGITS) return slowInteger(buf, start, end);
  let value = 0;
  for (let i = first; i < end; i++) {
    const digit = (buf[i] as number) - 0x30;
    if (digit < 0 || digit > 9) throw new ProtocolError('malformed RESP integer');
    value = value * 10 + digit;
  }
  return negative ? -value : value;
}

function slowInteger(buf: Buffer, start: number, end: number): number {
  const value = Number(buf.toString('latin1', start, end));
  if (
    start === end ||
    !Number.isSafeInteger(value) ||
    !/^-?\d+$/.test(buf.toString('latin1', start, end))
  )
    throw new ProtocolError('malformed RESP integer');
  return value;
}
