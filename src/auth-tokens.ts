import { digestToken, PERMISSIONS, type Permission, type TokenGrant } from './auth.ts';

/** RFC 6750 b64token: what may follow "Bearer ". */
const TOKEN = /^[A-Za-z0-9\-._~+/]+=*$/;
const MIN_TOKEN_LENGTH = 16;

/**
 * Parses `token:permission` entries (from AUTH_TOKENS or AUTH_TOKENS_FILE,
 * named by `variable`) into grants that keep only each token's digest.
 * Problems name the entry by its position, never by its token.
 */
export function parseTokenGrants(
  variable: string,
  entries: readonly string[],
): { grants: TokenGrant[]; problems: string[] } {
  const problems: string[] = [];
  const grants: TokenGrant[] = [];
  const seen = new Set<string>();
  entries.forEach((entry, index) => {
    const where = `${variable}: entry ${index + 1}`;
    const colon = entry.lastIndexOf(':');
    const token = entry.slice(0, colon);
    const permission = entry.slice(colon + 1);
    if (colon < 0 || !PERMISSIONS.includes(permission as Permission)) {
      problems.push(
        `${where}: expected token:permission with permission ${PERMISSIONS.slice(0, -1).join(', ')} or ${PERMISSIONS.at(-1)}`,
      );
      return;
    }
    if (!TOKEN.test(token)) {
      problems.push(`${where}: a token is made of A-Z a-z 0-9 - . _ ~ + / (then = padding)`);
      return;
    }
    if (token.length < MIN_TOKEN_LENGTH) {
      problems.push(
        `${where}: the token has ${token.length} characters; use at least ${MIN_TOKEN_LENGTH} (e.g. openssl rand -hex 32)`,
      );
      return;
    }
    const digest = digestToken(token);
    const id = digest.toString('hex');
    if (seen.has(id)) {
      problems.push(`${where}: the same token is listed twice`);
      return;
    }
    seen.add(id);
    grants.push(Object.freeze({ digest, permission: permission as Permission }));
  });
  if (problems.length === 0 && grants.length === 0) problems.push(`${variable}: lists no token`);
  return { grants, problems };
}
