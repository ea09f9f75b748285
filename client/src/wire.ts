import { fileURLToPath } from 'node:url';
import { type AnyDefinition, loadSync, type ServiceDefinition } from '@grpc/proto-loader';

// The snake_case messages as proto-loader reads and writes them. This module is
// the only place that trusts proto-loader's untyped objects.

export interface WireSessionData {
  session_key: string;
  fleet_list_request: Buffer;
  fleet_list_response: Buffer;
  attributes: Record<string, Buffer>;
  ttl_seconds: number;
  expires_at_unix_ms: number;
  version: number;
  created_at_unix_ms: number;
}

export interface WireSetSessionRequest {
  session_key: string;
  fleet_list_request: Uint8Array;
  fleet_list_response: Uint8Array;
  attributes: Record<string, Uint8Array>;
  ttl_seconds: number;
}

export interface WireSetSessionResponse {
  session_key: string;
  expires_at_unix_ms: number;
  version: number;
}

export interface WireGetSessionRequest {
  session_key: string;
  touch: boolean;
}

/** `optional` fields are sent only when the property is present. */
export interface WireUpdateSessionRequest {
  session_key: string;
  fleet_list_request?: Uint8Array;
  fleet_list_response?: Uint8Array;
  set_attributes: Record<string, Uint8Array>;
  remove_attributes: string[];
  expected_version?: number;
  ttl_seconds: number;
}

export interface WireTouchSessionRequest {
  session_key: string;
  ttl_seconds: number;
}

export interface WireTouchSessionResponse {
  expires_at_unix_ms: number;
}

export interface WireKeyRequest {
  session_key: string;
}

export interface WireDeleteSessionResponse {
  deleted: boolean;
}

export interface WireRotateSessionKeyResponse {
  session_key: string;
  expires_at_unix_ms: number;
  version: number;
}

export interface WireMethod<Request, Response> {
  path: string;
  requestSerialize(value: Request): Buffer;
  responseDeserialize(bytes: Buffer): Response;
}

export interface WireMethods {
  SetSession: WireMethod<WireSetSessionRequest, WireSetSessionResponse>;
  GetSession: WireMethod<WireGetSessionRequest, WireSessionData>;
  UpdateSession: WireMethod<WireUpdateSessionRequest, WireSessionData>;
  TouchSession: WireMethod<WireTouchSessionRequest, WireTouchSessionResponse>;
  ConsumeSession: WireMethod<WireKeyRequest, WireSessionData>;
  DeleteSession: WireMethod<WireKeyRequest, WireDeleteSessionResponse>;
  RotateSessionKey: WireMethod<WireKeyRequest, WireRotateSessionKeyResponse>;
}

/** The package's own copy of the contract, next to `src/` and `dist/` alike. */
export const protoPath = fileURLToPath(
  new URL('../proto/sessionmanager/v1/sessionmanager.proto', import.meta.url),
);

const serviceName = 'sessionmanager.v1.SessionManagerService';

let loaded: WireMethods | undefined;

/** Parses the proto once, on first use, so importing the package stays cheap. */
export function wireMethods(): WireMethods {
  loaded ??= loadMethods();
  return loaded;
}

function loadMethods(): WireMethods {
  const definition = loadSync(protoPath, {
    keepCase: true,
    // Timestamps in ms and versions stay far below 2^53.
    longs: Number,
    // Responses carry every field, so an empty bytes field reads as an empty Buffer.
    defaults: true,
  });
  const service = definition[serviceName];
  if (!isService(service)) {
    throw new Error(`${protoPath} does not define the service ${serviceName}`);
  }
  const method = <Request, Response>(name: keyof WireMethods): WireMethod<Request, Response> => {
    const found = service[name];
    if (found === undefined) {
      throw new Error(`${protoPath} does not define ${serviceName}/${name}`);
    }
    const { path, requestSerialize, responseDeserialize } = found;
    return {
      path,
      requestSerialize: (value) => requestSerialize(value as object),
      responseDeserialize: (bytes) => responseDeserialize(bytes) as Response,
    };
  };
  return {
    SetSession: method('SetSession'),
    GetSession: method('GetSession'),
    UpdateSession: method('UpdateSession'),
    TouchSession: method('TouchSession'),
    ConsumeSession: method('ConsumeSession'),
    DeleteSession: method('DeleteSession'),
    RotateSessionKey: method('RotateSessionKey'),
  };
}

function isService(definition: AnyDefinition | undefined): definition is ServiceDefinition {
  return definition !== undefined && !('format' in definition);
}
