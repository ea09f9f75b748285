import { lookup } from 'node:dns';
import { connect as netConnect, type Socket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import {
  ClientConnection,
  type ClientConnectionOptions,
} from '../../../src/wire/http2/client-connection.ts';
import type { Address, TargetGroup } from './targets.ts';

/** TLS material for the lean transport; undefined for plaintext (h2c). */
export interface TlsMaterial {
  readonly ca: Buffer | undefined;
  readonly cert: Buffer | undefined;
  readonly key: Buffer | undefined;
}

export interface PoolOptions {
  readonly tls: TlsMaterial | undefined;
  readonly connection: Omit<ClientConnectionOptions, 'onClose' | 'onGoaway'>;
  /** Reconnect backoff: the first wait, doubled per failure up to the cap (with full jitter). */
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** DNS names are resolved again this often, and after a connection fails (at most once a second). */
  readonly dnsRefreshMs: number;
  /** A TCP connect plus TLS handshake that takes longer fails. */
  readonly connectTimeoutMs: number;
}

const MIN_RESOLVE_INTERVAL_MS = 1000;

/** Why the pool has no connection to offer: the last connection or resolution error. */
export class NoConnection extends Error {
  override readonly name = 'NoConnection';
}

/**
 * One instance's address and the connection to it, if any. It connects when
 * asked (a call picked it, or the pool started), goes back to idle when its
 * connection closes or the server sends GOAWAY (the next pick reconnects),
 * and waits a backoff after a failed attempt.
 */
export class Subchannel {
  state: 'idle' | 'connecting' | 'ready' | 'backoff' | 'closed' = 'idle';
  connection: ClientConnection | undefined;
  lastError = '';
  #failures = 0;
  #retryAt = 0;

  constructor(
    readonly address: Address,
    /** What :authority and TLS SNI name: the DNS name and port, or the IP literal and port. */
    readonly authority: string,
    readonly serverName: string | undefined,
    readonly pool: ConnectionPool,
  ) {}

  get key(): string {
    return `${this.address.ip}|${this.address.port}`;
  }

  /** Ready, or able to start connecting now. */
  usable(now: number): boolean {
    if (this.state === 'backoff' && now >= this.#retryAt) this.state = 'idle';
    return this.state !== 'closed';
  }

  connect(): void {
    if (this.state !== 'idle') return;
    this.state = 'connecting';
    const options = this.pool.options;
    const socket = dial(this.address, this.serverName, options.tls);
    const timer = setTimeout(
      () => socket.destroy(new Error(`no connection within ${options.connectTimeoutMs} ms`)),
      options.connectTimeoutMs,
    ).unref();
    const failed = (error: Error) => {
      clearTimeout(timer);
      socket.destroy();
      this.#failed(error.message);
    };
    socket.once('error', failed);
    socket.once(options.tls === undefined ? 'connect' : 'secureConnect', () => {
      clearTimeout(timer);
      socket.removeListener('error', failed);
      if (options.tls !== undefined && (socket as TLSSocket).alpnProtocol !== 'h2') {
        socket.destroy();
        this.#failed('the server did not agree to HTTP/2 (ALPN h2) over TLS');
        return;
      }
      if (this.state === 'closed') {
        socket.destroy();
        return;
      }
      this.connection = new ClientConnection(socket, {
        ...options.connection,
        onClose: (connection) => this.#lost(connection),
        onGoaway: (connection) => this.#lost(connection),
      });
      this.state = 'ready';
      this.#failures = 0;
      this.pool.changed();
    });
  }

  /** Graceful: the connection finishes its streams, then ends. */
  close(): void {
    this.state = 'closed';
    this.connection?.close();
    this.connection = undefined;
  }

  #failed(reason: string): void {
    if (this.state === 'closed') return;
    this.lastError = reason;
    this.#failures++;
    const ceiling = Math.min(
      this.pool.options.maxBackoffMs,
      this.pool.options.initialBackoffMs * 2 ** (this.#failures - 1),
    );
    this.#retryAt = Date.now() + Math.random() * ceiling;
    this.state = 'backoff';
    this.pool.failed(this);
  }

  /** The connection closed or is draining (GOAWAY): the next pick opens a new one. */
  #lost(connection: ClientConnection): void {
    if (this.connection !== connection) return;
    this.connection = undefined;
    if (this.state === 'closed') return;
    this.state = 'idle';
    this.pool.changed();
  }
}

function dial(
  address: Address,
  serverName: string | undefined,
  tls: TlsMaterial | undefined,
): Socket {
  if (tls === undefined) return netConnect({ host: address.ip, port: address.port });
  return tlsConnect({
    host: address.ip,
    port: address.port,
    ...(serverName !== undefined && { servername: serverName }),
    ALPNProtocols: ['h2'],
    ...(tls.ca !== undefined && { ca: tls.ca }),
    ...(tls.cert !== undefined && { cert: tls.cert }),
    ...(tls.key !== undefined && { key: tls.key }),
  });
}

interface Waiter {
  resolve(subchannel: Subchannel): void;
  reject(error: NoConnection): void;
}

/**
 * The instances of every target group, balanced round robin: each pick
 * takes the next subchannel with a ready connection, so one name resolving
 * to several pods spreads calls over all of them. DNS names are resolved
 * again on a timer and after connection failures; instances that appear get
 * a subchannel, and those that disappear are drained.
 */
export class ConnectionPool {
  readonly options: PoolOptions;
  readonly #groups: readonly TargetGroup[];
  /** Subchannels of every group, in one list for the round robin. */
  #subchannels: Subchannel[] = [];
  readonly #byGroup = new Map<TargetGroup, Subchannel[]>();
  #next = 0;
  #resolving = 0;
  readonly #resolvedAt = new Map<TargetGroup, number>();
  #waiters: Waiter[] = [];
  #lastError = '';
  #refreshTimer: NodeJS.Timeout | undefined;
  #started = false;
  #closed = false;

  constructor(groups: readonly TargetGroup[], options: PoolOptions) {
    this.#groups = groups;
    this.options = options;
  }

  /** A subchannel with a ready connection, next in turn; undefined when none is ready yet. */
  pick(): Subchannel | undefined {
    if (!this.#started) this.#start();
    const subchannels = this.#subchannels;
    const count = subchannels.length;
    const now = Date.now();
    for (let step = 0; step < count; step++) {
      const index = (this.#next + step) % count;
      const subchannel = subchannels[index] as Subchannel;
      if (subchannel.state === 'ready' && subchannel.connection?.available) {
        this.#next = (index + 1) % count;
        return subchannel;
      }
      if (subchannel.usable(now)) subchannel.connect();
    }
    return undefined;
  }

  /**
   * Waits for a ready subchannel while one is connecting or a name is being
   * resolved; rejects with NoConnection at once when nothing is under way
   * (every instance failed and waits its backoff), so a retry policy decides.
   */
  waitForReady(): Promise<Subchannel> {
    const picked = this.pick();
    if (picked !== undefined) return Promise.resolve(picked);
    if (!this.#underway()) return Promise.reject(this.#noConnection());
    return new Promise((resolve, reject) => this.#waiters.push({ resolve, reject }));
  }

  /** Drops a waiter whose call gave up (deadline, abort). */
  forget(resolve: (subchannel: Subchannel) => void): void {
    this.#waiters = this.#waiters.filter((waiter) => waiter.resolve !== resolve);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#refreshTimer);
    for (const subchannel of this.#subchannels) subchannel.close();
    this.#subchannels = [];
    this.#wakeWaiters();
  }

  /** A subchannel became ready or lost its connection: waiting calls pick again (and reconnect). */
  changed(): void {
    this.#wakeWaiters();
  }

  /** A connection attempt failed: resolve the name again, and tell waiters if nothing else is under way. */
  failed(subchannel: Subchannel): void {
    this.#lastError = `${subchannel.authority} (${subchannel.address.ip}): ${subchannel.lastError}`;
    for (const [group, members] of this.#byGroup) {
      if (group.kind === 'dns' && members.includes(subchannel)) this.#resolve(group, false);
    }
    this.#wakeWaiters();
  }

  #start(): void {
    this.#started = true;
    for (const group of this.#groups) {
      if (group.kind === 'static') {
        this.#setAddresses(group, group.addresses);
      } else this.#resolve(group, true);
    }
    if (this.#groups.some((group) => group.kind === 'dns')) {
      this.#refreshTimer = setInterval(() => {
        for (const group of this.#groups) if (group.kind === 'dns') this.#resolve(group, true);
      }, this.options.dnsRefreshMs).unref();
    }
  }

  #resolve(group: TargetGroup & { kind: 'dns' }, force: boolean): void {
    const now = Date.now();
    if (!force && now - (this.#resolvedAt.get(group) ?? 0) < MIN_RESOLVE_INTERVAL_MS) return;
    this.#resolvedAt.set(group, now);
    this.#resolving++;
    lookup(group.host, { all: true }, (error, found) => {
      this.#resolving--;
      if (this.#closed) return;
      if (error || found.length === 0) {
        this.#lastError = `${group.authority}: the name did not resolve (${error?.code ?? 'no address'})`;
        // A name that stops resolving keeps the instances it had.
        this.#wakeWaiters();
        return;
      }
      this.#setAddresses(
        group,
        found.map((entry) => ({ ip: entry.address, port: group.port })),
      );
    });
  }

  #setAddresses(group: TargetGroup, addresses: readonly Address[]): void {
    const before = this.#byGroup.get(group) ?? [];
    const wanted = new Set(addresses.map((address) => `${address.ip}|${address.port}`));
    const kept = before.filter((subchannel) => wanted.has(subchannel.key));
    for (const subchannel of before) if (!wanted.has(subchannel.key)) subchannel.close();
    const known = new Set(kept.map((subchannel) => subchannel.key));
    const serverName = group.kind === 'dns' ? group.host : undefined;
    for (const address of addresses) {
      const key = `${address.ip}|${address.port}`;
      if (known.has(key)) continue;
      known.add(key);
      const authority =
        group.kind === 'dns'
          ? group.authority
          : address.ip.includes(':')
            ? `[${address.ip}]:${address.port}`
            : `${address.ip}:${address.port}`;
      const subchannel = new Subchannel(address, authority, serverName, this);
      kept.push(subchannel);
    }
    this.#byGroup.set(group, kept);
    this.#subchannels = [...this.#byGroup.values()].flat();
    // Every instance gets a connection now, so each takes its share from the start.
    for (const subchannel of kept) subchannel.connect();
    this.#wakeWaiters();
  }

  #underway(): boolean {
    if (this.#closed) return false;
    if (this.#resolving > 0) return true;
    return this.#subchannels.some(
      (subchannel) => subchannel.state === 'connecting' || subchannel.state === 'ready',
    );
  }

  #noConnection(): NoConnection {
    if (this.#closed) return new NoConnection('the client has been closed');
    return new NoConnection(this.#lastError || 'no instance to connect to');
  }

  #wakeWaiters(): void {
    if (this.#waiters.length === 0) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const waiter of waiters) {
      const picked = this.pick();
      if (picked !== undefined) waiter.resolve(picked);
      else if (this.#underway()) this.#waiters.push(waiter);
      else waiter.reject(this.#noConnection());
    }
  }
}
