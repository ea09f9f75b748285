import { fileURLToPath } from 'node:url';
import * as protoLoader from '@grpc/proto-loader';

export const PROTO_FILE = fileURLToPath(
  new URL('../../proto/sessionmanager/v1/sessionmanager.proto', import.meta.url),
);
export const SERVICE_NAME = 'sessionmanager.v1.SessionManagerService';

/**
 * int64 fields surface as numbers: they hold milliseconds, seconds and
 * versions, all far below 2^53. Absent `optional` fields stay undefined.
 */
export const packageDefinition = protoLoader.loadSync(PROTO_FILE, {
  keepCase: true,
  longs: Number,
  bytes: Buffer,
  defaults: true,
  oneofs: false,
});

/** Request shapes as proto-loader decodes them (snake_case, as on the wire). */
export interface SessionDataMessage {
  session_key: string;
  fleet_list_request: Buffer;
  fleet_list_response: Buffer;
  attributes: Record<string, Buffer>;
  ttl_seconds: number;
}

export interface GetSessionMessage {
  session_key: string;
  touch: boolean;
}

export interface UpdateSessionMessage {
  session_key: string;
  fleet_list_request?: Buffer;
  fleet_list_response?: Buffer;
  set_attributes: Record<string, Buffer>;
  remove_attributes: string[];
  expected_version?: number;
  ttl_seconds: number;
}

export interface TouchSessionMessage {
  session_key: string;
  ttl_seconds: number;
}

export interface SessionKeyMessage {
  session_key: string;
}
