import { randomUUID } from 'node:crypto';

const ACCEPTABLE = /^[\x21-\x7e]{1,128}$/;

/** The caller's x-request-id when it is a sane token (printable ASCII, 1-128 characters). */
export function givenRequestId(incoming: unknown): string | undefined {
  return typeof incoming === 'string' && ACCEPTABLE.test(incoming) ? incoming : undefined;
}

/**
 * The id that ties together the log lines of one call: the caller's
 * x-request-id when it is a sane token, otherwise a new UUID.
 */
export function requestId(incoming: unknown): string {
  return givenRequestId(incoming) ?? randomUUID();
}
