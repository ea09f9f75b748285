/** Something that must give up at `expiresAtMs` unless removed from the sweeper first. */
export interface Expiring {
  readonly expiresAtMs: number;
  expire(): void;
}

/**
 * Many timeouts under one coarse timer. A setTimeout per Redis command or per
 * call (plus the promise to race it against) is a measurable share of a call's
 * cost at 10k calls/s; here each timeout is one Set entry, and one interval
 * sweeps them every `resolutionMs`, so a timeout fires up to that much late.
 * The interval stops itself when nothing is pending.
 */
export class TimeoutSweeper {
  readonly #pending = new Set<Expiring>();
  readonly #resolutionMs: number;
  #timer: NodeJS.Timeout | undefined;

  constructor(resolutionMs: number) {
    this.#resolutionMs = resolutionMs;
  }

  add(entry: Expiring): void {
    this.#pending.add(entry);
    this.#timer ??= setInterval(() => this.#sweep(), this.#resolutionMs).unref();
  }

  /** True when the entry was pending, i.e. it has not expired: the caller may settle it. */
  delete(entry: Expiring): boolean {
    return this.#pending.delete(entry);
  }

  #sweep(): void {
    if (this.#pending.size === 0) {
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = Date.now();
    for (const entry of this.#pending) {
      if (entry.expiresAtMs <= now) {
        this.#pending.delete(entry);
        entry.expire();
      }
    }
  }
}
