import type { Server as HttpServer } from 'node:http';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Server, ServerCredentials } from '@grpc/grpc-js';
import { Authenticator } from './auth.ts';
import { type Config, MESSAGE_OVERHEAD_BYTES } from './config.ts';
import { createHttpServer } from './http/http-server.ts';
import type { Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { CallWrapper } from './rpc/call.ts';
import { SessionService } from './service.ts';
import { InstrumentedStore } from './store/instrumented-store.ts';
import type { SessionStore } from './store/store.ts';
import { createTokenGenerator } from './token.ts';
import { sessionServiceDefinition, sessionServiceHandlers } from './transport/grpc-service.ts';
import { HealthMonitor } from './transport/health.ts';
import { LeanGrpcAdapter } from './transport/lean-grpc.ts';
import { Reflection } from './transport/reflection.ts';
import { LeanServer } from './wire/grpc/server.ts';

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
  const calls = new CallWrapper({ service, auth, metrics, logger });
  const maxMessageBytes = config.session.maxBytes + MESSAGE_OVERHEAD_BYTES;
  const transport =
    config.transport === 'lean'
      ? leanTransport(config, maxMessageBytes, calls, health)
      : grpcJsTransport(config, maxMessageBytes, calls, health, logger);
  // Base64 makes JSON payloads a third larger than their bytes.
  const http =
    config.httpPort === 0
      ? undefined
      : createHttpServer({
          calls,
          health,
          metrics,
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
  calls: CallWrapper,
  health: HealthMonitor,
): Transport {
  const adapter = new LeanGrpcAdapter(calls);
  const server = new LeanServer({
    maxReceiveBytes: maxMessageBytes,
    maxSendBytes: maxMessageBytes,
    limits: config.http2,
    ...adapter.hooks,
    ...(config.tls && {
      tls: { cert: config.tls.cert, key: config.tls.key, ca: config.tls.clientCa },
    }),
  });
  const host = adapter.register(server);
  health.implementation.addToServer(host);
  new Reflection().addToServer(host);
  return {
    listen: () => server.listen(config.host, config.port),
    close: () => server.close(config.shutdownGraceMs),
  };
}

function grpcJsTransport(
  config: Config,
  maxMessageBytes: number,
  calls: CallWrapper,
  health: HealthMonitor,
  logger: Logger,
): Transport {
  const server = new Server({
    'grpc.max_receive_message_length': maxMessageBytes,
    'grpc.max_send_message_length': maxMessageBytes,
  });
  server.addService(sessionServiceDefinition, sessionServiceHandlers(calls));
  health.implementation.addToServer(server);
  new Reflection().addToServer(server);
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
