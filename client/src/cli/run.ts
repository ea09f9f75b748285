import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { lengthDelimitedSize, readFields, VARINT, Writer } from '../../../src/wire/protobuf.ts';
import { createClient, createTransport } from '../client.ts';
import { rawCodec } from '../codec.ts';
import { SessionError } from '../errors.ts';
import { resolveOptions, type TlsOptions } from '../options.ts';
import type { OwnedSession, Session } from '../types.ts';
import type { WireMethod } from '../wire.ts';
import { parseAttributes, parsePayload, renderPayload, UsageError } from './payload.ts';

// The `sessionmanager` command: every call of the API, and the health check,
// from a shell. It ships in @sessionmanager/client (npx -p @sessionmanager/client
// sessionmanager ...), so an operator needs no server checkout; the server's own
// `sessionmanager serve` hands every other command to it.

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
  serve                                  start the server (the server package's command only)
  set     [--key K] [--request P] [--response P] [--attr name=P ...] [--ttl S]
          [--owner ID]                   --owner: index the session under an owner (leave --key out)
  get     KEY [--touch]
  update  KEY [--request P] [--response P] [--attr name=P ...] [--remove name ...]
              [--expected-version N] [--ttl S]
  touch   KEY [--ttl S]
  consume KEY [--expected-version N]
  delete  KEY [--expected-version N]
  rotate  KEY                            move the session to a new key (printed); the old key is gone
  list-sessions   OWNER [--content]      the owner's live sessions, oldest first (an admin token)
  revoke-sessions OWNER                  delete every session of the owner; prints how many (an admin token)
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
A KEY or OWNER that starts with "-" (generated keys may) goes after "--": get -- -Abc...
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
  owner: { type: 'string' },
  content: { type: 'boolean' },
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

function ownedOutput(session: OwnedSession<Buffer, Buffer, Buffer>) {
  const { fleetListRequest, fleetListResponse, attributes, ...metadata } = session;
  if (attributes === undefined) return metadata;
  return {
    ...metadata,
    fleetListRequest: renderPayload(fleetListRequest),
    fleetListResponse: renderPayload(fleetListResponse),
    attributes: Object.fromEntries(
      Object.entries(attributes).map(([name, value]) => [name, renderPayload(value)]),
    ),
  };
}

/** Plaintext, TLS with --tls-ca, mutual TLS with --tls-cert and --tls-key too. */
function tlsOptions(
  ca: string | undefined,
  cert: string | undefined,
  key: string | undefined,
): TlsOptions | undefined {
  if ((cert === undefined) !== (key === undefined))
    throw new UsageError('--tls-cert and --tls-key go together');
  if (ca === undefined && cert === undefined) return undefined;
  const read = (option: string, path: string | undefined) => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path);
    } catch (error) {
      throw new UsageError(
        `--${option} ${path}: cannot read it (${(error as NodeJS.ErrnoException).code})`,
      );
    }
  };
  const tls = { ca: read('tls-ca', ca), cert: read('tls-cert', cert), key: read('tls-key', key) };
  return {
    tls: Object.fromEntries(Object.entries(tls).filter(([, value]) => value !== undefined)),
  };
}

/** grpc.health.v1.Health/Check: a service name in, a ServingStatus enum out. */
const SERVING_STATUS = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'];
const healthCheck: WireMethod<string, string> = {
  path: '/grpc.health.v1.Health/Check',
  encode(service, framed) {
    const length = Buffer.byteLength(service);
    const w = new Writer(length === 0 ? 0 : lengthDelimitedSize(length), framed);
    if (length !== 0) w.string(1, service, length);
    return w.buf;
  },
  decode(bytes) {
    let status = 0;
    readFields(bytes, (reader, number, wireType) => {
      if (number !== 1 || wireType !== VARINT) return false;
      status = reader.int32();
      return true;
    });
    return SERVING_STATUS[status] ?? String(status);
  },
};

