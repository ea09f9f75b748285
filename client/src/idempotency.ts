import { randomUUID } from 'node:crypto';
import type { CallOptions } from './types.ts';

/** The header (gRPC metadata) the server reads a write's idempotency key from. */
export const IDEMPOTENCY_HEADER = 'idempotency-key';

const KEY = /^[\x21-\x7e]{1,255}$/;

/**
 * The idempotency key of one write: the caller's, or with `generate` a fresh
 * random UUID; undefined without either. Checked here so that a bad key
 * fails before any attempt, naming the option.
 */
export function idempotencyKey(options: CallOptions, generate: boolean): string | undefined {
  const given = options.idempotencyKey;
  if (given === undefined) return generate ? randomUUID() : undefined;
  if (typeof given !== 'string' || !KEY.test(given)) {
    throw new TypeError(
      'sessionmanager client: idempotencyKey must be 1-255 visible ASCII characters',
    );
  }
  return given;
}
