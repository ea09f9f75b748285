import { Counter, collectDefaultMetrics, Gauge, Registry } from 'prom-client';
import { clusterMetricsReader } from './cluster-metrics.ts';
import { LabeledCounter, LabeledHistogram } from './metric-series.ts';
import { goStatusName, statusName } from './wire/grpc-status.ts';

export type Transport = 'grpc' | 'http';
/** grpc_type as go-grpc-prometheus spells it. */
export type GrpcType = 'unary' | 'client_stream' | 'server_stream' | 'bidi_stream';

const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
const SIZE_BUCKETS = [256, 1024, 4096, 16_384, 65_536, 262_144, 1_048_576, 4_194_304];

/**
 * prom-client's default metrics include gauges named like counters, which
 * `promtool check metrics` rejects. Each has a `type`-labelled twin
 * (`nodejs_active_handles` ...) whose sum gives the same total.
 */
const GAUGES_NAMED_LIKE_COUNTERS = [
  'nodejs_active_handles_total',
  'nodejs_active_requests_total',
  'nodejs_active_resources_total',
];

/** Labels of `sessionmanager_build_info`. */
export interface BuildInfo {
  version: string;
  node_version: string;
  transport: string;
  store: string;
}

/** What the in-memory store holds, read at each scrape. */
export interface MemoryStoreUsage {
  bytes: number;
  sessions: number;
}

/**
 * The service's Prometheus metrics. Labels are bounded sets (transport,
 * method, status code, store operation, event): a session key never becomes
 * a label.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly calls = new LabeledCounter(
    'sessionmanager_calls_total',
    'Calls handled, by transport, method and status code.',
    ['transport', 'method', 'code'],
    this.registry,
  );

  readonly callDuration = new LabeledHistogram(
    'sessionmanager_call_duration_seconds',
    'Time from request decoded to response written, by transport, method and status code.',
    ['transport', 'method', 'code'],
    LATENCY_BUCKETS,
    this.registry,
  );

  // The gRPC-ecosystem names and labels (go-grpc-prometheus), so standard
  // gRPC dashboards work; gRPC calls only.
  readonly grpcStarted = new LabeledCounter(
    'grpc_server_started_total',
    'Total number of RPCs started on the server.',
    ['grpc_method', 'grpc_service', 'grpc_type'],
    this.registry,
  );

  readonly grpcHandled = new LabeledCounter(
    'grpc_server_handled_total',
    'Total number of RPCs completed on the server, regardless of success or failure.',
    ['grpc_code', 'grpc_method', 'grpc_service', 'grpc_type'],
    this.registry,
  );

  readonly grpcHandling = new LabeledHistogram(
    'grpc_server_handling_seconds',
    'Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.',
    ['grpc_method', 'grpc_service', 'grpc_type'],
    LATENCY_BUCKETS,
    this.registry,
  );

  readonly storeDuration = new LabeledHistogram(
    'sessionmanager_store_operation_duration_seconds',
    'Store operation latency (one Redis round trip each), by operation and outcome.',
    ['operation', 'outcome'],
    LATENCY_BUCKETS,
    this.registry,
  );

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
    // Across WORKERS: 1 only while every worker reaches the store.
    aggregator: 'min',
  });

  readonly storeReconnects = new Counter({
    name: 'sessionmanager_store_reconnects_total',
    help: 'Times the store answered again after the health probe (PING every 500 ms) had found it unreachable; the first connection is not counted.',
    registers: [this.registry],
  });
  #storeWasUp = false;

  readonly buildInfo = new Gauge({
    name: 'sessionmanager_build_info',
    help: 'Always 1; the labels say what runs: version, Node.js version, gRPC transport, store.',
    labelNames: ['version', 'node_version', 'transport', 'store'] as const,
    registers: [this.registry],
    // Across WORKERS every worker runs the same build: one series, value 1.
    aggregator: 'first',
  });

  readonly sessionEvents = new LabeledCounter(
    'sessionmanager_session_events_total',
    'Session lifecycle events: created, replaced, updated, touched, consumed, deleted, rotated, cas_conflict, not_found, evicted (the oldest of an owner at SESSION_MAX_PER_OWNER), revoked (by RevokeSessions).',
    ['event'],
    this.registry,
  );

  readonly sessionSize = new LabeledHistogram(
    'sessionmanager_session_size_bytes',
    'Size of sessions written (payloads plus attribute names and values).',
    [],
    SIZE_BUCKETS,
    this.registry,
  );
  readonly #sizes = this.sessionSize.series();
  readonly #exposition: () => Promise<string>;

  /** `acrossWorkers`: this process is one of WORKERS > 1, and /metrics speaks for all of them. */
  constructor(options: { acrossWorkers?: boolean } = {}) {
    collectDefaultMetrics({ register: this.registry });
    for (const name of GAUGES_NAMED_LIKE_COUNTERS) this.registry.removeSingleMetric(name);
    this.#exposition = options.acrossWorkers
      ? clusterMetricsReader(this.registry)
      : () => this.registry.metrics();
  }

  /** The text /metrics serves (content type: `registry.contentType`). */
  exposition(): Promise<string> {
    return this.#exposition();
  }

  /** The health probe's verdict changed (it reports changes only). */
  storeHealthChanged(up: boolean): void {
    this.storeUp.set(up ? 1 : 0);
    if (up && this.#storeWasUp) this.storeReconnects.inc();
    if (up) this.#storeWasUp = true;
  }

  describeBuild(info: BuildInfo): void {
    this.buildInfo.set({ ...info }, 1);
  }

  /** Exports the in-memory store's use of its bound (MEMORY_MAX_BYTES). */
  watchMemoryStore(usage: () => MemoryStoreUsage, maxBytes: number): void {
    const registers = [this.registry];
    new Gauge({
      name: 'sessionmanager_memory_store_bytes',
      help: 'Bytes the in-memory store counts against MEMORY_MAX_BYTES (session bytes plus bookkeeping).',
      registers,
      collect() {
        this.set(usage().bytes);
      },
    });
    new Gauge({
      name: 'sessionmanager_memory_store_sessions',
      help: 'Sessions the in-memory store holds (an expired one until the next sweep, within a second).',
      registers,
      collect() {
        this.set(usage().sessions);
      },
    });
    new Gauge({
      name: 'sessionmanager_memory_store_max_bytes',
      help: 'MEMORY_MAX_BYTES: past it the in-memory store refuses writes (RESOURCE_EXHAUSTED).',
      registers,
    }).set(maxBytes);
  }

  /** The series of one method on one transport, looked up once; gRPC methods also feed the grpc_server_* family. */
  method(
    transport: Transport,
    method: string,
    grpc?: { readonly service: string; readonly type: GrpcType },
  ): MethodMetrics {
    return new MethodMetrics(this, transport, method, grpc);
  }

  observeStore(operation: string, outcome: string, seconds: number): void {
    this.storeDuration.series(operation, outcome).observe(seconds);
  }

  sessionEvent(event: string, count = 1): void {
    this.sessionEvents.series(event).inc(count);
  }

  observeSessionSize(bytes: number): void {
    this.#sizes.observe(bytes);
  }
}

