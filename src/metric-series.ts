import type { Registry } from 'prom-client';

/**
 * Counters and histograms for the per-call hot path, exposed through a
 * prom-client registry. prom-client hashes the label object on every
 * observation, even through a child from `labels()`: at 20k calls/s that was
 * about 5 % of the server's CPU. Here a series is looked up once (nested maps,
 * no key string built) and the caller's observation touches plain numbers;
 * labels are formatted only when /metrics is scraped.
 */

type Labels = Record<string, string>;

/** One sample as prom-client's registry formats it. */
interface Sample {
  labels: Labels;
  value: number;
  metricName?: string;
}

abstract class LabeledMetric<S> {
  readonly aggregator = 'sum' as const;
  readonly #labelNames: readonly string[];
  readonly #series = new Map<string, unknown>();
  readonly #all: Array<{ labels: Labels; series: S }> = [];

  constructor(
    readonly name: string,
    readonly help: string,
    labelNames: readonly string[],
    registry: Registry,
  ) {
    this.#labelNames = labelNames;
    // prom-client's registry takes any object with a name and get(); its
    // typings only name its own classes.
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
  }

  abstract readonly type: 'counter' | 'histogram';
  protected abstract create(): S;
  protected abstract values(labels: Labels, series: S): Sample[];

  /** The series for these label values, in the order of the label names. */
  series(...values: string[]): S {
    let level: Map<string, unknown> = this.#series;
    for (let i = 0; i < values.length - 1; i++) {
      const value = values[i] as string;
      let next = level.get(value) as Map<string, unknown> | undefined;
      if (!next) {
        next = new Map();
        level.set(value, next);
      }
      level = next;
    }
    const last = values[values.length - 1] ?? '';
    let series = level.get(last) as S | undefined;
    if (!series) {
      series = this.create();
      level.set(last, series);
      const labels: Labels = {};
      this.#labelNames.forEach((name, i) => {
        labels[name] = values[i] as string;
      });
      this.#all.push({ labels, series });
    }
    return series;
  }

  async get() {
    return {
      name: this.name,
      help: this.help,
      type: this.type,
      aggregator: this.aggregator,
      values: this.#all.flatMap(({ labels, series }) => this.values(labels, series)),
    };
  }
}

class CounterSeries {
  value = 0;
  inc(by = 1): void {
    this.value += by;
  }
}

export class LabeledCounter extends LabeledMetric<CounterSeries> {
  readonly type = 'counter';
  protected create(): CounterSeries {
    return new CounterSeries();
  }
  protected values(labels: Labels, series: CounterSeries): Sample[] {
    return [{ labels, value: series.value }];
  }
}

class HistogramSeries {
  count = 0;
  sum = 0;
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly counts: Float64Array;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(value: number): void {
    this.count++;
    this.sum += value;
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > (bounds[i] as number)) i++;
    this.counts[i] = (this.counts[i] as number) + 1;
  }
}

export class LabeledHistogram extends LabeledMetric<HistogramSeries> {
  readonly type = 'histogram';
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    readonly bounds: readonly number[],
    registry: Registry,
  ) {
    super(name, help, labelNames, registry);
  }
  protected create(): HistogramSeries {
    return new HistogramSeries(this.bounds);
  }
  protected values(labels: Labels, series: HistogramSeries): Sample[] {
    const values: Sample[] = [];
    let cumulative = 0;
    const les = [...this.bounds.map(String), '+Inf'];
    les.forEach((le, i) => {
      cumulative += series.counts[i] as number;
      values.push({
        labels: { ...labels, le },
        value: cumulative,
        metricName: `${this.name}_bucket`,
      });
    });
    values.push({ labels, value: series.sum, metricName: `${this.name}_sum` });
    values.push({ labels, value: series.count, metricName: `${this.name}_count` });
    return values;
  }
}
