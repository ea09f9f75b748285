/**
 * What a peer may still send us on a connection or stream (RFC 9113 6.9),
 * and the bytes we have done with but not yet given back. Returning window
 * in batches keeps WINDOW_UPDATE frames few; `floor` returns it at once while
 * the window is smaller than the caller needs the peer to be able to send.
 */
export class ReceiveWindow {
  #window: number;
  #unacknowledged = 0;
  readonly #batch: number;
  readonly #floor: number;

  constructor(initial: number, batch: number, floor: number) {
    this.#window = initial;
    this.#batch = batch;
    this.#floor = floor;
  }

  get size(): number {
    return this.#window;
  }

  /** The peer sent `bytes`; false when that is more than the window allowed (FLOW_CONTROL_ERROR). */
  take(bytes: number): boolean {
    if (bytes > this.#window) return false;
    this.#window -= bytes;
    return true;
  }

  /** Widens the window by `bytes` at once; the caller sends the WINDOW_UPDATE. */
  raise(bytes: number): void {
    this.#window += bytes;
  }

  /**
   * We no longer hold `bytes` the peer sent. Returns the increment to send
   * in a WINDOW_UPDATE now (the window already counts it), or 0 to wait for more.
   */
  release(bytes: number): number {
    if (bytes === 0) return 0;
    this.#unacknowledged += bytes;
    if (this.#unacknowledged < this.#batch && this.#window >= this.#floor) return 0;
    const increment = this.#unacknowledged;
    this.#window += increment;
    this.#unacknowledged = 0;
    return increment;
  }
}
