import type { Http2Connection } from './connection.ts';

/**
 * Request bytes buffered by every connection of a server. Past the limit the
 * connection holding the most is closed: a legitimate client's requests are
 * complete as they arrive and hold nothing for long, so the one holding most
 * is the one parking bodies.
 */
export class BufferBudget {
  readonly #max: number;
  readonly #holders = new Set<Http2Connection>();
  #held = 0;

  constructor(maxBytes: number) {
    this.#max = maxBytes;
  }

  get held(): number {
    return this.#held;
  }

  register(connection: Http2Connection): void {
    this.#holders.add(connection);
  }

  unregister(connection: Http2Connection): void {
    this.#holders.delete(connection);
  }

  hold(bytes: number): void {
    this.#held += bytes;
    while (this.#held > this.#max) {
      let largest: Http2Connection | undefined;
      for (const holder of this.#holders) {
        if (!largest || holder.bufferedBytes > largest.bufferedBytes) largest = holder;
      }
      if (!largest || largest.bufferedBytes === 0) return;
      largest.shed();
    }
  }

  release(bytes: number): void {
    this.#held -= bytes;
  }
}
