export { createClient, type SessionClient } from './client.ts';
export { type Codec, jsonCodec, rawCodec } from './codec.ts';
export { SessionError, type SessionErrorCode, sessionErrorCodes } from './errors.ts';
export type {
  ClientOptions,
  Headers,
  KeepaliveOptions,
  MetadataOption,
  TargetOptions,
  TlsOptions,
} from './options.ts';
export type { RetryPolicy } from './retry.ts';
export type {
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
