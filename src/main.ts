import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { createServer } from './server.ts';
import { createStore } from './store/create-store.ts';

/** Process wiring: config, store, server, signals. */
async function main(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`sessionmanager: ${error.message}\n`);
    process.exit(2);
  }
  const logger = createLogger(config.logLevel);
  const store = createStore(config, logger);
  const server = createServer(config, { store, logger });
  const ports = await server.listen();
  logger.info(
    {
      host: config.host,
      port: ports.grpc,
      httpPort: ports.http,
      store: config.redis ? 'redis' : 'memory',
      ...(config.redis && { topology: config.redis.topology.kind }),
      health: server.health.status,
    },
    'sessionmanager listening',
  );

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal, graceMs: config.shutdownGraceMs }, 'shutting down');
    server.close().then(
      () => {
        logger.info('stopped');
        process.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('unhandledRejection', (reason) =>
    logger.error({ err: reason }, 'unhandled rejection'),
  );
}

main().catch((error: unknown) => {
  process.stderr.write(`sessionmanager: failed to start: ${String(error)}\n`);
  process.exit(1);
});
