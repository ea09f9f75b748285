import { type Config, loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/logger.ts';
import { createServer, type SessionServer } from '../../src/server.ts';
import { createStore } from '../../src/store/create-store.ts';
import type { SessionStore } from '../../src/store/store.ts';
import { freePort, waitFor } from './ports.ts';

export interface TestServer {
  readonly port: number;
  readonly address: string;
  /** Base URL of the HTTP/JSON and admin port. */
  readonly httpUrl: string;
  readonly server: SessionServer;
  close(): Promise<void>;
  /** Closes and starts a new server on the same port (same store settings). */
  restart(): Promise<void>;
}

/**
 * The real server, in this process, on a free loopback port: the memory store
 * unless `redisPort` is given. `env` overrides any configuration variable.
 */
export async function startServer(
  options: {
    redisPort?: number;
    env?: Record<string, string>;
    /** A store of the test's own instead of the one the configuration selects. */
    store?: (config: Config) => SessionStore;
  } = {},
): Promise<TestServer> {
  const env: Record<string, string> = {
    HOST: '127.0.0.1',
    PORT: '0',
    LOG_LEVEL: 'silent',
    SHUTDOWN_GRACE: '2s',
    ...(options.redisPort === undefined
      ? {}
      : { REDIS_HOST: '127.0.0.1', REDIS_PORT: String(options.redisPort) }),
    ...options.env,
  };
  const boot = async (port: string) => {
    const config = loadConfig({ ...env, PORT: port });
    const logger = createLogger(config.logLevel);
    const store = options.store?.(config) ?? createStore(config, logger);
    const server = createServer(config, { store, logger });
    const bound = await server.listen();
    await waitFor('the server to report SERVING', async () => server.health.status === 'SERVING');
    return { server, port: bound.grpc };
  };
  env.HTTP_PORT ??= String(await freePort());
  let current = await boot(env.PORT ?? '0');
  const port = current.port;
  return {
    port,
    address: `127.0.0.1:${port}`,
    httpUrl: `${env.TLS_CERT_FILE ? 'https' : 'http'}://127.0.0.1:${env.HTTP_PORT}`,
    get server() {
      return current.server;
    },
    close: () => current.server.close(),
    restart: async () => {
      await current.server.close();
      current = await boot(String(port));
    },
  };
}
