import type { SocketBatch } from '../socket-batch.ts';
import { Flag, FRAME_HEADER_BYTES, FrameType } from './frames.ts';

/**
 * Frames into a connection's SocketBatch, for either role: each frame's
 * header is written into the batch's arena and its payload appended, so every
 * frame of one turn of the event loop leaves in one socket write.
 */
export class FrameWriter {
  readonly #output: SocketBatch;

  constructor(output: SocketBatch) {
    this.#output = output;
  }

  frame(type: number, flags: number, streamId: number, payload: Buffer | undefined): void {
    const length = payload ? payload.length : 0;
    const output = this.#output;
    const at = output.claim(FRAME_HEADER_BYTES);
    const arena = output.arena;
    arena[at] = length >>> 16;
    arena[at + 1] = (length >>> 8) & 0xff;
    arena[at + 2] = length & 0xff;
    arena[at + 3] = type;
    arena[at + 4] = flags;
    arena.writeUInt32BE(streamId, at + 5);
    if (payload) output.append(payload);
  }

  /** A header block: one HEADERS frame up to `maxFrame`, then CONTINUATION frames. */
  headers(streamId: number, block: Buffer, endStream: boolean, maxFrame: number): void {
    const flags = endStream ? Flag.END_STREAM : 0;
    if (block.length <= maxFrame) {
      this.frame(FrameType.HEADERS, flags | Flag.END_HEADERS, streamId, block);
      return;
    }
    this.frame(FrameType.HEADERS, flags, streamId, block.subarray(0, maxFrame));
    for (let at = maxFrame; at < block.length; at += maxFrame) {
      const last = at + maxFrame >= block.length;
      this.frame(
        FrameType.CONTINUATION,
        last ? Flag.END_HEADERS : 0,
        streamId,
        block.subarray(at, at + maxFrame),
      );
    }
  }

  settings(entries: ReadonlyArray<readonly [number, number]>): void {
    const payload = Buffer.allocUnsafe(entries.length * 6);
    entries.forEach(([id, value], index) => {
      payload.writeUInt16BE(id, index * 6);
      payload.writeUInt32BE(value, index * 6 + 2);
    });
    this.frame(FrameType.SETTINGS, 0, 0, payload);
  }

  goaway(lastStreamId: number, code: number): void {
    const payload = Buffer.allocUnsafe(8);
    payload.writeUInt32BE(lastStreamId, 0);
    payload.writeUInt32BE(code, 4);
    this.frame(FrameType.GOAWAY, 0, 0, payload);
  }

  windowUpdate(streamId: number, increment: number): void {
    this.frame(FrameType.WINDOW_UPDATE, 0, streamId, uint32(increment));
  }

  /** Flush the batch now rather than at the end of the turn. */
  flush(): void {
    this.#output.flush();
  }
}

/** A 4-byte big-endian payload: RST_STREAM's error code, WINDOW_UPDATE's increment. */
export function uint32(value: number): Buffer {
  const payload = Buffer.allocUnsafe(4);
  payload.writeUInt32BE(value, 0);
  return payload;
}