type CounterSeries = ReturnType<LabeledCounter['series']>;
type HistogramSeries = ReturnType<LabeledHistogram['series']>;

interface CodeSeries {
  readonly calls: CounterSeries;
  readonly duration: HistogramSeries;
  readonly handled: CounterSeries | undefined;
}

/**
 * One method's series, with the per-code ones made on first use and kept in
 * an array by code, so recording a call costs no label lookup.
 */
export class MethodMetrics {
  readonly #metrics: Metrics;
  readonly #transport: Transport;
  readonly #method: string;
  readonly #grpc: { readonly service: string; readonly type: GrpcType } | undefined;
  readonly #started: CounterSeries | undefined;
  readonly #handling: HistogramSeries | undefined;
  readonly #byCode: Array<CodeSeries | undefined> = [];

  constructor(
    metrics: Metrics,
    transport: Transport,
    method: string,
    grpc: { readonly service: string; readonly type: GrpcType } | undefined,
  ) {
    this.#metrics = metrics;
    this.#transport = transport;
    this.#method = method;
    this.#grpc = grpc;
    this.#started = grpc && metrics.grpcStarted.series(method, grpc.service, grpc.type);
    this.#handling = grpc && metrics.grpcHandling.series(method, grpc.service, grpc.type);
  }

  started(): void {
    this.#started?.inc();
  }

  finished(code: number, seconds: number): void {
    const series = this.#byCode[code] ?? this.#create(code);
    series.calls.inc();
    series.duration.observe(seconds);
    series.handled?.inc();
    this.#handling?.observe(seconds);
  }

  #create(code: number): CodeSeries {
    const name = statusName(code);
    const grpc = this.#grpc;
    const series: CodeSeries = {
      calls: this.#metrics.calls.series(this.#transport, this.#method, name),
      duration: this.#metrics.callDuration.series(this.#transport, this.#method, name),
      handled:
        grpc &&
        this.#metrics.grpcHandled.series(goStatusName(code), this.#method, grpc.service, grpc.type),
    };
    this.#byCode[code] = series;
    return series;
  }
}
