import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

export type Transport = 'grpc' | 'http';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SIZE_BUCKETS = [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304];

/**
 * The service's Prometheus metrics. Labels are bounded sets (transport,
 * method, status code, store operation, event): a session key never becomes
 * a label.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly calls = new Counter({
    name: 'sessionmanager_calls_total',
    help: 'Calls handled, by transport, method and status code.',
    labelNames: ['transport', 'method', 'code'] as const,
    registers: [this.registry],
  });

  readonly callDuration = new Histogram({
    name: 'sessionmanager_call_duration_seconds',
    help: 'Time from request decoded to response written, by transport, method and status code.',
    labelNames: ['transport', 'method', 'code'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly storeDuration = new Histogram({
    name: 'sessionmanager_store_operation_duration_seconds',
    help: 'Store operation latency (one Redis round trip each), by operation and outcome.',
    labelNames: ['operation', 'outcome'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  readonly storeErrors = new Counter({
    name: 'sessionmanager_store_errors_total',
    help: 'Store operations that failed for a reason other than the session itself (unavailable, timeout, internal).',
    labelNames: ['operation', 'code'] as const,
    registers: [this.registry],
  });

  readonly storeUp = new Gauge({
    name: 'sessionmanager_store_up',
    help: '1 while the store answers PING (the health status), 0 otherwise.',
    registers: [this.registry],
  });

  readonly sessionEvents = new Counter({
    name: 'sessionmanager_session_events_total',
    help: 'Session lifecycle events: created, replaced, updated, touched, consumed, deleted, rotated, cas_conflict, not_found.',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });

  readonly sessionSize = new Histogram({
    name: 'sessionmanager_session_size_bytes',
    help: 'Size of sessions written (payloads plus attribute names and values).',
    buckets: SIZE_BUCKETS,
    registers: [this.registry],
  });

  // prom-client hashes a label object on every observation; the hot path
  // keeps the per-label-set children instead (the sets are small and bounded).
  readonly #callChildren = new Map<
    string,
    { count: Counter.Internal; duration: Histogram.Internal<string> }
  >();
  readonly #storeChildren = new Map<string, Histogram.Internal<string>>();
  readonly #eventChildren = new Map<string, Counter.Internal>();

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  observeCall(transport: Transport, method: string, code: string, seconds: number): void {
    const id = `${transport} ${method} ${code}`;
    let children = this.#callChildren.get(id);
    if (!children) {
      children = {
        count: this.calls.labels(transport, method, code),
        duration: this.callDuration.labels(transport, method, code),
      };
      this.#callChildren.set(id, children);
    }
    children.count.inc();
    children.duration.observe(seconds);
  }

  observeStore(operation: string, outcome: string, seconds: number): void {
    const id = `${operation} ${outcome}`;
    let child = this.#storeChildren.get(id);
    if (!child) {
      child = this.storeDuration.labels(operation, outcome);
      this.#storeChildren.set(id, child);
    }
    child.observe(seconds);
  }

  sessionEvent(event: string): void {
    let child = this.#eventChildren.get(event);
    if (!child) {
      child = this.sessionEvents.labels(event);
      this.#eventChildren.set(event, child);
    }
    child.inc();
  }
}
