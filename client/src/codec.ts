/** Turns a typed payload into the opaque bytes the service stores, and back. */
export interface Codec<T> {
  encode(value: T): Uint8Array;
  decode(bytes: Uint8Array): T;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * UTF-8 JSON, the default for every payload. `decode` does not validate the
 * shape: it returns whatever was stored, typed as the caller's T. Plug in a
 * validating codec when the payload crosses a trust boundary.
 */
export const jsonCodec = {
  encode(value: unknown): Uint8Array {
    const text = JSON.stringify(value);
    // JSON.stringify returns undefined for undefined, functions and symbols.
    if (text === undefined) {
      throw new TypeError(`a ${typeof value} cannot be encoded as JSON`);
    }
    return Buffer.from(text, 'utf8');
  },
  decode<T>(bytes: Uint8Array): T {
    return JSON.parse(utf8.decode(bytes)) as T;
  },
};

/** Bytes pass through untouched; decoded values are Buffers. */
export const rawCodec = {
  encode(value: Uint8Array): Uint8Array {
    return value;
  },
  decode(bytes: Uint8Array): Buffer {
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  },
};
