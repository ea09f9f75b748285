import { Server, ServerCredentials, type ServiceDefinition, status } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { SessionService } from './service.ts';
import type { SessionStore } from './store/store.ts';
import { createTokenGenerator } from './token.ts';
import { sessionManagerHandlers } from './transport/grpc-service.ts';
import { HealthMonitor } from './transport/health.ts';
import { grpcJsServiceHost } from './transport/lean/grpc-js-services.ts';
import { LeanServer } from './transport/lean/http2-server.ts';
import { sessionMethods } from './transport/lean/session-methods.ts';
import { packageDefinition, SERVICE_NAME } from './transport/proto.ts';
import { toStatus } from './transport/status.ts';

/** Room for keys, attribute names and framing beside the session's own bytes. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

export interface SessionServer {
  /** Binds and starts serving; resolves to the bound port (useful with PORT=0). */
  listen(): Promise<number>;
  /** Graceful stop: NOT_SERVING, refuse new calls, drain in-flight ones up to the grace period. */
  close(): Promise<void>;
  readonly health: HealthMonitor;
}

interface Transport {
  listen(): Promise<number>;
  close(): Promise<void>;
}

export function createServer(
  config: Config,
  deps: { store: SessionStore; logger: Logger },
): SessionServer {
  const { store, logger } = deps;
  const service = new SessionService(store, config.session, createTokenGenerator());
  const health = new HealthMonitor(() => store.ping(), logger);
  const transport =
    config.transport === 'lean'
      ? leanTransport(config, service, health, logger)
      : grpcJsTransport(config, service, health, logger);
  return {
    health,
    async listen() {
      const port = await transport.listen();
      await health.start();
      return port;
    },
    async close() {
      health.stop();
      await transport.close();
      await store.close();
    },
  };
}

/** The session RPCs on node:http2 directly, with health and reflection on the same port. */
function leanTransport(
  config: Config,
  service: SessionService,
  health: HealthMonitor,
  logger: Logger,
): Transport {
  const maxBytes = config.session.maxBytes + MESSAGE_OVERHEAD_BYTES;
  const server = new LeanServer({
    maxReceiveBytes: maxBytes,
    maxSendBytes: maxBytes,
    statusOf: (error, path) => {
      const result = toStatus(error);
      if (result.code === status.INTERNAL) logger.error({ err: error, path }, 'call failed');
      return result;
    },
  });
  for (const [path, unary] of Object.entries(sessionMethods(service))) {
    server.register(path, { unary });
  }
  const host = grpcJsServiceHost((path, method) => server.register(path, method));
  health.implementation.addToServer(host);
  new ReflectionService(packageDefinition).addToServer(host);
  return {
    listen: () => server.listen(config.host, config.port),
    close: () => server.close(config.shutdownGraceMs),
  };
}

function grpcJsTransport(
  config: Config,
  service: SessionService,
  health: HealthMonitor,
  logger: Logger,
): Transport {
  const server = new Server({
    'grpc.max_receive_message_length': config.session.maxBytes + MESSAGE_OVERHEAD_BYTES,
    'grpc.max_send_message_length': config.session.maxBytes + MESSAGE_OVERHEAD_BYTES,
  });
  server.addService(
    packageDefinition[SERVICE_NAME] as ServiceDefinition,
    sessionManagerHandlers(service, logger),
  );
  health.implementation.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);
  return {
    listen: () =>
      new Promise<number>((resolve, reject) =>
        server.bindAsync(
          `${config.host}:${config.port}`,
          ServerCredentials.createInsecure(),
          (error, bound) => (error ? reject(error) : resolve(bound)),
        ),
      ),
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          logger.warn({ graceMs: config.shutdownGraceMs }, 'grace period over; cancelling calls');
          server.forceShutdown();
          resolve();
        }, config.shutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      }),
  };
}
