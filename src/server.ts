import { Server, ServerCredentials, type ServiceDefinition } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { Config } from './config.ts';
import type { Logger } from './logger.ts';
import { SessionService } from './service.ts';
import type { SessionStore } from './store/store.ts';
import { createTokenGenerator } from './token.ts';
import { sessionManagerHandlers } from './transport/grpc-service.ts';
import { HealthMonitor } from './transport/health.ts';
import { packageDefinition, SERVICE_NAME } from './transport/proto.ts';

/** Room for keys, attribute names and framing beside the session's own bytes. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

export interface SessionServer {
  /** Binds and starts serving; resolves to the bound port (useful with PORT=0). */
  listen(): Promise<number>;
  /** Graceful stop: NOT_SERVING, refuse new calls, drain in-flight ones up to the grace period. */
  close(): Promise<void>;
  readonly health: HealthMonitor;
}

export function createServer(
  config: Config,
  deps: { store: SessionStore; logger: Logger },
): SessionServer {
  const { store, logger } = deps;
  const service = new SessionService(store, config.session, createTokenGenerator());
  const health = new HealthMonitor(() => store.ping(), logger);
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
    health,
    async listen() {
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync(
          `${config.host}:${config.port}`,
          ServerCredentials.createInsecure(),
          (error, bound) => (error ? reject(error) : resolve(bound)),
        ),
      );
      await health.start();
      return port;
    },
    async close() {
      health.stop();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          logger.warn({ graceMs: config.shutdownGraceMs }, 'grace period over; cancelling calls');
          server.forceShutdown();
          resolve();
        }, config.shutdownGraceMs);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await store.close();
    },
  };
}
