// A closed-loop gRPC load generator in TypeScript, for the operations the Go
// loadgen lacks (update, consume) and for machines without it. Worker threads
// keep the client off the main thread; each holds its share of the in-flight
// calls on its own grpc-js connection. Only calls that start and finish inside
// the measured window count, as in the Go loadgen.
import { randomBytes } from 'node:crypto';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { Client, credentials, Metadata, type ServiceError } from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { PROTO_FILE, SERVICE_NAME } from '../test/support/proto.ts';

export type Op = 'set' | 'get' | 'mixed' | 'update' | 'consume';

export interface LoadOptions {
  readonly address: string;
  readonly op: Op;
  readonly concurrency: number;
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly payloadBytes: number;
  readonly threads: number;
}

export interface LoadResult {
  ok: number;
  errors: number;
  rps: number;
  p50_ms: number;
  p90_ms: number;
  p99_ms: number;
  max_ms: number;
  windowMs: number;
}

interface WorkerReply {
  latencies: Float64Array;
  errors: number;
}

const KEYS_PER_LOOP = 16;

async function runWorker(options: LoadOptions & { inFlight: number }): Promise<WorkerReply> {
  const definition = protoLoader.loadSync(PROTO_FILE, {
    keepCase: true,
    longs: Number,
    bytes: Buffer,
    defaults: true,
  });
  const methods = definition[SERVICE_NAME] as protoLoader.ServiceDefinition;
  const client = new Client(options.address, credentials.createInsecure());
  const call = (method: string, request: object) =>
    new Promise<Record<string, unknown>>((resolve, reject) => {
      const rpc = methods[method] as protoLoader.MethodDefinition<object, object>;
      client.makeUnaryRequest(
        rpc.path,
        rpc.requestSerialize,
        rpc.responseDeserialize as (bytes: Buffer) => Record<string, unknown>,
        request,
        new Metadata(),
        { deadline: Date.now() + 5000 },
        (error: ServiceError | null, reply?: Record<string, unknown>) =>
          error ? reject(error) : resolve(reply ?? {}),
      );
    });
  const session = () => ({
    fleet_list_request: randomBytes(options.payloadBytes),
    fleet_list_response: randomBytes(options.payloadBytes),
    attributes: { a: randomBytes(16), b: randomBytes(16) },
    ttl_seconds: 300,
  });
  const seed = async () => {
    const keys: string[] = [];
    for (let i = 0; i < KEYS_PER_LOOP; i++) {
      keys.push(String((await call('SetSession', session())).session_key));
    }
    return keys;
  };

  const start = performance.now();
  const measureFrom = start + options.warmupMs;
  const stopAt = measureFrom + options.durationMs;
  const latencies: number[] = [];
  let errors = 0;
  const timed = async (method: string, request: object) => {
    const began = performance.now();
    try {
      const reply = await call(method, request);
      const ended = performance.now();
      if (began >= measureFrom && ended <= stopAt) latencies.push(ended - began);
      return reply;
    } catch {
      if (began >= measureFrom && performance.now() <= stopAt) errors++;
      return undefined;
    }
  };
  const loop = async () => {
    const keys = options.op === 'get' || options.op === 'update' ? await seed() : [];
    const body = session();
    for (let i = 0; performance.now() < stopAt; i++) {
      const key = keys[i % KEYS_PER_LOOP] ?? '';
      if (options.op === 'get') await timed('GetSession', { session_key: key });
      else if (options.op === 'update') {
        await timed('UpdateSession', {
          session_key: key,
          fleet_list_response: body.fleet_list_response,
          set_attributes: { b: body.attributes.b },
        });
      } else {
        const set = await timed('SetSession', body);
        const session_key = set?.session_key;
        if (typeof session_key !== 'string') continue;
        if (options.op === 'mixed') await timed('GetSession', { session_key });
        if (options.op === 'consume') await timed('ConsumeSession', { session_key });
      }
    }
  };
  await Promise.all(Array.from({ length: options.inFlight }, loop));
  client.close();
  return { latencies: Float64Array.from(latencies), errors };
}

const percentile = (sorted: Float64Array, p: number) =>
  sorted.length === 0
    ? 0
    : (sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0);

/** Runs the load and returns figures in the Go loadgen's JSON vocabulary. */
export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const threads = Math.min(options.threads, options.concurrency);
  const replies = await Promise.all(
    Array.from({ length: threads }, (_, i) => {
      const inFlight =
        Math.floor(options.concurrency / threads) + (i < options.concurrency % threads ? 1 : 0);
      // Loader hooks are per thread in Node 20: register tsx before loading this file.
      const worker = new Worker(
        `import('tsx/esm/api').then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`,
        { eval: true, workerData: { ...options, inFlight } },
      );
      return new Promise<WorkerReply>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
      });
    }),
  );
  const all = new Float64Array(replies.reduce((n, r) => n + r.latencies.length, 0));
  let offset = 0;
  for (const reply of replies) {
    all.set(reply.latencies, offset);
    offset += reply.latencies.length;
  }
  all.sort();
  const round = (ms: number) => Math.round(ms * 1000) / 1000;
  return {
    ok: all.length,
    errors: replies.reduce((n, r) => n + r.errors, 0),
    rps: Math.round((all.length / options.durationMs) * 1000),
    p50_ms: round(percentile(all, 0.5)),
    p90_ms: round(percentile(all, 0.9)),
    p99_ms: round(percentile(all, 0.99)),
    max_ms: round(all[all.length - 1] ?? 0),
    windowMs: options.durationMs,
  };
}

if (!isMainThread) {
  runWorker(workerData as LoadOptions & { inFlight: number }).then((reply) =>
    parentPort?.postMessage(reply),
  );
}
