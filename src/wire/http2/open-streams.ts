/**
 * A connection's open streams by id. Not a Map: V8 rebuilds a Map's table
 * every few dozen insertions and deletions, and each old table keeps a link
 * to its successor. Once one of them reaches the old generation, it keeps
 * every later table, and the streams in it, alive through young collections,
 * so under load every stream would be promoted and die old. A client opens
 * streams in increasing id order (RFC 9113 5.1.1), so an array kept in that
 * order needs no hashing: a new stream goes at the end, a lookup is a binary
 * search.
 */
export class OpenStreams<T extends { readonly id: number }> {
  #streams: T[] = [];

  get size(): number {
    return this.#streams.length;
  }

  /** `stream.id` must be above every id added before. */
  add(stream: T): void {
    this.#streams.push(stream);
  }

  get(id: number): T | undefined {
    const at = this.#indexOf(id);
    return at < 0 ? undefined : this.#streams[at];
  }

  /** True when the stream was open. */
  delete(stream: T): boolean {
    const at = this.#indexOf(stream.id);
    if (at < 0) return false;
    this.#streams.splice(at, 1);
    return true;
  }

  /** Empties the table and returns what it held. */
  takeAll(): T[] {
    const streams = this.#streams;
    this.#streams = [];
    return streams;
  }

  values(): readonly T[] {
    return this.#streams;
  }

  #indexOf(id: number): number {
    const streams = this.#streams;
    let low = 0;
    let high = streams.length - 1;
    while (low <= high) {
      const middle = (low + high) >>> 1;
      const found = (streams[middle] as T).id;
      if (found === id) return middle;
      if (found < id) low = middle + 1;
      else high = middle - 1;
    }
    return -1;
  }
}
