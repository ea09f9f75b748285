import type { Codec } from './codec.ts';
import { SessionError } from './errors.ts';
import type {
  ConditionalKeyInput,
  OwnedSession,
  Session,
  SetSessionInput,
  SetSessionResult,
  TouchSessionInput,
  UpdateSessionInput,
} from './types.ts';
import type {
  WireConditionalKeyRequest,
  WireOwnedSession,
  WireSessionData,
  WireSetSessionRequest,
  WireSetSessionResponse,
  WireTouchSessionRequest,
  WireUpdateSessionRequest,
} from './wire.ts';

export interface Codecs<Req, Res, Attr> {
  fleetListRequest: Codec<Req>;
  fleetListResponse: Codec<Res>;
  attributes: Codec<Attr>;
}

const empty = new Uint8Array(0);

export function toWireSet<Req, Res, Attr>(
  input: SetSessionInput<Req, Res, Attr>,
  codecs: Codecs<Req, Res, Attr>,
): WireSetSessionRequest {
  return {
    session_key: input.sessionKey ?? '',
    fleet_list_request:
      input.fleetListRequest === undefined
        ? empty
        : encode(codecs.fleetListRequest, input.fleetListRequest, 'fleetListRequest'),
    fleet_list_response:
      input.fleetListResponse === undefined
        ? empty
        : encode(codecs.fleetListResponse, input.fleetListResponse, 'fleetListResponse'),
    attributes: encodeAttributes(codecs.attributes, input.attributes, 'attributes'),
    ttl_seconds: int64(input.ttlSeconds, 'ttlSeconds'),
    owner: input.owner ?? '',
  };
}

export function fromWireSetResult(wire: WireSetSessionResponse): SetSessionResult {
  return {
    sessionKey: wire.session_key,
    expiresAtUnixMs: wire.expires_at_unix_ms,
    version: wire.version,
  };
}

export function toWireUpdate<Req, Res, Attr>(
  input: UpdateSessionInput<Req, Res, Attr>,
  codecs: Codecs<Req, Res, Attr>,
): WireUpdateSessionRequest {
  const wire: WireUpdateSessionRequest = {
    session_key: input.sessionKey,
    set_attributes: encodeAttributes(codecs.attributes, input.setAttributes, 'setAttributes'),
    remove_attributes: [...(input.removeAttributes ?? [])],
    ttl_seconds: int64(input.ttlSeconds, 'ttlSeconds'),
  };
  if (input.fleetListRequest !== undefined) {
    wire.fleet_list_request = encode(
      codecs.fleetListRequest,
      input.fleetListRequest,
      'fleetListRequest',
    );
  }
  if (input.fleetListResponse !== undefined) {
    wire.fleet_list_response = encode(
      codecs.fleetListResponse,
      input.fleetListResponse,
      'fleetListResponse',
    );
  }
  if (input.expectedVersion !== undefined) {
    wire.expected_version = int64(input.expectedVersion, 'expectedVersion');
  }
  return wire;
}

export function toWireTouch(input: TouchSessionInput): WireTouchSessionRequest {
  return { session_key: input.sessionKey, ttl_seconds: int64(input.ttlSeconds, 'ttlSeconds') };
}

export function toWireConditionalKey(input: ConditionalKeyInput): WireConditionalKeyRequest {
  const wire: WireConditionalKeyRequest = { session_key: input.sessionKey };
  if (input.expectedVersion !== undefined) {
    wire.expected_version = int64(input.expectedVersion, 'expectedVersion');
  }
  return wire;
}

export function fromWireSession<Req, Res, Attr>(
  wire: WireSessionData,
  codecs: Codecs<Req, Res, Attr>,
): Session<Req, Res, Attr> {
  const session: Session<Req, Res, Attr> = {
    sessionKey: wire.session_key,
    attributes: decodeAttributes(codecs.attributes, wire.attributes),
    ttlSeconds: wire.ttl_seconds,
    expiresAtUnixMs: wire.expires_at_unix_ms,
    version: wire.version,
    createdAtUnixMs: wire.created_at_unix_ms,
  };
  decodePayloads(session, wire, codecs);
  return session;
}

/** Without `includeContent` the wire's empty content fields are left out entirely. */
export function fromWireOwnedSession<Req, Res, Attr>(
  wire: WireOwnedSession,
  codecs: Codecs<Req, Res, Attr>,
  includeContent: boolean,
): OwnedSession<Req, Res, Attr> {
  const session: OwnedSession<Req, Res, Attr> = {
    handle: wire.handle,
    createdAtUnixMs: wire.created_at_unix_ms,
    expiresAtUnixMs: wire.expires_at_unix_ms,
    version: wire.version,
    ttlSeconds: wire.ttl_seconds,
    sizeBytes: wire.size_bytes,
  };
  if (includeContent) {
    session.attributes = decodeAttributes(codecs.attributes, wire.attributes);
    decodePayloads(session, wire, codecs);
  }
  return session;
}

function decodeAttributes<Attr>(
  codec: Codec<Attr>,
  attributes: Record<string, Buffer>,
): Record<string, Attr> {
  return Object.fromEntries(
    Object.entries(attributes).map(([name, bytes]) => [
      name,
      decode(codec, bytes, `attributes.${name}`),
    ]),
  );
}

/** The wire has no presence for the payloads: an empty one is left out, never decoded. */
function decodePayloads<Req, Res, Attr>(
  into: { fleetListRequest?: Req; fleetListResponse?: Res },
  wire: { fleet_list_request: Buffer; fleet_list_response: Buffer },
  codecs: Codecs<Req, Res, Attr>,
): void {
  if (wire.fleet_list_request.length > 0) {
    into.fleetListRequest = decode(
      codecs.fleetListRequest,
      wire.fleet_list_request,
      'fleetListRequest',
    );
  }
  if (wire.fleet_list_response.length > 0) {
    into.fleetListResponse = decode(
      codecs.fleetListResponse,
      wire.fleet_list_response,
      'fleetListResponse',
    );
  }
}

function encodeAttributes<Attr>(
  codec: Codec<Attr>,
  attributes: Readonly<Record<string, Attr>> | undefined,
  field: string,
): Record<string, Uint8Array> {
  // fromEntries defines own properties, so a name like "__proto__" stays data.
  return Object.fromEntries(
    Object.entries(attributes ?? {}).map(([name, value]) => [
      name,
      encode(codec, value, `${field}.${name}`),
    ]),
  );
}

function encode<T>(codec: Codec<T>, value: T, field: string): Uint8Array {
  try {
    return codec.encode(value);
  } catch (error) {
    throw payloadError('encoded', field, error);
  }
}

function decode<T>(codec: Codec<T>, bytes: Uint8Array, field: string): T {
  try {
    return codec.decode(bytes);
  } catch (error) {
    throw payloadError('decoded', field, error);
  }
}

function payloadError(verb: string, field: string, cause: unknown): SessionError {
  const reason = cause instanceof Error ? cause.message : String(cause);
  return new SessionError('INVALID_PAYLOAD', `${field} could not be ${verb}: ${reason}`, {
    cause,
  });
}

// protobufjs would silently truncate a fraction or wrap an unsafe integer.
function int64(value: number | undefined, field: string): number {
  if (value === undefined) {
    return 0;
  }
  if (!Number.isSafeInteger(value)) {
    throw new SessionError('INVALID_ARGUMENT', `${field} must be an integer, got ${value}`);
  }
  return value;
}
