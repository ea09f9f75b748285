import { ErrorReply } from '@redis/client';
import type { SocketBatch } from '../../wire/socket-batch.ts';

/**
 * RESP2 (https://redis.io/docs/latest/develop/reference/protocol-spec/) as
 * the store speaks it on a standalone connection: commands written straight
 * into a socket batch, replies parsed in place with bulk strings as views of
 * the bytes received. The commands are few (EVALSHA, EVAL, HGETALL, AUTH,
 * SELECT, PING) and the replies simple: integers, bulk strings and arrays of
 * them, nil, status and error lines.
 */

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

const INCOMPLETE = Symbol('incomplete');
type Parsed = Reply | ErrorReply | typeof INCOMPLETE;

/**
 * Parses the replies of one connection from the chunks it receives. A reply
 * cut by a chunk boundary is parsed again from its start once more bytes came.
 */
export class ReplyParser {
  #buffer: Buffer | undefined;
  #at = 0;

  /** Calls `onReply` for every complete reply in order; throws ProtocolError on garbage. */
  feed(chunk: Buffer, onReply: (reply: Reply | ErrorReply) => void): void {
    const buffer = this.#buffer ? Buffer.concat([this.#buffer, chunk]) : chunk;
    this.#buffer = undefined;
    let start = 0;
    while (start < buffer.length) {
      this.#at = start;
      const reply = this.#parse(buffer);
      if (reply === INCOMPLETE) {
        this.#buffer = buffer.subarray(start);
        return;
      }
      start = this.#at;
      onReply(reply);
    }
  }

  #parse(buf: Buffer): Parsed {
    const lineEnd = buf.indexOf(CR, this.#at + 1);
    if (lineEnd < 0 || lineEnd + 1 >= buf.length) return INCOMPLETE;
    const type = buf[this.#at];
    const lineStart = this.#at + 1;
    this.#at = lineEnd + CRLF_BYTES;
    switch (type) {
      case 0x2b: // +status
        return buf.subarray(lineStart, lineEnd);
      case 0x2d: // -error
        return new ErrorReply(buf.toString('utf8', lineStart, lineEnd));
      case 0x3a: // :integer
        return integer(buf, lineStart, lineEnd);
      case 0x24: {
        // $bulk
        const length = integer(buf, lineStart, lineEnd);
        if (length < 0) return null;
        const end = this.#at + length;
        if (end + CRLF_BYTES > buf.length) return INCOMPLETE;
        const value = buf.subarray(this.#at, end);
        this.#at = end + CRLF_BYTES;
        return value;
      }
      case 0x2a: {
        // *array
        const count = integer(buf, lineStart, lineEnd);
        if (count < 0) return null;
        const items: Reply[] = [];
        let error: ErrorReply | undefined;
        for (let i = 0; i < count; i++) {
          if (this.#at >= buf.length) return INCOMPLETE;
          const item = this.#parse(buf);
          if (item === INCOMPLETE) return INCOMPLETE;
          // Every element is read, so the next reply starts in the right place.
          if (item instanceof ErrorReply) error ??= item;
          else items.push(item);
        }
        return error ?? items;
      }
      default:
        throw new ProtocolError(`unexpected RESP type byte ${type}`);
    }
  }
}

function integer(buf: Buffer, start: number, end: number): number {
  const value = Number(buf.toString('latin1', start, end));
  if (!Number.isSafeInteger(value)) throw new ProtocolError('malformed RESP integer');
  return value;
}
