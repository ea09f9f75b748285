import { Status } from '../grpc-status.ts';
import type { HeaderFields } from '../http2/hpack.ts';

/** The header fields of gRPC replies (PROTOCOL-HTTP2.md, Responses). */

export const ACCEPT_ENCODING = 'identity,deflate,gzip';

export type Fields = Array<readonly [string, string]>;

/** Frozen lists are constants to the connection: their encoded blocks are reused. */
const constant = (fields: Fields): HeaderFields =>
  Object.freeze(fields.map((f) => Object.freeze(f)));

export const RESPONSE_FIELDS = constant([
  [':status', '200'],
  ['content-type', 'application/grpc'],
  ['grpc-accept-encoding', ACCEPT_ENCODING],
]);
export const OK_TRAILERS = constant([['grpc-status', '0']]);
export const METHOD_NOT_ALLOWED = constant([[':status', '405']]);
export const UNSUPPORTED_MEDIA_TYPE = constant([[':status', '415']]);

/** grpc-message is percent-encoded UTF-8: printable ASCII except '%' passes as it is. */
export function encodeGrpcMessage(message: string): string {
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message)) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

export function statusFields(code: number, details: string): Fields {
  return code === Status.OK
    ? [['grpc-status', '0']]
    : [
        ['grpc-status', String(code)],
        ['grpc-message', encodeGrpcMessage(details)],
      ];
}
