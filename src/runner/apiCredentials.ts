// Whether CLI runs can authenticate to the Messages API: which credentials the worker
// hands them (from its allow-listed environment), and one free request that tells whether
// the API takes them. Without either, every turn would fail as `auth`: `agentq doctor`
// fails its check and `agentq worker` warns once at start.
import type { Config } from '../config.js';

export const DEFAULT_ANTHROPIC_BASE_URL = 'https://api.anthropic.com';

/** What to set, said the same way wherever credentials are missing or refused. */
export const CREDENTIALS_ADVICE =
  'set ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN / CLAUDE_CODE_OAUTH_TOKEN) in the worker\'s environment, or ANTHROPIC_BASE_URL for a gateway that adds them; ' +
  'to run offline against the built-in mock model: AGENTQ_MODEL=mock (or `agentq dev`)';

export interface CredentialCheck {
  ok: boolean;
  detail: string;
}

interface Credentials {
  apiKey: string | undefined;
  bearer: string | undefined;
  oauth: boolean;
}

function credentialsOf(config: Config): Credentials {
  const env = config.cli.env;
  const bearer = env.ANTHROPIC_AUTH_TOKEN ?? env.CLAUDE_CODE_OAUTH_TOKEN;
  return { apiKey: config.anthropic.apiKey ?? env.ANTHROPIC_API_KEY, bearer, oauth: env.ANTHROPIC_AUTH_TOKEN === undefined && bearer !== undefined };
}

/** Without the network: does the worker have anything to authenticate with (or the mock model)? */
export function credentialsPresent(config: Config): CredentialCheck {
  if (config.model === 'mock') return { ok: true, detail: 'AGENTQ_MODEL=mock: the built-in mock model answers (offline, no key, no cost)' };
  const c = credentialsOf(config);
  if (c.apiKey || c.bearer) return { ok: true, detail: `credentials: ${c.apiKey ? 'ANTHROPIC_API_KEY' : c.oauth ? 'CLAUDE_CODE_OAUTH_TOKEN' : 'ANTHROPIC_AUTH_TOKEN'}` };
  if (config.anthropic.baseUrl) return { ok: true, detail: `no credentials, but ANTHROPIC_BASE_URL (${config.anthropic.baseUrl}) may be a gateway that adds them` };
  return { ok: false, detail: `no credentials for the Messages API: every turn would fail as auth; ${CREDENTIALS_ADVICE}` };
}

/**
 * Asks the Messages API whether it takes the worker's credentials, spending no tokens:
 * `GET /v1/models?limit=1`. 401/403 fail; any other answer passes (a gateway without that
 * route says nothing about the key); no answer fails as unreachable.
 */
export async function checkCredentials(config: Config, timeoutMs = 5000): Promise<CredentialCheck> {
  const present = credentialsPresent(config);
  if (!present.ok || config.model === 'mock') return present;
  const base = (config.anthropic.baseUrl ?? DEFAULT_ANTHROPIC_BASE_URL).replace(/\/+$/, '');
  const c = credentialsOf(config);
  const headers: Record<string, string> = { 'anthropic-version': '2023-06-01' };
  if (c.apiKey) headers['x-api-key'] = c.apiKey;
  if (c.bearer) headers.authorization = `Bearer ${c.bearer}`;
  if (c.oauth) headers['anthropic-beta'] = 'oauth-2025-04-20';
  const url = `${base}/v1/models?limit=1`;
  const started = performance.now();
  try {
    const res = await fetch(url, { headers, redirect: 'manual', signal: AbortSignal.timeout(timeoutMs) });
    await res.body?.cancel().catch(() => undefined);
    const ms = Math.round(performance.now() - started);
    if (res.status === 401 || res.status === 403) {
      return { ok: false, detail: `${base} refused the credentials (HTTP ${res.status}, ${present.detail}): every turn would fail as auth; ${CREDENTIALS_ADVICE}` };
    }
    if (res.ok) return { ok: true, detail: `${base} accepted the credentials (${present.detail}; GET /v1/models, no tokens spent, ${ms} ms)` };
    return { ok: true, detail: `${base} answered HTTP ${res.status} in ${ms} ms (${present.detail}; not verified: no /v1/models there)` };
  } catch (err) {
    const e = err as Error & { cause?: { code?: string; message?: string } };
    const why = e.name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : (e.cause?.code ?? e.cause?.message ?? e.message);
    return { ok: false, detail: `${base} is unreachable (${why}); check ANTHROPIC_BASE_URL, proxies and egress` };
  }
}
