import cluster, { type Worker } from 'node:cluster';
import { AggregatorRegistry, type Registry } from 'prom-client';

/**
 * /metrics with WORKERS > 1. The workers share the HTTP port, so a scrape
 * reaches one of them, whose own counters are a part of the service's and
 * would jump back and forth as scrapes reach different workers. So the
 * worker asks the primary, which collects every worker's registry over the
 * cluster's IPC channel (prom-client's AggregatorRegistry) and answers with
 * the aggregate: sums, or what a metric's `aggregator` says.
 */

const REQUEST = 'sessionmanager:metrics-request';
const REPLY = 'sessionmanager:metrics-reply';
/** prom-client gives up on a worker after 5 s; the asking worker waits a little longer. */
const REPLY_TIMEOUT_MS = 6000;

interface Reply {
  type: typeof REPLY;
  id: number;
  text?: string;
  error?: string;
}

/** In the primary: answers each worker's request with the whole cluster's metrics. */
export function aggregateWorkerMetrics(): void {
  const aggregator = new AggregatorRegistry();
  cluster.on('message', (worker: Worker, message: { type?: unknown; id?: unknown }) => {
    if (message?.type !== REQUEST || typeof message.id !== 'number') return;
    const id = message.id;
    aggregator.clusterMetrics().then(
      (text) => worker.send({ type: REPLY, id, text } satisfies Reply),
      (error: Error) => worker.send({ type: REPLY, id, error: error.message } satisfies Reply),
    );
  });
}

/**
 * In a worker: offers `registry` to the primary's collection and returns a
 * reader of the whole cluster's metrics (through the primary).
 */
export function clusterMetricsReader(registry: Registry): () => Promise<string> {
  AggregatorRegistry.setRegistries(registry);
  // prom-client installs a worker's responder when an AggregatorRegistry is
  // constructed; this one exists for that alone.
  new AggregatorRegistry();
  const waiting = new Map<number, (reply: Reply) => void>();
  let nextId = 0;
  process.on('message', (message: Partial<Reply>) => {
    if (message?.type !== REPLY || typeof message.id !== 'number') return;
    waiting.get(message.id)?.(message as Reply);
  });
  return () =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      const timer = setTimeout(
        () => settle({ type: REPLY, id, error: 'no answer' }),
        REPLY_TIMEOUT_MS,
      );
      const settle = (reply: Reply) => {
        waiting.delete(id);
        clearTimeout(timer);
        if (reply.text !== undefined) resolve(reply.text);
        else reject(new Error(`cluster metrics: ${reply.error}`));
      };
      waiting.set(id, settle);
      process.send?.({ type: REQUEST, id });
    });
}
