import { createHash } from 'node:crypto';
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: pino.LevelWithSilent): Logger {
  return pino({ level, base: { service: 'sessionmanager' } });
}

/**
 * How a session key may appear in logs: a short hash prefix, enough to
 * correlate the lines of one session and useless for reaching it.
 */
export function keyRef(sessionKey: string): string {
  return createHash('sha256').update(sessionKey).digest('hex').slice(0, 12);
}
