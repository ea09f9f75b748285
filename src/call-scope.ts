import type { IdempotencyClaim } from './idempotency.ts';

/**
 * What a store may know of the call it works for: when its caller stops
 * waiting, and whether it already has (the stream was reset, the connection
 * lost, or the deadline passed). A write must never apply after its caller
 * was told it failed, so the store fences writes on `deadlineMs` and starts
 * no work for a call that is `cancelled`. Transports implement it on the
 * call object they already have, so it costs no allocation per call.
 */
export interface CallScope {
  /** Unix ms after which the caller no longer waits; Infinity when it set no deadline. */
  readonly deadlineMs: number;
  /** True once the caller has gone away or has been given its outcome. */
  readonly cancelled: boolean;
  /**
   * Present when the caller sent an idempotency key with a write: the store
   * then records the write's outcome with it, or returns the one recorded.
   */
  readonly idempotency?: IdempotencyClaim;
}

/** The scope of a call that sent an idempotency key; reads `scope` live, as the transports' scopes are. */
export function claimedScope(scope: CallScope, idempotency: IdempotencyClaim): CallScope {
  return {
    get deadlineMs() {
      return scope.deadlineMs;
    },
    get cancelled() {
      return scope.cancelled;
    },
    idempotency,
  };
}

/** The call's deadline and cancellation, read live, without its claim: for a step that records nothing. */
export function unclaimedScope(scope: CallScope | undefined): CallScope {
  if (scope === undefined) return UNSCOPED;
  return {
    get deadlineMs() {
      return scope.deadlineMs;
    },
    get cancelled() {
      return scope.cancelled;
    },
  };
}

/** For work that serves no caller with a deadline (tests, the CLI's direct store use). */
export const UNSCOPED: CallScope = Object.freeze({
  deadlineMs: Number.POSITIVE_INFINITY,
  cancelled: false,
});
