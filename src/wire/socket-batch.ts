import type { Socket } from 'node:net';

const ARENA_BYTES = 64 * 1024;
/** Payloads up to this size are copied into the arena; larger ones are written as they are. */
const COPY_LIMIT = 4096;

/**
 * The bytes bound for one socket during a turn of the event loop, written
 * with one call at its end (setImmediate runs after the turn's I/O
 * callbacks): the replies or commands of every call that progressed in that
 * turn share a syscall. Small writes go into an arena, so a batch is one
 * buffer, not a chunk per frame or per command argument.
 */
export class SocketBatch {
  readonly #socket: Socket;
  readonly #maxUnsentBytes: number;
  readonly #onFlushed: (() => void) | undefined;
  #arena = Buffer.allocUnsafe(ARENA_BYTES);
  /** The arena holds pending bytes from #start to #end; what precedes #start was handed to the socket. */
  #start = 0;
  #end = 0;
  #chunks: Buffer[] = [];
  #scheduled = false;

  /**
   * A peer that stops reading while it is owed more than `maxUnsentBytes` is
   * cut off. `onFlushed` runs after each write, for owners that hold a peer
   * to a lower limit of their own (socket.writableLength says what is unsent).
   */
  constructor(socket: Socket, maxUnsentBytes: number, onFlushed?: () => void) {
    this.#socket = socket;
    this.#maxUnsentBytes = maxUnsentBytes;
    this.#onFlushed = onFlushed;
  }

  /** The buffer `claim` returns offsets into; valid until the next claim or append. */
  get arena(): Buffer {
    return this.#arena;
  }

  /** Reserves `bytes` contiguous bytes in the arena and returns where they start. */
  claim(bytes: number): number {
    if (this.#end + bytes > this.#arena.length) {
      this.#cut();
      this.#arena = Buffer.allocUnsafe(Math.max(ARENA_BYTES, bytes));
      this.#start = 0;
      this.#end = 0;
    }
    const at = this.#end;
    this.#end += bytes;
    this.#schedule();
    return at;
  }

  /** Adds a payload after the claimed bytes: copied when small, referenced when large. */
  append(payload: Buffer): void {
    if (payload.length <= COPY_LIMIT) {
      const at = this.claim(payload.length);
      payload.copy(this.#arena, at);
      return;
    }
    this.#cut();
    this.#chunks.push(payload);
    this.#schedule();
  }

  /** Writes what is pending now, without waiting for the end of the turn. */
  flush(): void {
    this.#scheduled = false;
    this.#cut();
    const chunks = this.#chunks;
    if (chunks.length === 0) return;
    this.#chunks = [];
    const socket = this.#socket;
    if (socket.destroyed) return;
    if (chunks.length === 1) socket.write(chunks[0] as Buffer);
    else {
      socket.cork();
      for (const chunk of chunks) socket.write(chunk);
      socket.uncork();
    }
    if (socket.writableLength > this.#maxUnsentBytes) socket.destroy();
    else this.#onFlushed?.();
  }

  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => this.flush());
  }

  /** Moves the bytes claimed so far into the chunks to send. */
  #cut(): void {
    if (this.#end === this.#start) return;
    this.#chunks.push(this.#arena.subarray(this.#start, this.#end));
    this.#start = this.#end;
  }
}
