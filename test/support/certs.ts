import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A certificate and its key, as PEM bytes and as files. */
export interface Pair {
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly certFile: string;
  readonly keyFile: string;
}

export interface TestPki {
  /** The CA that signs the server and the trusted client. */
  readonly ca: Pair;
  /** For 127.0.0.1 and localhost, signed by `ca`. */
  readonly server: Pair;
  /** A client certificate signed by `ca`. */
  readonly client: Pair;
  /** A client certificate signed by another CA the server does not trust. */
  readonly stranger: Pair;
  dispose(): void;
}

export function requireOpenssl(): void {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error(
      'openssl is not installed: the TLS tests generate their certificates with it (apt-get install openssl).',
    );
  }
}

/**
 * Real certificates for the TLS tests, made with the machine's openssl in a
 * temporary directory: P-256 keys, valid for a day.
 */
export function makePki(): TestPki {
  requireOpenssl();
  const dir = mkdtempSync(join(tmpdir(), 'sessionmanager-pki-'));
  const openssl = (...args: string[]) => execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const pair = (name: string): Pair => ({
    cert: readFileSync(join(dir, `${name}.crt`)),
    key: readFileSync(join(dir, `${name}.key`)),
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
  });
  const newKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

  const authority = (name: string) => {
    openssl(
      'req',
      '-x509',
      ...newKey,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    );
    return pair(name);
  };
  const leaf = (name: string, ca: string, extensions: string) => {
    writeFileSync(join(dir, `${name}.ext`), extensions);
    openssl(
      'req',
      ...newKey,
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      `/CN=${name}`,
    );
    openssl(
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      `${ca}.crt`,
      '-CAkey',
      `${ca}.key`,
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      '-days',
      '1',
      '-extfile',
      `${name}.ext`,
    );
    return pair(name);
  };

  const ca = authority('test-ca');
  authority('other-ca');
  const server = leaf(
    'server',
    'test-ca',
    'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n',
  );
  const client = leaf('client', 'test-ca', 'extendedKeyUsage=clientAuth\n');
  const stranger = leaf('stranger', 'other-ca', 'extendedKeyUsage=clientAuth\n');
  return {
    ca,
    server,
    client,
    stranger,
    dispose: () => rmSync(dir, { recursive: true, force: true }),
  };
}
