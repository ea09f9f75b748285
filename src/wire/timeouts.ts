/** Something that must give up at `expiresAtMs` unless removed from the sweeper first. */
export interface Expiring {
  readonly expiresAtMs: number;
  /** The sweeper's bookkeeping: start it at -1 and leave it to the sweeper. */
  sweeperSlot: number;
  expire(): void;
}

/**
 * Many timeouts under one coarse timer. A setTimeout per Redis command or per
 * call (plus the promise to race it against) is a measurable share of a call's
 * cost at 10k calls/s; here each timeout is one array slot, and one interval
 * sweeps them every `resolutionMs`, so a timeout fires up to that much late.
 * The interval stops itself when nothing is pending.
 *
 * Entries remember their slot, so removal is a swap with the last entry. Not
 * a Set: V8 rebuilds a Set's table as entries come and go, each old table
 * links to its successor, and once one of them is in the old generation that
 * chain keeps every later entry (and the call behind it) alive through young
 * collections; under load, every call would then be promoted and die old.
 */
export class TimeoutSweeper {
  readonly #pending: Expiring[] = [];
  readonly #resolutionMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(resolutionMs: number) {
    this.#resolutionMs = resolutionMs;
  }

  add(entry: Expiring): void {
    entry.sweeperSlot = this.#pending.length;
    this.#pending.push(entry);
    this.#timer ??= setInterval(() => this.#sweep(), this.#resolutionMs).unref();
  }

  /** True when the entry was pending, i.e. it has not expired: the caller may settle it. */
  delete(entry: Expiring): boolean {
    const slot = entry.sweeperSlot;
    const pending = this.#pending;
    if (slot < 0 || pending[slot] !== entry) return false;
    entry.sweeperSlot = -1;
    const last = pending.pop() as Expiring;
    if (last !== entry) {
      pending[slot] = last;
      last.sweeperSlot = slot;
    }
    return true;
  }

  #sweep(): void {
    if (this.#pending.length === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = Date.now();
    // Backwards, so the swap in delete only moves entries already looked at.
    for (let i = this.#pending.length - 1; i >= 0; i--) {
      // An expire() may remove others, leaving the array shorter than i.
      const entry = this.#pending[i];
      if (entry && entry.expiresAtMs <= now && this.delete(entry)) entry.expire();
    }
  }
}
