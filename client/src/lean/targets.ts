import { isIP } from 'node:net';

/** Where one group of instances is: fixed addresses, or a DNS name resolved again and again. */
export type TargetGroup =
  | { readonly kind: 'static'; readonly addresses: readonly Address[]; readonly authority: string }
  | {
      readonly kind: 'dns';
      readonly host: string;
      readonly port: number;
      readonly authority: string;
    };

export interface Address {
  /** An IP literal (no brackets). */
  readonly ip: string;
  readonly port: number;
}

/**
 * Reads the gRPC target strings the options produce (and `address` passes
 * through): `host:port`, `dns:///host:port`, `dns:host:port`,
 * `ipv4:a:p,b:p`, `ipv6:[a]:p,[b]:p`. Other schemes (unix:, xds:) need
 * grpc-js's resolvers: the error says so.
 */
export function targetGroup(target: string, defaultPort: number): TargetGroup {
  const list = /^(ipv4|ipv6):(.+)$/.exec(target);
  if (list !== null) {
    const addresses = (list[2] as string).split(',').map((entry) => {
      const address = hostPort(entry, defaultPort, target);
      if (isIP(address.host) === 0) throw badTarget(target, `"${entry}" is not an IP address`);
      return { ip: address.host, port: address.port };
    });
    return { kind: 'static', addresses, authority: list[2]?.split(',')[0] ?? '' };
  }
  const dns = /^dns:(?:\/\/[^/]*\/)?(.+)$/.exec(target);
  const rest = dns === null ? target : (dns[1] as string);
  if (dns === null && /^[a-z][a-z0-9+.-]*:(?!\d+$)/i.test(target) && !target.startsWith('[')) {
    throw badTarget(target, "this scheme needs transport: 'grpc-js'");
  }
  const { host, port } = hostPort(rest, defaultPort, target);
  const authority = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  if (isIP(host) !== 0) return { kind: 'static', addresses: [{ ip: host, port }], authority };
  return { kind: 'dns', host, port, authority };
}

function hostPort(
  text: string,
  defaultPort: number,
  target: string,
): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d+))?$/.exec(text);
  if (match === null) throw badTarget(target, 'not host:port');
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (!(port > 0 && port < 65536)) throw badTarget(target, 'the port must be 1-65535');
  return { host: (match[1] ?? match[2]) as string, port };
}

function badTarget(target: string, why: string): TypeError {
  return new TypeError(`sessionmanager client: cannot connect to "${target}": ${why}`);
}
