import { SessionError } from './errors.ts';
import { GrpcJsTransport } from './grpc-js-transport.ts';
import { IDEMPOTENCY_HEADER, idempotencyKey } from './idempotency.ts';
import { LeanTransport } from './lean/lean-transport.ts';
import type { TlsMaterial as ClientTls } from './lean/pool.ts';
import { targetGroup } from './lean/targets.ts';
import {
  fromWireOwnedSession,
  fromWireSession,
  fromWireSetResult,
  toWireConditionalKey,
  toWireSet,
  toWireTouch,
  toWireUpdate,
} from './messages.ts';
import {
  type ClientOptions,
  defaults,
  positive,
  type ResolvedOptions,
  resolveOptions,
  toFields,
} from './options.ts';
import { withRetries } from './retry.ts';
import type { Transport } from './transport.ts';
import type {
  CallOptions,
  ConditionalKeyInput,
  DeleteSessionResult,
  GetSessionInput,
  ListSessionsInput,
  OwnedSession,
  RevokeSessionsResult,
  RotateSessionKeyResult,
  Session,
  SessionKeyInput,
  SetSessionInput,
  SetSessionResult,
  TouchSessionInput,
  TouchSessionResult,
  UpdateSessionInput,
} from './types.ts';
import { type WireMethod, wireMethods } from './wire.ts';

export interface SessionClient<Req = unknown, Res = unknown, Attr = unknown> {
  /** Creates a session, or replaces the one under `sessionKey`. */
  setSession(
    input: SetSessionInput<Req, Res, Attr>,
    options?: CallOptions,
  ): Promise<SetSessionResult>;
  /** The session, or null when it is absent or expired. */
  getSession(
    input: GetSessionInput,
    options?: CallOptions,
  ): Promise<Session<Req, Res, Attr> | null>;
  /**
   * Merges changes into an existing session. Throws NOT_FOUND when it is
   * absent, CONFLICT when `expectedVersion` is stale.
   */
  updateSession(
    input: UpdateSessionInput<Req, Res, Attr>,
    options?: CallOptions,
  ): Promise<Session<Req, Res, Attr>>;
  /** Extends the idle TTL. Throws NOT_FOUND when the session is absent. */
  touchSession(input: TouchSessionInput, options?: CallOptions): Promise<TouchSessionResult>;
  /**
   * Reads and deletes in one step; null when absent (or already consumed).
   * With `expectedVersion`, only that version (else CONFLICT, and it stays).
   */
  consumeSession(
    input: ConditionalKeyInput,
    options?: CallOptions,
  ): Promise<Session<Req, Res, Attr> | null>;
  /** Deletes the session; `deleted` is false when there was none. */
  deleteSession(input: ConditionalKeyInput, options?: CallOptions): Promise<DeleteSessionResult>;
  /**
   * Moves the session to a new server-generated key and removes the old one,
   * atomically (after a privilege change). Throws NOT_FOUND when it is
   * absent.
   */
  rotateSessionKey(input: SessionKeyInput, options?: CallOptions): Promise<RotateSessionKeyResult>;
  /**
   * The owner's live sessions (see SetSessionInput.owner), oldest first: a
   * handle and the metadata of each, their content only with
   * `includeContent`. Needs a token with the `admin` permission. Retried, as
   * a read.
   */
  listSessions(
    owner: string,
    input?: ListSessionsInput,
    options?: CallOptions,
  ): Promise<OwnedSession<Req, Res, Attr>[]>;
  /**
   * Deletes every session of the owner in one step; `revoked` counts those
   * that were live. Needs a token with the `admin` permission. Retried, as
   * a delete is: a repeat under the call's idempotency key returns the first
   * count (without one, a retry after a lost reply may count fewer).
   */
  revokeSessions(owner: string, options?: CallOptions): Promise<RevokeSessionsResult>;
  /** Releases the channels. Calls made afterwards fail with CANCELLED. */
  close(): void;
}

