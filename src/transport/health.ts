import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { Logger } from '../logger.ts';
import { SERVICE_NAME } from '../rpc/methods.ts';

const PROBE_INTERVAL_MS = 500;

/**
 * grpc.health.v1 for the server ("") and the session service: SERVING only
 * while the store answers PING. Probes run one at a time, every 500 ms, so a
 * lost Redis shows within about a second.
 */
export class HealthMonitor {
  readonly implementation = new HealthImplementation({
    '': 'NOT_SERVING',
    [SERVICE_NAME]: 'NOT_SERVING',
  });
  readonly #ping: () => Promise<void>;
  readonly #logger: Logger;
  readonly #onChange: (status: ServingStatus) => void;
  #status: ServingStatus = 'NOT_SERVING';
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(
    ping: () => Promise<void>,
    logger: Logger,
    onChange: (status: ServingStatus) => void = () => undefined,
  ) {
    this.#ping = ping;
    this.#logger = logger;
    this.#onChange = onChange;
  }

  get status(): ServingStatus {
    return this.#status;
  }

  /** Probes now and then keeps probing until stop(). */
  async start(): Promise<void> {
    await this.#probe();
  }

  /** NOT_SERVING from now on, whatever the store says (shutdown). */
  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#set('NOT_SERVING');
  }

  async #probe(): Promise<void> {
    let status: ServingStatus;
    try {
      await this.#ping();
      status = 'SERVING';
    } catch {
      status = 'NOT_SERVING';
    }
    if (this.#stopped) return;
    this.#set(status);
    this.#timer = setTimeout(() => void this.#probe(), PROBE_INTERVAL_MS).unref();
  }

  #set(status: ServingStatus): void {
    if (status === this.#status) return;
    this.#status = status;
    this.implementation.setStatus('', status);
    this.implementation.setStatus(SERVICE_NAME, status);
    this.#onChange(status);
    this.#logger.info({ status }, 'health changed');
  }
}
