import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Server, ServerCredentials, type ServiceDefinition, status } from '@grpc/grpc-js';
import { ReflectionService } from '@grpc/reflection';
import { Authenticator } from './auth.ts';
import { type Config, MESSAGE_OVERHEAD_BYTES } from './config.ts';
import { createHttpServer } from './http/http-server.ts';
import type { Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { SessionService } from './service.ts';
import { InstrumentedStore } from './store/instrumented-store.ts';
import type { SessionStore } from './store/store.ts';
import { createTokenGenerator } from './token.ts';
import { type CallContext, sessionManagerHandlers } from './transport/grpc-service.ts';
import { HealthMonitor } from './transport/health.ts';
import { grpcJsServiceHost } from './transport/lean/grpc-js-services.ts';
import { LeanServer } from './transport/lean/http2-server.ts';
import { sessionMethods } from './transport/lean/session-methods.ts';
import { packageDefinition, SERVICE_NAME } from './transport/proto.ts';
import { statusName, toStatus } from './transport/status.ts';

export interface SessionServer {
  /** Binds and starts serving; resolves to the bound ports (useful with PORT=0). */
  listen(): Promise<{ grpc: number; http: number | undefined }>;
  /** Graceful stop: NOT_SERVING, refuse new calls, drain in-flight ones up to the grace period. */
  close(): Promise<void>;
  readonly health: HealthMonitor;
  readonly metrics: Metrics;
}

interface Transport {
  listen(): Promise<number>;
  close(): Promise<void>;
}

export function createServer(
  config: Config,
  deps: { store: SessionStore; logger: Logger; clusterWorker?: boolean },
): SessionServer {
  const { logger } = deps;
  const metrics = new Metrics({ acrossWorkers: deps.clusterWorker === true });
  const store = new InstrumentedStore(deps.store, metrics);
  const service = new SessionService(store, config.session, createTokenGenerator());
  const health = new HealthMonitor(
    () => store.ping(),
    logger,
    (serving) => metrics.storeHealthChanged(serving === 'SERVING'),
  );
  const auth = new Authenticator(config.auth?.tokens);
  const context: CallContext = { logger, metrics, auth };
  const maxMessageBytes = config.session.maxBytes + MESSAGE_OVERHEAD_BYTES;
  const transport =
    config.transport === 'lean'
      ? leanTransport(config, maxMessageBytes, service, health, context)
      : grpcJsTransport(config, maxMessageBytes, service, health, context);
  // Base64 makes JSON payloads a third larger than their bytes.
  const http =
    config.httpPort === 0
      ? undefined
      : createHttpServer({
          service,
          health,
          metrics,
          logger,
          auth,
          tls: config.tls,
          maxBodyBytes: Math.ceil((maxMessageBytes * 4) / 3),
        });

  return {
    health,
    metrics,
    async listen() {
      const grpcPort = await transport.listen();
      const httpPort = http ? await listenHttp(http, config) : undefined;
      await health.start();
      return { grpc: grpcPort, http: httpPort };
    },
    async close() {
      health.stop();
      http?.close();
      http?.closeIdleConnections();
      await transport.close();
      http?.closeAllConnections();
      await store.close();
    },
  };
}

async function listenHttp(http: HttpServer | HttpsServer, config: Config): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(config.httpPort, config.host, () => {
      http.off('error', reject);
      resolve();
    });
  });
  return (http.address() as AddressInfo).port;
}

/** The session RPCs on our own HTTP/2 layer, with health and reflection on the same port. */
function leanTransport(
  config: Config,
  maxMessageBytes: number,
  service: SessionService,
  health: HealthMonitor,
  { logger, metrics, auth }: CallContext,
): Transport {
  const server = new LeanServer({
    maxReceiveBytes: maxMessageBytes,
    maxSendBytes: maxMessageBytes,
    limits: config.http2,
    statusOf: (error, path, requestId) => {
      const result = toStatus(error);
      if (result.code === status.INTERNAL) {
        logger.error({ err: error, path, requestId }, 'call failed');
      }
      return result;
    },
    observe: (method, code, seconds) =>
      metrics.observeCall('grpc', method, statusName(code), seconds),
    ...(config.tls && {
      tls: { cert: config.tls.cert, key: config.tls.key, ca: config.tls.clientCa },
    }),
  });
  for (const [path, method] of Object.entries(sessionMethods(service, auth))) {
    server.register(path, method);
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
  maxMessageBytes: number,
  service: SessionService,
  health: HealthMonitor,
  context: CallContext,
): Transport {
  const server = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  });
  server.addService(
    packageDefinition[SERVICE_NAME] as ServiceDefinition,
    sessionManagerHandlers(service, context),
  );
  health.implementation.addToServer(server);
  new ReflectionService(packageDefinition).addToServer(server);
  return {
    listen: () =>
      new Promise<number>((resolve, reject) =>
        server.bindAsync(
          `${config.host}:${config.port}`,
          config.tls
            ? ServerCredentials.createSsl(
                config.tls.clientCa ?? null,
                [{ private_key: config.tls.key, cert_chain: config.tls.cert }],
                config.tls.clientCa !== undefined,
              )
            : ServerCredentials.createInsecure(),
          (error, bound) => (error ? reject(error) : resolve(bound)),
        ),
      ),
    close: () =>
      new Promise<void>((resolve) => {
        const force = setTimeout(() => {
          context.logger.warn(
            { graceMs: config.shutdownGraceMs },
            'grace period over; cancelling calls',
          );
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
