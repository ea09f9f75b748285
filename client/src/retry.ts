import { setTimeout as sleep } from 'node:timers/promises';
import { abortedError, SessionError } from './errors.ts';

export interface RetryPolicy {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  /** Upper bound of the first backoff; it doubles for every further retry. */
  initialBackoffMs: number;
  /** Cap on any one backoff. */
  maxBackoffMs: number;
}

export interface RetryContext {
  /** Undefined when the call must not be repeated. */
  policy: RetryPolicy | undefined;
  /** Absolute time (Date.now() scale) by which every attempt must be over. */
  deadline: number;
  signal: AbortSignal | undefined;
}

/**
 * Full jitter (uniform between 0 and the exponential ceiling) spreads the
 * retries of many clients that failed together, e.g. at a server restart.
 */
export function backoffMs(retry: number, policy: RetryPolicy, random = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** (retry - 1));
  return random() * ceiling;
}

/**
 * Runs `attempt` until it succeeds, fails with something other than
 * UNAVAILABLE, runs out of attempts, or the next backoff would end past the
 * deadline. The last error is thrown as it is.
 */
export async function withRetries<T>(attempt: () => Promise<T>, context: RetryContext): Promise<T> {
  const { policy, deadline, signal } = context;
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt();
    } catch (error) {
      if (
        policy === undefined ||
        attempts >= policy.maxAttempts ||
        !(error instanceof SessionError && error.code === 'UNAVAILABLE')
      ) {
        throw error;
      }
      const delay = backoffMs(attempts, policy);
      if (Date.now() + delay >= deadline) {
        throw error;
      }
      await pause(delay, signal);
    }
  }
}

async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal === undefined ? {} : { signal });
  } catch (error) {
    if (signal?.aborted) {
      throw abortedError(signal);
    }
    throw error;
  }
}
