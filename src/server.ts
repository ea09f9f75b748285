import type { AddressInfo } from 'node:net';
import { Server, ServerCredentials, type ServiceDefinition } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import type { Config } from './config.ts';
import { createHttpServer } from './http/http-server.ts';
import type { Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { SessionService } from './service.ts';
import { InstrumentedStore } from './store/instrumented-store.ts';
import type { SessionStore } from './store/store.ts';
import { createTokenGenerator } from './token.ts';
import { sessionManagerHandlers } from './transport/grpc-service.ts';
import { HealthMonitor } from './transport/health.ts';
import { packageDefinition, SERVICE_NAME } from './transport/proto.ts';

/** Room for keys, attribute names and framing beside the session's own bytes. */
const MESSAGE_OVERHEAD_BYTES = 64 * 1024;

export interface SessionServer {
  /** Binds and starts serving; resolves to the bound ports (useful with PORT=0). */
  listen(): Promise<{ grpc: number; http: number | undefined }>;
  /** Graceful stop: NOT_SERVING, refuse new calls, drain in-flight ones up to the grace period. */
  close(): Promise<void>;
  readonly health: HealthMonitor;
  readonly metrics: Metrics;
}

export function createServer(
  config: Config,
  deps: { store: SessionStore; logger: Logger },
): SessionServer {
  const { logger } = deps;
  const metrics = new Metrics();
  const store = new InstrumentedStore(deps.store, metrics);
  const service = new SessionService(store, config.session, createTokenGenerator());
  const health = new HealthMonitor(
    () => store.ping(),
    logger,
    (status) => metrics.storeUp.set(status === 'SERVING' ? 1 : 0),
  );
  const maxMessageBytes = config.session.maxBytes + MESSAGE_OVERHEAD_BYTES;
  const grpc = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  });
  grpc.addService(
    packageDefinition[SERVICE_NAME] as ServiceDefinition,
    sessionManagerHandlers(service, { logger, metrics }),
  );
  health.implementation.addToServer(grpc);
  new ReflectionService(packageDefinition).addToServer(grpc);
  // Base64 makes JSON payloads a third larger than their bytes.
  const http =
    config.httpPort === 0
      ? undefined
      : createHttpServer({
          service,
          health,
          metrics,
          logger,
          maxBodyBytes: Math.ceil((maxMessageBytes * 4) / 3),
        });

  return {
    health,
    metrics,
    async listen() {
      const grpcPort = await new Promise<number>((resolve, reject) =>
        grpc.bindAsync(
          `${config.host}:${config.port}`,
          ServerCredentials.createInsecure(),
          (error, bound) => (error ? reject(error) : resolve(bound)),
        ),
      );
      let httpPort: number | undefined;
      if (http) {
        await new Promise<void>((resolve, reject) => {
          http.once('error', reject);
          http.listen(config.httpPort, config.host, resolve);
        });
        httpPort = (http.address() as AddressInfo).port;
      }
      await health.start();
      return { grpc: grpcPort, http: httpPort };
    },
    async close() {
      health.stop();
      http?.close();
      http?.closeIdleConnections();
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          logger.warn({ graceMs: config.shutdownGraceMs }, 'grace period over; cancelling calls');
          grpc.forceShutdown();
          http?.closeAllConnections();
          resolve();
        }, config.shutdownGraceMs);
        grpc.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await store.close();
    },
  };
}
