import { readFileSync } from 'node:fs';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * How the CLI shows a stored payload: the JSON value itself when the bytes
 * are UTF-8 JSON, the text when they are other UTF-8 text, and
 * `{ "base64": ... }` otherwise, so binary payloads survive a round trip.
 */
export function renderPayload(bytes: Uint8Array | undefined): unknown {
  if (bytes === undefined || bytes.length === 0) return null;
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    return { base64: Buffer.from(bytes).toString('base64') };
  }
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/**
 * How the CLI reads a payload argument: `@path` reads a file, `base64:...`
 * decodes base64, anything else is taken as UTF-8 text (JSON included).
 */
export function parsePayload(argument: string): Buffer {
  if (argument.startsWith('@')) return readFileSync(argument.slice(1));
  if (argument.startsWith('base64:'))
    return Buffer.from(argument.slice('base64:'.length), 'base64');
  return Buffer.from(argument, 'utf8');
}

/** `name=value` pairs (value as in parsePayload) into an attribute record. */
export function parseAttributes(pairs: readonly string[]): Record<string, Buffer> {
  const attributes: Record<string, Buffer> = {};
  for (const pair of pairs) {
    const equals = pair.indexOf('=');
    if (equals < 1) throw new UsageError(`--attr expects name=value, got "${pair}"`);
    attributes[pair.slice(0, equals)] = parsePayload(pair.slice(equals + 1));
  }
  return attributes;
}

export class UsageError extends Error {
  override readonly name = 'UsageError';
}
