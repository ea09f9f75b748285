/**
 * What one HTTP/2 peer may make the server hold or do, the way nghttp2 and
 * the HTTP/2 denial-of-service advisories (CVE-2019-9512..9518,
 * CVE-2023-44487, CVE-2024-27316, CVE-2025-8671) describe the limits. A peer
 * past a limit gets GOAWAY (ENHANCE_YOUR_CALM unless the RFC names another
 * code) and its connection is closed; the other connections go on.
 * docs/http2-limits.md says why each default is what it is.
 */
export interface Http2Limits {
  /** SETTINGS_MAX_CONCURRENT_STREAMS; a reset stream counts until its handler ends. */
  readonly maxConcurrentStreams: number;
  /**
   * Request bytes one connection may have sent us that no handler has taken
   * yet (its receive window): by default one largest request, rounded up to 64 KiB.
   */
  readonly connectionWindowBytes: number;
  /** The same, summed over every connection; past it, the connection holding most is closed. */
  readonly maxBufferedRequestBytes: number;
  /** Reply bytes owed to a peer beyond which we stop reading from it. */
  readonly maxUnsentBytes: number;
  /** A peer that stays over maxUnsentBytes this long is dropped. */
  readonly writeStallTimeoutMs: number;
  /** A connection with no open stream for this long gets GOAWAY. */
  readonly idleTimeoutMs: number;
  /** The preface and first SETTINGS must arrive within this. */
  readonly handshakeTimeoutMs: number;
  /** Connections open at once; more are refused at accept. */
  readonly maxConnections: number;
  /** Stream resets, sent by either side: a burst, then a steady rate per second. */
  readonly resetBurst: number;
  readonly resetsPerSecond: number;
  /**
   * A new connection from an address whose connections were closed for abuse
   * in the last 10 s is read only after a delay, 100 ms doubling per strike
   * up to this; 0 turns it off (penalty-box.ts).
   */
  readonly abusePenaltyMaxMs: number;
}

/**
 * Limits with no operator knob: protocol-level sizes where any value a real
 * client needs is far below the limit.
 */
export const FIXED_LIMITS = {
  /** Decoded header list (SETTINGS_MAX_HEADER_LIST_SIZE); a request needs a few hundred bytes. */
  maxHeaderListBytes: 64 * 1024,
  /** CONTINUATION frames in one header block, whatever their size (nghttp2's default). */
  maxContinuations: 8,
  /** Entries in one SETTINGS frame (nghttp2's default); six settings exist. */
  maxSettingsEntries: 32,
  /** SETTINGS frames: a burst, then a rate per second; a client sends one or a few. */
  settingsBurst: 100,
  settingsPerSecond: 10,
  /** Frames that carry nothing (empty DATA or header blocks, frames on closed streams, unknown types). */
  emptyFrameBurst: 1000,
  emptyFramesPerSecond: 100,
  /**
   * PINGs with nothing sent to the peer since its previous PING: a burst,
   * then a rate. A PING that follows our HEADERS or DATA is free, as grpc-go's
   * server counts them, so BDP pings (one per round trip of data) never count.
   */
  idlePingBurst: 100,
  idlePingsPerSecond: 10,
  /** Control frames (PING and SETTINGS acks, RST_STREAM) waiting for a peer that does not read. */
  maxQueuedControlFrames: 1000,
  /** Frames handled per read before other connections get their turn. */
  framesPerTurn: 128,
} as const;

export const DEFAULT_LIMITS: Http2Limits = Object.freeze({
  maxConcurrentStreams: 1000,
  connectionWindowBytes: 1_179_648,
  maxBufferedRequestBytes: 32 * 1024 * 1024,
  maxUnsentBytes: 1024 * 1024,
  writeStallTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
  handshakeTimeoutMs: 10_000,
  maxConnections: 4096,
  resetBurst: 1000,
  resetsPerSecond: 33,
  abusePenaltyMaxMs: 2000,
});

/** A token bucket: `take` is false once the burst is spent faster than the rate refills it. */
export class RateBudget {
  readonly #burst: number;
  readonly #perSecond: number;
  #tokens: number;
  #refilledAt = Date.now();

  constructor(burst: number, perSecond: number) {
    this.#burst = this.#tokens = burst;
    this.#perSecond = perSecond;
  }

  take(): boolean {
    if (this.#tokens === 0) {
      const now = Date.now();
      const refill = Math.floor(((now - this.#refilledAt) * this.#perSecond) / 1000);
      if (refill === 0) return false;
      this.#tokens = Math.min(this.#burst, refill);
      this.#refilledAt = now;
    }
    this.#tokens--;
    return true;
  }
}
