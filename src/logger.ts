import { pino } from 'pino';

export type Logger = pino.Logger;

/** JSON lines on stdout. Nothing the service logs carries a session key or a token. */
export function createLogger(level: pino.LevelWithSilent): Logger {
  return pino({ level, base: { service: 'sessionmanager' } });
}
