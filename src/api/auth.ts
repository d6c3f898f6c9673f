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