export function createClient<Req = unknown, Res = unknown, Attr = unknown>(
  options: ClientOptions<Req, Res, Attr>,
): SessionClient<Req, Res, Attr> {
  const resolved = resolveOptions(options);
  const methods = wireMethods;
  const { codecs } = resolved;
  const transport = createTransport(resolved);
  let closed = false;

  /**
   * One logical call: its attempts share one deadline and, for a write, one
   * idempotency key. `safe` says whether the call may be repeated without a
   * key; with one, any call may.
   */
  async function invoke<Request, Response>(
    method: WireMethod<Request, Response>,
    request: Request,
    safe: boolean,
    callOptions: CallOptions = {},
    write = true,
  ): Promise<Response> {
    const deadlineMs = positive('deadlineMs', callOptions.deadlineMs ?? resolved.deadlineMs);
    const deadline = Date.now() + deadlineMs;
    const { signal } = callOptions;
    const given = callOptions.metadata === undefined ? [] : toFields(callOptions.metadata);
    const key = write ? idempotencyKey(callOptions, resolved.idempotencyKeys) : undefined;
    const perCall = key === undefined ? given : [...given, [IDEMPOTENCY_HEADER, key] as const];
    return withRetries(
      async () => {
        const metadata = await resolved.metadata();
        if (closed) {
          throw new SessionError('CANCELLED', 'the client has been closed');
        }
        return transport.call(
          method,
          request,
          perCall.length === 0 ? metadata : [...metadata, ...perCall],
          deadline,
          signal,
        );
      },
      { policy: safe || key !== undefined ? resolved.retry : undefined, deadline, signal },
    );
  }

  return {
    async setSession(input, callOptions) {
      const keyed = input.sessionKey !== undefined && input.sessionKey !== '';
      const wire = toWireSet(input, codecs);
      return fromWireSetResult(await invoke(methods.SetSession, wire, keyed, callOptions));
    },

    async getSession(input, callOptions) {
      const wire = { session_key: input.sessionKey, touch: input.touch ?? false };
      const found = await nullIfNotFound(
        invoke(methods.GetSession, wire, true, callOptions, false),
      );
      return found === null ? null : fromWireSession(found, codecs);
    },

    async updateSession(input, callOptions) {
      const wire = toWireUpdate(input, codecs);
      const retryable = input.expectedVersion !== undefined;
      return fromWireSession(
        await invoke(methods.UpdateSession, wire, retryable, callOptions),
        codecs,
      );
    },

    async touchSession(input, callOptions) {
      const touched = await invoke(methods.TouchSession, toWireTouch(input), true, callOptions);
      return { expiresAtUnixMs: touched.expires_at_unix_ms };
    },

    async consumeSession(input, callOptions) {
      const wire = toWireConditionalKey(input);
      const found = await nullIfNotFound(invoke(methods.ConsumeSession, wire, false, callOptions));
      return found === null ? null : fromWireSession(found, codecs);
    },

    async deleteSession(input, callOptions) {
      const wire = toWireConditionalKey(input);
      const { deleted } = await invoke(methods.DeleteSession, wire, true, callOptions);
      return { deleted };
    },

    async rotateSessionKey(input, callOptions) {
      const wire = { session_key: input.sessionKey };
      const rotated = await invoke(methods.RotateSessionKey, wire, false, callOptions);
      return {
        sessionKey: rotated.session_key,
        expiresAtUnixMs: rotated.expires_at_unix_ms,
        version: rotated.version,
      };
    },

    async listSessions(owner, input = {}, callOptions) {
      const includeContent = input.includeContent ?? false;
      const wire = { owner, include_content: includeContent };
      const { sessions } = await invoke(methods.ListSessions, wire, true, callOptions, false);
      return sessions.map((session) => fromWireOwnedSession(session, codecs, includeContent));
    },

    async revokeSessions(owner, callOptions) {
      const { revoked } = await invoke(methods.RevokeSessions, { owner }, true, callOptions);
      return { revoked };
    },

    close() {
      closed = true;
      transport.close();
    },
  };
}

export function createTransport(resolved: ResolvedOptions<unknown, unknown, unknown>): Transport {
  if (resolved.transport === 'grpc-js') {
    return new GrpcJsTransport(resolved.targets, resolved.credentials, resolved.channelOptions);
  }
  const credentials = resolved.credentials;
  return new LeanTransport(
    resolved.targets.map((target) => targetGroup(target, defaults.port)),
    {
      tls: credentials === undefined ? undefined : (credentials as ClientTls),
      connection: {
        maxHeaderListBytes: 64 * 1024,
        streamWindowBytes: 1024 * 1024,
        connectionWindowBytes: 16 * 1024 * 1024,
        keepalive: resolved.keepalive,
        handshakeTimeoutMs: 20_000,
      },
      initialBackoffMs: resolved.backoff.initialBackoffMs,
      maxBackoffMs: resolved.backoff.maxBackoffMs,
      dnsRefreshMs: resolved.dnsRefreshMs,
      connectTimeoutMs: 20_000,
      maxResponseBytes: resolved.maxResponseBytes,
    },
  );
}

async function nullIfNotFound<T>(call: Promise<T>): Promise<T | null> {
  try {
    return await call;
  } catch (error) {
    if (error instanceof SessionError && error.code === 'NOT_FOUND') {
      return null;
    }
    throw error;
  }
}
