import assert from 'node:assert/strict';
import { createClient, ErrorReply } from '@redis/client';

/**
 * The least-privilege Redis ACL of the service, as docs/security.md documents it.
 * Every command the service sends, directly or from its Lua scripts (Redis
 * checks a script's commands against the caller's ACL), and nothing else.
 */
export const SERVICE_COMMANDS = [
  // the store: scripts by SHA1, their source after NOSCRIPT, reads, health probe
  '+evalsha',
  '+eval',
  '+hgetall',
  '+ping',
  // the connection handshake: SELECT REDIS_DATABASE (not on Cluster)
  '+select',
  // inside the scripts (src/store/redis/lua/*.lua)
  '+time',
  '+exists',
  '+hget',
  '+hmget',
  '+hset',
  '+hdel',
  '+hexists',
  '+hlen',
  '+hstrlen',
  '+del',
  '+pexpire',
  '+pttl',
  '+renamenx',
  // the owner index (lua/compact.lua)
  '+zadd',
  '+zrem',
  '+zrange',
  '+zscore',
] as const;

/**
 * Redis 7.2 and later: node-redis's handshake sends CLIENT SETINFO. It
 * ignores a refusal, but each would be an ACL LOG entry. Older Redis does not
 * know the subcommand (ACL SETUSER refuses it) and answers it with an error
 * before any ACL check.
 */
export const SETINFO_COMMANDS = ['+client|setinfo'] as const;

/** Cluster only: slot map discovery. */
export const CLUSTER_COMMANDS = ['+cluster|slots'] as const;

export const ACL_USER = 'sessionmanager';
export const ACL_PASSWORD = 'acl-test-password-0123456789';

/** The ACL SETUSER arguments for a key prefix. */
export function aclRules(prefix: string, options: { cluster?: boolean; setinfo?: boolean } = {}) {
  return [
    'on',
    `>${ACL_PASSWORD}`,
    'resetkeys',
    `~${prefix}*`,
    'resetchannels',
    '-@all',
    ...SERVICE_COMMANDS,
    ...(options.setinfo ? SETINFO_COMMANDS : []),
    ...(options.cluster ? CLUSTER_COMMANDS : []),
  ];
}

/**
 * Creates the service's ACL user on one node: with CLIENT SETINFO where the
 * node knows it (Redis 7.2+), without on older Redis. Returns the rules set.
 */
export function createAclUser(
  cli: (...args: string[]) => string,
  prefix: string,
  cluster = false,
): string[] {
  const known = cli('COMMAND', 'INFO', 'client|setinfo').trim() !== '';
  const rules = aclRules(prefix, { cluster, setinfo: known });
  const reply = cli('ACL', 'SETUSER', ACL_USER, ...rules);
  assert.equal(reply, 'OK', reply);
  return rules;
}

/** `ACL LOG` entries (denied commands or keys) as reason/object pairs. */
export function aclDenials(cli: (...args: string[]) => string): string[] {
  const lines = cli('ACL', 'LOG').split('\n');
  const denials: string[] = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    if (lines[i] === 'object') denials.push(String(lines[i + 1]));
  }
  return denials;
}

/** Sends one command as the ACL user and asserts Redis refuses it for want of permission. */
export async function assertRefused(port: number, database: number, args: string[]): Promise<void> {
  const client = createClient({
    socket: { host: '127.0.0.1', port, reconnectStrategy: false },
    username: ACL_USER,
    password: ACL_PASSWORD,
    database,
    RESP: 2,
  });
  client.on('error', () => undefined);
  await client.connect();
  try {
    await assert.rejects(client.sendCommand(args), (error: unknown) => {
      assert.ok(error instanceof ErrorReply, `${args.join(' ')}: ${String(error)}`);
      // A command refused inside a script fails the script with ERR.
      assert.match(
        error.message,
        /^(NOPERM|ERR The user executing the script can't (run this command|access))/,
        args.join(' '),
      );
      return true;
    });
  } finally {
    client.destroy();
  }
}

/**
 * The user the service logs in to the sentinels with (REDIS_SENTINEL_USERNAME):
 * node-redis asks them for the master, replicas and other sentinels, and
 * listens for failovers (PSUBSCRIBE on +switch-master and friends).
 */
export const SENTINEL_COMMANDS = [
  '+sentinel|master',
  '+sentinel|replicas',
  '+sentinel|sentinels',
  '+psubscribe',
  '+ping',
] as const;

export function sentinelAclRules(cli: (...args: string[]) => string): string[] {
  let setinfo = false;
  try {
    setinfo = cli('COMMAND', 'INFO', 'client|setinfo').trim() !== '';
  } catch {}
  return [
    'on',
    `>${ACL_PASSWORD}`,
    'resetchannels',
    'allchannels',
    '-@all',
    ...SENTINEL_COMMANDS,
    ...(setinfo ? SETINFO_COMMANDS : []),
  ];
}
