#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { parseArgs } from 'node:util';
import {
  type ChannelCredentials,
  credentials,
  loadPackageDefinition,
  type ServiceError,
  status,
} from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { createClient, rawCodec, type Session, SessionError } from '@sessionmanager/client';
import { parseAttributes, parsePayload, renderPayload, UsageError } from './payload.ts';

/** Exit codes a script can branch on. */
const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  notFound: 3,
  conflict: 4,
  unavailable: 5,
} as const;

const USAGE = `usage: sessionmanager <command> [options]

commands:
  serve                                  start the server (configured by environment, see README)
  set     [--key K] [--request P] [--response P] [--attr name=P ...] [--ttl S]
  get     KEY [--touch]
  update  KEY [--request P] [--response P] [--attr name=P ...] [--remove name ...]
              [--expected-version N] [--ttl S]
  touch   KEY [--ttl S]
  consume KEY
  delete  KEY
  rotate  KEY                            move the session to a new key (printed); the old key is gone
  health

options:
  --addr HOST:PORT   server address (default: $SESSIONMANAGER_ADDR or 127.0.0.1:6027)
  --timeout MS       deadline per call (default 5000)
  --tls-ca FILE      use TLS, trusting this PEM CA (default: plaintext)
  --tls-cert FILE, --tls-key FILE
                     mutual TLS: the client certificate and key (PEM)

environment:
  SESSIONMANAGER_TOKEN   bearer token sent with every call (when the server has AUTH_TOKENS)

P (a payload) is text or JSON as given, @path for a file's bytes, or base64:DATA.
A KEY that starts with "-" (generated keys may) goes after "--": get -- -Abc...
Output is JSON. Stored payloads print as JSON when they are JSON, as text when
they are text, and as {"base64": "..."} otherwise.

exit codes: 0 ok, 1 other failure, 2 invalid input or usage, 3 not found,
            4 version conflict, 5 unavailable or deadline exceeded`;

const OPTIONS = {
  addr: { type: 'string' },
  timeout: { type: 'string' },
  key: { type: 'string' },
  request: { type: 'string' },
  response: { type: 'string' },
  attr: { type: 'string', multiple: true },
  remove: { type: 'string', multiple: true },
  'expected-version': { type: 'string' },
  ttl: { type: 'string' },
  touch: { type: 'boolean' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function integer(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value))
    throw new UsageError(`--${name} expects a whole number, got "${value}"`);
  return Number(value);
}

function sessionOutput(session: Session<Buffer, Buffer, Buffer>) {
  return {
    sessionKey: session.sessionKey,
    fleetListRequest: renderPayload(session.fleetListRequest),
    fleetListResponse: renderPayload(session.fleetListResponse),
    attributes: Object.fromEntries(
      Object.entries(session.attributes).map(([name, value]) => [name, renderPayload(value)]),
    ),
    ttlSeconds: session.ttlSeconds,
    expiresAtUnixMs: session.expiresAtUnixMs,
    version: session.version,
    createdAtUnixMs: session.createdAtUnixMs,
  };
}

/** Plaintext, TLS with --tls-ca, mutual TLS with --tls-cert and --tls-key too. */
function channelCredentials(
  ca: string | undefined,
  cert: string | undefined,
  key: string | undefined,
): ChannelCredentials {
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError('--tls-cert and --tls-key go together');
  if (ca === undefined && cert === undefined) return credentials.createInsecure();
  const read = (option: string, path: string | undefined) => {
    if (path === undefined) return null;
    try {
      return readFileSync(path);
    } catch (error) {
      throw new UsageError(
        `--${option} ${path}: cannot read it (${(error as NodeJS.ErrnoException).code})`,
      );
    }
  };
  return credentials.createSsl(read('tls-ca', ca), read('tls-key', key), read('tls-cert', cert));
}

function checkHealth(
  address: string,
  deadlineMs: number,
  channel: ChannelCredentials,
): Promise<string> {
  const require = createRequire(import.meta.url);
  const definition = protoLoader.loadSync(
    require.resolve('grpc-health-check/proto/health/v1/health.proto'),
    { keepCase: true, enums: String, defaults: true },
  );
  // biome-ignore lint/suspicious/noExplicitAny: a generated service constructor
  const { Health } = (loadPackageDefinition(definition) as any).grpc.health.v1;
  const client = new Health(address, channel);
  return new Promise((resolve, reject) =>
    client.Check(
      { service: '' },
      { deadline: Date.now() + deadlineMs },
      (error: ServiceError | null, reply: { status: string }) => {
        client.close();
        if (error) reject(error);
        else resolve(reply.status);
      },
    ),
  );
}

