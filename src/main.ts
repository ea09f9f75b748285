import cluster from 'node:cluster';
import { buildInfo } from './build-info.ts';
import { aggregateWorkerMetrics } from './cluster-metrics.ts';
import { type Config, ConfigError, insecureExposure, loadConfig } from './config.ts';
import { createLogger, type Logger } from './logger.ts';
import { createServer } from './server.ts';
import { createStore } from './store/create-store.ts';
import { MemoryStore } from './store/memory-store.ts';

/** Process wiring: config, store, server, signals; with WORKERS > 1, a node:cluster primary. */
async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`sessionmanager: ${error.message}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  process.on('unhandledRejection', (reason) =>
    logger.error({ err: reason }, 'unhandled rejection'),
  );
  if (config.workers > 1 && cluster.isPrimary) superviseWorkers(config, logger);
  else await serve(config, logger);
}

async function serve(config: Config, logger: Logger): Promise<void> {
  const store = createStore(config, logger);
  const server = createServer(config, { store, logger, clusterWorker: cluster.isWorker });
  server.metrics.describeBuild(buildInfo(config));
  if (store instanceof MemoryStore) {
    server.metrics.watchMemoryStore(() => store.usage(), config.memoryMaxBytes);
  }
  const ports = await server.listen();
  logger.info(
    {
      host: config.host,
      port: ports.grpc,
      httpPort: ports.http,
      store: config.redis ? 'redis' : 'memory',
      ...(config.redis && { topology: config.redis.topology.kind }),
      transport: config.transport,
      tls: config.tls ? (config.tls.clientCa ? 'mutual' : 'server') : 'off',
      authTokens: config.auth?.tokens.length ?? 0,
      ...(cluster.isWorker && { worker: cluster.worker?.id }),
      health: server.health.status,
    },
    'sessionmanager listening',
  );
  if (insecureExposure(config)) {
    logger.warn(
      { host: config.host },
      'no TLS and no AUTH_TOKENS on a non-loopback address: any peer can read and change sessions; see README "Security" before production',
    );
  }
  onStopSignal(logger, config, () =>
    server.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    ),
  );
}

/**
 * The primary of WORKERS processes that share the port (node:cluster hands
 * each accepted connection to a worker). It serves nothing itself: it
 * replaces a worker that dies, sums the workers' metrics for whichever of
 * them a scrape reaches, and on SIGTERM forwards the signal so every worker
 * drains its own calls, then exits 0 once all have stopped cleanly.
 */
function superviseWorkers(config: Config, logger: Logger): void {
  let stopping = false;
  let failed = false;
  aggregateWorkerMetrics();
  for (let i = 0; i < config.workers; i++) cluster.fork();
  cluster.on('exit', (worker, code, signal) => {
    if (stopping) {
      if (code !== 0) failed = true;
      if (Object.keys(cluster.workers ?? {}).length === 0) {
        logger.info('stopped');
        process.exit(failed ? 1 : 0);
      }
      return;
    }
    logger.error({ worker: worker.id, code, signal }, 'worker died; starting another');
    cluster.fork();
  });
  onStopSignal(logger, config, () => {
    stopping = true;
    for (const worker of Object.values(cluster.workers ?? {})) worker?.process.kill('SIGTERM');
  });
}

function onStopSignal(logger: Logger, config: Config, stop: () => void): void {
  let stopping = false;
  const handle = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
    stop();
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
}

main().catch((error: unknown) => {
  process.stderr.write(`sessionmanager: failed to start: ${String(error)}\n`);
  process.exit(1);
});
