import { Flag, FRAME_HEADER_BYTES } from './frames.ts';

/**
 * Handles one frame whose 9-byte header starts at `at` in `input`; the
 * payload follows it. Returns false to stop reading (the connection ended).
 */
export type FrameHandler = (input: Buffer, at: number) => boolean;

/** `read` stopped because a handler returned false. */
export const STOPPED = -1;
/** `read` stopped at a frame whose declared length is over the limit (FRAME_SIZE_ERROR). */
export const OVERSIZE = -2;

/**
 * Frames out of the chunks a socket delivers, for either role. Frames are
 * handled in place in the chunk; a frame cut by a chunk boundary is assembled
 * in a buffer of its own size (allocated once its header says how large, and
 * only up to the limit), so bytes arriving one at a time cost no more than
 * bytes arriving together, and a peer cannot make us hold more than one
 * frame of the size we accept.
 */
export class FrameReader {
  readonly #maxFrameBytes: number;
  /** A frame begun in an earlier chunk: its bytes so far, in a buffer of its final size once the header is known. */
  #partial: Buffer | undefined;
  #partialFill = 0;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Forgets a frame in progress (the connection is over). */
  reset(): void {
    this.#partial = undefined;
  }

  /**
   * Hands every whole frame of `chunk` from `start` to `onFrame`, at most
   * `maxFrames` of them (a frame completed from earlier chunks counts).
   * Returns where the unread rest of the chunk begins (chunk.length when all
   * of it was read or kept as a partial frame), STOPPED or OVERSIZE.
   */
  read(chunk: Buffer, start: number, maxFrames: number, onFrame: FrameHandler): number {
    let at = start;
    let frames = 0;
    if (this.#partial !== undefined) {
      at = this.#fillPartial(chunk, at);
      if (at < 0) return OVERSIZE;
      const partial = this.#partial;
      if (this.#partialFill < partial.length) return chunk.length;
      this.#partial = undefined;
      if (!onFrame(partial, 0)) return STOPPED;
      frames++;
    }
    while (at < chunk.length) {
      if (frames === maxFrames) return at;
      const left = chunk.length - at;
      if (left < FRAME_HEADER_BYTES) {
        this.#partial = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
        this.#partialFill = chunk.copy(this.#partial, 0, at);
        return chunk.length;
      }
      const length = chunk.readUIntBE(at, 3);
      if (length > this.#maxFrameBytes) return OVERSIZE;
      const end = at + FRAME_HEADER_BYTES + length;
      if (end > chunk.length) {
        this.#partial = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
        this.#partialFill = chunk.copy(this.#partial, 0, at);
        return chunk.length;
      }
      if (!onFrame(chunk, at)) return STOPPED;
      at = end;
      frames++;
    }
    return chunk.length;
  }

  /** Copies bytes of `chunk` into the frame being assembled; returns where the chunk's unused bytes begin, or -1 when it is oversize. */
  #fillPartial(chunk: Buffer, at: number): number {
    let partial = this.#partial as Buffer;
    if (this.#partialFill < FRAME_HEADER_BYTES) {
      const copied = chunk.copy(
        partial,
        this.#partialFill,
        at,
        at + FRAME_HEADER_BYTES - this.#partialFill,
      );
      this.#partialFill += copied;
      at += copied;
      if (this.#partialFill < FRAME_HEADER_BYTES) return at;
      const length = partial.readUIntBE(0, 3);
      if (length > this.#maxFrameBytes) {
        this.#partial = undefined;
        return -1;
      }
      const whole = Buffer.allocUnsafe(FRAME_HEADER_BYTES + length);
      partial.copy(whole, 0, 0, FRAME_HEADER_BYTES);
      this.#partial = partial = whole;
    }
    const copied = chunk.copy(
      partial,
      this.#partialFill,
      at,
      at + partial.length - this.#partialFill,
    );
    this.#partialFill += copied;
    return at + copied;
  }
}

/** The payload of a frame that may be PADDED, without the padding; undefined when malformed. */
export function unpad(flags: number, payload: Buffer): Buffer | undefined {
  if ((flags & Flag.PADDED) === 0) return payload;
  if (payload.length === 0) return undefined;
  const padding = payload[0] as number;
  if (padding >= payload.length) return undefined;
  return payload.subarray(1, payload.length - padding);
}
