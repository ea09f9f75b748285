/**
 * grpc-timeout (PROTOCOL-HTTP2.md): at most 8 digits and a unit, H M S for
 * hours, minutes and seconds, m u n for milli-, micro- and nanoseconds.
 */
const TIMEOUT_UNIT_MS: Record<string, number> = {
  H: 3_600_000,
  M: 60_000,
  S: 1000,
  m: 1,
  u: 0.001,
  n: 0.000_001,
};

/** The timeout in milliseconds; undefined when absent, NaN when malformed. */
export function parseTimeout(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (!match) return Number.NaN;
  return Number(match[1]) * (TIMEOUT_UNIT_MS[match[2] as string] ?? Number.NaN);
}
