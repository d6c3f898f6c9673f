// What of the CLI's environment goes into the sandbox, and what stays with the API
// forwarder on the host. The agent can read every variable the sandbox has (its own
// environment, and /proc/1/environ: bubblewrap's, which is the same), so:
// - the model API's credentials (ANTHROPIC_API_KEY, ANTHROPIC_AUTH_TOKEN,
//   CLAUDE_CODE_OAUTH_TOKEN, ANTHROPIC_CUSTOM_HEADERS) go to the forwarder, which puts
//   them on each request; the sandbox gets a placeholder where the CLI needs one to pick
//   its way of authenticating, and nothing for the headers;
// - any other allow-listed variable whose name says it is a credential (KEY, TOKEN,
//   SECRET, PASSWORD, AUTH, HEADERS, COOKIE, CREDENTIALS) is left out, unless it is named
//   in AGENTQ_CLI_ENV_ALLOW (then the agent is meant to have it);
// - proxies are left out (the forwarders use them on the host side), and PATH is the
//   sandbox's own: nothing in it names a host path of the worker.

/** What the sandbox sees instead of a real credential; the forwarder swaps it. */
export const DUMMY_API_KEY = 'sk-ant-agentq-sandbox-placeholder';
/** PATH inside: the system directories the sandbox has. */
export const SANDBOX_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Proxy settings would point at hosts the sandbox cannot reach: the forwarders use them on the host side instead. */
const PROXY_VARS = ['HTTP_PROXY', 'HTTPS_PROXY', 'NO_PROXY', 'http_proxy', 'https_proxy', 'no_proxy'];
/** Credentials the forwarder puts on requests; the sandbox sees DUMMY_API_KEY in their place (headers: nothing). */
const FORWARDED = ['ANTHROPIC_API_KEY', 'ANTHROPIC_AUTH_TOKEN', 'CLAUDE_CODE_OAUTH_TOKEN', 'ANTHROPIC_CUSTOM_HEADERS'];
/** A name that says its value is a credential. */
const CREDENTIAL_NAME = /(^|_)(KEY|KEYS|TOKEN|TOKENS|SECRET|SECRETS|PASSWORD|PASSWD|CREDENTIAL|CREDENTIALS|AUTH|HEADERS|COOKIE|COOKIES)(_|$)/i;

/** The credentials the forwarder injects. */
export interface ForwardedCredentials {
  apiKey: string | undefined;
  /** ANTHROPIC_AUTH_TOKEN, else CLAUDE_CODE_OAUTH_TOKEN: sent as `Authorization: Bearer`. */
  bearerToken: string | undefined;
  /** ANTHROPIC_CUSTOM_HEADERS, parsed (`Name: value` per line). */
  headers: Record<string, string>;
}

/** `Name: value` lines, as the CLI reads ANTHROPIC_CUSTOM_HEADERS. */
export function parseCustomHeaders(value: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (value ?? '').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    if (/^[!#$%&'*+.^_`|~0-9a-z-]+$/.test(name)) out[name] = line.slice(colon + 1).trim();
  }
  return out;
}

/**
 * Splits a run's allow-listed environment into the sandbox's and the forwarder's.
 * `passNames`: AGENTQ_CLI_ENV_ALLOW, passed even when they look like credentials.
 */
export function splitSandboxEnv(
  env: Readonly<Record<string, string>>,
  passNames: readonly string[] = [],
): { inside: Record<string, string>; credentials: ForwardedCredentials } {
  const credentials: ForwardedCredentials = {
    apiKey: env.ANTHROPIC_API_KEY,
    bearerToken: env.ANTHROPIC_AUTH_TOKEN ?? env.CLAUDE_CODE_OAUTH_TOKEN,
    headers: parseCustomHeaders(env.ANTHROPIC_CUSTOM_HEADERS),
  };
  const inside: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (PROXY_VARS.includes(name)) continue;
    if (FORWARDED.includes(name)) {
      if (name !== 'ANTHROPIC_CUSTOM_HEADERS') inside[name] = DUMMY_API_KEY;
      continue;
    }
    if (CREDENTIAL_NAME.test(name) && !passNames.includes(name)) continue;
    inside[name] = value;
  }
  inside.PATH = SANDBOX_PATH;
  return { inside, credentials };
}
