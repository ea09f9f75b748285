import { DEFAULT_MAX_FRAME, H2Error, MAX_FRAME_SIZE_LIMIT, MAX_WINDOW, Setting } from './frames.ts';

/** The settings of a peer's SETTINGS frame that either role acts on; -1 where the frame left one out. */
export interface PeerSettings {
  headerTableSize: number;
  /** The smallest HEADER_TABLE_SIZE in the frame: an encoder must signal it too (RFC 7541 4.2). */
  smallestHeaderTableSize: number;
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
}

/** Applies a peer's HEADER_TABLE_SIZE to the encoder of our header blocks. */
export function applyHeaderTableSize(
  settings: PeerSettings,
  encoder: { setPeerTableSize(size: number): void },
): void {
  if (settings.headerTableSize < 0) return;
  encoder.setPeerTableSize(settings.smallestHeaderTableSize);
  encoder.setPeerTableSize(settings.headerTableSize);
}

/**
 * Reads a SETTINGS payload (RFC 9113 6.5), whose length the caller checked
 * is a multiple of 6. A later entry for the same setting wins. Returns the
 * H2Error code of a connection error for a value out of range, or the settings.
 */
export function readSettings(payload: Buffer): PeerSettings | number {
  const settings: PeerSettings = {
    headerTableSize: -1,
    smallestHeaderTableSize: -1,
    maxConcurrentStreams: -1,
    initialWindowSize: -1,
    maxFrameSize: -1,
    maxHeaderListSize: -1,
  };
  for (let at = 0; at < payload.length; at += 6) {
    const id = payload.readUInt16BE(at);
    const value = payload.readUInt32BE(at + 2);
    switch (id) {
      case Setting.HEADER_TABLE_SIZE:
        settings.headerTableSize = value;
        if (settings.smallestHeaderTableSize < 0 || value < settings.smallestHeaderTableSize) {
          settings.smallestHeaderTableSize = value;
        }
        break;
      case Setting.ENABLE_PUSH:
        if (value > 1) return H2Error.PROTOCOL_ERROR;
        break;
      case Setting.MAX_CONCURRENT_STREAMS:
        settings.maxConcurrentStreams = value;
        break;
      case Setting.INITIAL_WINDOW_SIZE:
        if (value > MAX_WINDOW) return H2Error.FLOW_CONTROL_ERROR;
        settings.initialWindowSize = value;
        break;
      case Setting.MAX_FRAME_SIZE:
        if (value < DEFAULT_MAX_FRAME || value > MAX_FRAME_SIZE_LIMIT) {
          return H2Error.PROTOCOL_ERROR;
        }
        settings.maxFrameSize = value;
        break;
      case Setting.MAX_HEADER_LIST_SIZE:
        settings.maxHeaderListSize = value;
        break;
      // Unknown settings are ignored (RFC 9113 6.5.2).
    }
  }
  return settings;
}
