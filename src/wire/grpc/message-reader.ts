/**
 * gRPC's length-prefixed messages (PROTOCOL-HTTP2.md, Length-Prefixed-Message:
 * a compressed flag, a 4-byte length, the message), read from body chunks as
 * they come. A message that arrives whole in one chunk is a view of it, with
 * no copy; one cut across chunks is copied into a buffer that grows with what
 * has arrived (never to the declared length up front, which a peer could set
 * to the limit and never send), so a message trickled in byte by byte costs
 * linear time and no more memory than its bytes.
 */

const PREFIX_BYTES = 5;
const EMPTY = Buffer.alloc(0);

/** Bytes that break the framing: an unknown flag, or a declared length over the limit. */
export type FramingProblem =
  | { readonly kind: 'flag'; readonly flag: number }
  | { readonly kind: 'size'; readonly length: number };

export class MessageReader {
  readonly #maxLength: number;
  #prefix: Buffer | undefined;
  #prefixFill = 0;
  /** The declared length of the message being read, or -1 while its prefix is incomplete. */
  #length = -1;
  #compressed = false;
  #body: Buffer | undefined;
  #bodyFill = 0;

  constructor(maxLength: number) {
    this.#maxLength = maxLength;
  }

  /**
   * Reads a chunk; `deliver` gets each complete message and returns false to
   * stop reading. Returns the problem when the bytes break the framing.
   */
  read(
    chunk: Buffer,
    deliver: (message: Buffer, compressed: boolean) => boolean,
  ): FramingProblem | undefined {
    let at = 0;
    while (at < chunk.length) {
      if (this.#length < 0) {
        if (this.#prefixFill === 0 && chunk.length - at >= PREFIX_BYTES) {
          const problem = this.#start(chunk, at);
          if (problem) return problem;
          at += PREFIX_BYTES;
        } else {
          this.#prefix ??= Buffer.allocUnsafe(PREFIX_BYTES);
          const copied = chunk.copy(
            this.#prefix,
            this.#prefixFill,
            at,
            at + PREFIX_BYTES - this.#prefixFill,
          );
          this.#prefixFill += copied;
          at += copied;
          if (this.#prefixFill < PREFIX_BYTES) return undefined;
          this.#prefixFill = 0;
          const problem = this.#start(this.#prefix, 0);
          if (problem) return problem;
        }
      }
      const length = this.#length;
      const available = chunk.length - at;
      let message: Buffer;
      if (this.#bodyFill === 0 && available >= length) {
        message = length === 0 ? EMPTY : chunk.subarray(at, at + length);
        at += length;
      } else {
        const take = Math.min(length - this.#bodyFill, available);
        this.#grow(this.#bodyFill + take);
        chunk.copy(this.#body as Buffer, this.#bodyFill, at, at + take);
        this.#bodyFill += take;
        at += take;
        if (this.#bodyFill < length) return undefined;
        message = (this.#body as Buffer).subarray(0, length);
        this.#body = undefined;
        this.#bodyFill = 0;
      }
      this.#length = -1;
      if (!deliver(message, this.#compressed)) return undefined;
    }
    return undefined;
  }

  #start(prefix: Buffer, at: number): FramingProblem | undefined {
    const flag = prefix[at] as number;
    const length = prefix.readUInt32BE(at + 1);
    if (flag !== 0 && flag !== 1) return { kind: 'flag', flag };
    if (length > this.#maxLength) return { kind: 'size', length };
    this.#length = length;
    this.#compressed = flag === 1;
    return undefined;
  }

  /** Room for `needed` bytes of the message: at least double what is there, at most its length. */
  #grow(needed: number): void {
    const body = this.#body;
    if (body !== undefined && body.length >= needed) return;
    const size = Math.min(this.#length, Math.max(needed, 2 * (body?.length ?? 0), 256));
    const grown = Buffer.allocUnsafe(size);
    if (body !== undefined) body.copy(grown, 0, 0, this.#bodyFill);
    this.#body = grown;
  }
}
