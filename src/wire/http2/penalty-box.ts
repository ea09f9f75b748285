/**
 * Remote addresses whose connections were recently closed for abuse
 * (GOAWAY ENHANCE_YOUR_CALM). Every HTTP/2 limit is per connection, so an
 * attacker that reconnects the moment it is cut off starts each time with a
 * fresh budget (rapid reset at twenty connections a second, say). A new
 * connection from a penalised address is read only after a delay that
 * doubles with each strike, so reconnecting buys little. Connections already
 * open are not touched: a client sharing the address (behind a proxy or a
 * sidecar) keeps its established connections at full speed.
 */
const FIRST_DELAY_MS = 100;
/** A strike is forgotten this long after the address's last one. */
const MEMORY_MS = 10_000;
const MAX_ADDRESSES = 10_000;

export class PenaltyBox {
  /** In the order of their last strike, oldest first (a Map keeps insertion order). */
  readonly #strikes = new Map<string, { count: number; at: number }>();
  readonly #maxDelayMs: number;

  /** `maxDelayMs` 0 turns the penalty off. */
  constructor(maxDelayMs: number) {
    this.#maxDelayMs = maxDelayMs;
  }

  strike(address: string, now: number): void {
    if (this.#maxDelayMs === 0) return;
    const previous = this.#strikes.get(address);
    const count = previous && now - previous.at < MEMORY_MS ? previous.count + 1 : 1;
    this.#strikes.delete(address);
    this.#strikes.set(address, { count, at: now });
    if (this.#strikes.size > MAX_ADDRESSES) {
      const oldest = this.#strikes.keys().next().value as string;
      this.#strikes.delete(oldest);
    }
  }

  /** How long a new connection from `address` waits before it is read; 0 when it has no recent strike. */
  delayFor(address: string, now: number): number {
    const entry = this.#strikes.get(address);
    if (!entry || now - entry.at >= MEMORY_MS) return 0;
    return Math.min(this.#maxDelayMs, FIRST_DELAY_MS * 2 ** (entry.count - 1));
  }
}
