// Bearer API keys → tenants (AGENTQ_API_KEYS). Tokens are compared as SHA-256 digests in
// constant time, so neither a token's bytes nor its length leak through timing.
import { createHash, timingSafeEqual } from 'node:crypto';

export interface ApiKeyTable {
  /** The tenant of a request's `Authorization` header value, or undefined (→ 401). */
  tenantOf(authorization: string | undefined): string | undefined;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function apiKeyTable(keys: readonly { token: string; tenant: string }[]): ApiKeyTable {
  const entries = keys.map((k) => ({ digest: digest(k.token), tenant: k.tenant }));
  return {
    tenantOf(authorization) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
      if (!m) return undefined;
      const d = digest(m[1]!);
      let tenant: string | undefined;
      // Every entry is compared, so the time does not say which one matched.
      for (const e of entries) if (timingSafeEqual(d, e.digest)) tenant = e.tenant;
      return tenant;
    },
  };
}

/** Name of the cookie POST /admin/login sets (HttpOnly, SameSite=Strict). */
export const SESSION_COOKIE = 'agentq_key';

/** The session cookie's key as an Authorization value, for ApiKeyTable.tenantOf. */
export function sessionCookieAuthorization(cookieHeader: string | undefined): string | undefined {
  if (!cookieHeader) return undefined;
  for (const part of cookieHeader.split(';')) {
    const eq = part.indexOf('=');
    if (eq !== -1 && part.slice(0, eq).trim() === SESSION_COOKIE) {
      try {
        return `Bearer ${decodeURIComponent(part.slice(eq + 1).trim())}`;
      } catch {
        return undefined;
      }
    }
  }
  return undefined;
}