async function run(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
  });
  const [command, key, ...extra] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? ExitCode.ok : ExitCode.usage;
  }
  if (command === 'serve') {
    await import('../main.ts');
    return -1;
  }
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const needsKey = ['get', 'update', 'touch', 'consume', 'delete', 'rotate'].includes(command);
  if (needsKey && key === undefined) throw new UsageError(`${command} needs a session KEY`);
  if (!needsKey && key !== undefined) throw new UsageError(`${command} takes no KEY`);

  const address = values.addr ?? process.env.SESSIONMANAGER_ADDR ?? '127.0.0.1:6027';
  const deadlineMs = integer('timeout', values.timeout) ?? 5000;
  const ttlSeconds = integer('ttl', values.ttl);
  const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

  const channel = channelCredentials(values['tls-ca'], values['tls-cert'], values['tls-key']);
  const token = process.env.SESSIONMANAGER_TOKEN;
  const metadata = token ? { authorization: `Bearer ${token}` } : undefined;

  if (command === 'health') {
    const status = await checkHealth(address, deadlineMs, channel);
    print({ status });
    return status === 'SERVING' ? ExitCode.ok : ExitCode.unavailable;
  }

  const sessions = createClient<Buffer, Buffer, Buffer>({
    address,
    deadlineMs,
    credentials: channel,
    ...(metadata && { metadata }),
    codec: { fleetListRequest: rawCodec, fleetListResponse: rawCodec, attributes: rawCodec },
  });
  const sessionKey = key ?? '';
  const payloads = {
    ...(values.request !== undefined && { fleetListRequest: parsePayload(values.request) }),
    ...(values.response !== undefined && { fleetListResponse: parsePayload(values.response) }),
  };
  try {
    switch (command) {
      case 'set':
        print(
          await sessions.setSession({
            ...(values.key !== undefined && { sessionKey: values.key }),
            ...payloads,
            attributes: parseAttributes(values.attr ?? []),
            ...(ttlSeconds !== undefined && { ttlSeconds }),
          }),
        );
        return ExitCode.ok;
      case 'get': {
        const session = await sessions.getSession({ sessionKey, touch: values.touch ?? false });
        if (!session) return notFound();
        print(sessionOutput(session));
        return ExitCode.ok;
      }
      case 'update': {
        const expectedVersion = integer('expected-version', values['expected-version']);
        const session = await sessions.updateSession({
          sessionKey,
          ...payloads,
          setAttributes: parseAttributes(values.attr ?? []),
          removeAttributes: values.remove ?? [],
          ...(expectedVersion !== undefined && { expectedVersion }),
          ...(ttlSeconds !== undefined && { ttlSeconds }),
        });
        print(sessionOutput(session));
        return ExitCode.ok;
      }
      case 'touch':
        print(
          await sessions.touchSession({
            sessionKey,
            ...(ttlSeconds !== undefined && { ttlSeconds }),
          }),
        );
        return ExitCode.ok;
      case 'consume': {
        const session = await sessions.consumeSession({ sessionKey });
        if (!session) return notFound();
        print(sessionOutput(session));
        return ExitCode.ok;
      }
      case 'delete':
        print(await sessions.deleteSession({ sessionKey }));
        return ExitCode.ok;
      case 'rotate':
        print(await sessions.rotateSessionKey({ sessionKey }));
        return ExitCode.ok;
      default:
        throw new UsageError(`unknown command "${command}"`);
    }
  } finally {
    sessions.close();
  }
}

function notFound(): number {
  process.stderr.write('sessionmanager: NOT_FOUND: no such session (absent or expired)\n');
  return ExitCode.notFound;
}

const EXIT_BY_CODE: Record<string, number> = {
  NOT_FOUND: ExitCode.notFound,
  CONFLICT: ExitCode.conflict,
  INVALID_ARGUMENT: ExitCode.usage,
  RESOURCE_EXHAUSTED: ExitCode.usage,
  UNAVAILABLE: ExitCode.unavailable,
  DEADLINE_EXCEEDED: ExitCode.unavailable,
};

function failure(error: unknown): number {
  if (
    error instanceof UsageError ||
    (error as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
  ) {
    process.stderr.write(`sessionmanager: ${(error as Error).message}\n\n${USAGE}\n`);
    return ExitCode.usage;
  }
  if (error instanceof SessionError) {
    process.stderr.write(`sessionmanager: ${error.code}: ${error.message}\n`);
    return EXIT_BY_CODE[error.code] ?? ExitCode.failed;
  }
  const grpcCode = (error as Partial<ServiceError>).code;
  if (grpcCode === status.UNAVAILABLE || grpcCode === status.DEADLINE_EXCEEDED) {
    process.stderr.write(`sessionmanager: UNAVAILABLE: ${(error as Error).message}\n`);
    return ExitCode.unavailable;
  }
  process.stderr.write(`sessionmanager: ${String(error)}\n`);
  return ExitCode.failed;
}

run(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (error: unknown) => {
    process.exitCode = failure(error);
  },
);