async function checkHealth(
  address: string,
  deadlineMs: number,
  credentials: TlsOptions | undefined,
  metadata: Record<string, string> | undefined,
): Promise<string> {
  const transport = createTransport(
    resolveOptions({ address, ...(credentials && { credentials }), deadlineMs }),
  );
  try {
    const fields = Object.entries(metadata ?? {});
    return await transport.call(healthCheck, '', fields, Date.now() + deadlineMs, undefined);
  } finally {
    transport.close();
  }
}

/** Runs the command in `argv` (without node and the script); resolves to the exit code. */
export async function run(argv: string[]): Promise<number> {
  try {
    return await runCommand(argv);
  } catch (error) {
    return failure(error);
  }
}

async function runCommand(argv: string[]): Promise<number> {
  const { positionals, values } = parseArgs({
    args: argv,
    options: OPTIONS,
    allowPositionals: true,
  });
  const [command, argument, ...extra] = positionals;
  if (values.help || command === undefined) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? ExitCode.ok : ExitCode.usage;
  }
  if (command === 'serve') {
    throw new UsageError(
      'serve starts the server, which this package does not include: run the server image, or `npm start` in its checkout',
    );
  }
  if (extra.length > 0) throw new UsageError(`unexpected arguments: ${extra.join(' ')}`);
  const needsKey = ['get', 'update', 'touch', 'consume', 'delete', 'rotate'].includes(command);
  const needsOwner = ['list-sessions', 'revoke-sessions'].includes(command);
  if (needsKey && argument === undefined) throw new UsageError(`${command} needs a session KEY`);
  if (needsOwner && argument === undefined) throw new UsageError(`${command} needs an OWNER`);
  if (!needsKey && !needsOwner && argument !== undefined) {
    throw new UsageError(`${command} takes no KEY`);
  }

  const address = values.addr ?? process.env.SESSIONMANAGER_ADDR ?? '127.0.0.1:6027';
  const deadlineMs = integer('timeout', values.timeout) ?? 5000;
  const ttlSeconds = integer('ttl', values.ttl);
  const print = (value: unknown) => process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);

  const credentials = tlsOptions(values['tls-ca'], values['tls-cert'], values['tls-key']);
  const token = process.env.SESSIONMANAGER_TOKEN;
  const metadata = token ? { authorization: `Bearer ${token}` } : undefined;

  if (command === 'health') {
    const status = await checkHealth(address, deadlineMs, credentials, metadata);
    print({ status });
    return status === 'SERVING' ? ExitCode.ok : ExitCode.unavailable;
  }

  const sessions = createClient<Buffer, Buffer, Buffer>({
    address,
    deadlineMs,
    ...(credentials && { credentials }),
    ...(metadata && { metadata }),
    codec: { fleetListRequest: rawCodec, fleetListResponse: rawCodec, attributes: rawCodec },
  });
  const sessionKey = argument ?? '';
  const owner = argument ?? '';
  const expectedVersion = integer('expected-version', values['expected-version']);
  const expected = () => (expectedVersion === undefined ? {} : { expectedVersion });
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
            ...(values.owner !== undefined && { owner: values.owner }),
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
        const session = await sessions.updateSession({
          sessionKey,
          ...payloads,
          setAttributes: parseAttributes(values.attr ?? []),
          removeAttributes: values.remove ?? [],
          ...expected(),
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
        const session = await sessions.consumeSession({ sessionKey, ...expected() });
        if (!session) return notFound();
        print(sessionOutput(session));
        return ExitCode.ok;
      }
      case 'delete':
        print(await sessions.deleteSession({ sessionKey, ...expected() }));
        return ExitCode.ok;
      case 'rotate':
        print(await sessions.rotateSessionKey({ sessionKey }));
        return ExitCode.ok;
      case 'list-sessions': {
        const includeContent = values.content ?? false;
        print((await sessions.listSessions(owner, { includeContent })).map(ownedOutput));
        return ExitCode.ok;
      }
      case 'revoke-sessions':
        print(await sessions.revokeSessions(owner));
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
  process.stderr.write(`sessionmanager: ${String(error)}\n`);
  return ExitCode.failed;
}
