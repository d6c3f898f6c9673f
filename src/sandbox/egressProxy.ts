// The worker's outbound HTTP proxy for what a sandboxed run reaches through the host side
// (the model API forwarder, the allowed hosts): the run's HTTPS_PROXY / HTTP_PROXY /
// NO_PROXY, read from its allow-listed environment, since inside the sandbox the proxy
// host cannot be reached. HTTPS and raw TCP go through a CONNECT tunnel; plain HTTP is
// sent to the proxy in absolute form.
import http from 'node:http';
import type net from 'node:net';
import tls from 'node:tls';

type Env = Readonly<Record<string, string | undefined>>;

const pick = (env: Env, name: string): string | undefined => env[name.toLowerCase()] || env[name.toUpperCase()] || undefined;

/** Loopback is never proxied (as Go's ProxyFromEnvironment does): a proxy could not reach this machine's 127.0.0.1. */
function isLoopback(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Whether a connection to host:port goes direct: loopback always; else when NO_PROXY
 * names it (`*`, exact names, `.example.com` / `example.com` suffixes, optional `:port`;
 * CIDR ranges are not understood).
 */
export function bypassesProxy(host: string, port: number, noProxy: string | undefined): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (isLoopback(h)) return true;
  if (!noProxy) return false;
  for (const raw of noProxy.split(/[\s,]+/)) {
    const entry = raw.trim().toLowerCase();
    if (entry === '') continue;
    if (entry === '*') return true;
    const m = /^(.*?)(?::(\d+))?$/.exec(entry.replace(/^\[(.*)\]/, '$1'))!;
    const name = m[1]!.replace(/^\*?\./, '.');
    if (m[2] !== undefined && Number(m[2]) !== port) continue;
    if (h === name.replace(/^\./, '') || h.endsWith(name.startsWith('.') ? name : `.${name}`)) return true;
  }
  return false;
}

/**
 * The proxy for a connection to `target`, or undefined to go direct. `kind` 'http' uses
 * HTTP_PROXY; 'https' and 'tcp' (a tunnel) use HTTPS_PROXY.
 */
export function egressProxyFor(kind: 'http' | 'https' | 'tcp', host: string, port: number, env: Env): URL | undefined {
  const value = kind === 'http' ? pick(env, 'HTTP_PROXY') : pick(env, 'HTTPS_PROXY');
  if (!value || bypassesProxy(host, port, pick(env, 'NO_PROXY'))) return undefined;
  let url: URL;
  try {
    url = new URL(value.includes('://') ? value : `http://${value}`);
  } catch {
    throw new Error(`${kind === 'http' ? 'HTTP_PROXY' : 'HTTPS_PROXY'} is not a URL: ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`${kind === 'http' ? 'HTTP_PROXY' : 'HTTPS_PROXY'} must be an http:// or https:// proxy (got ${url.protocol})`);
  }
  return url;
}

/** `Proxy-Authorization` for credentials in the proxy URL, if any. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (proxy.username === '' && proxy.password === '') return undefined;
  const user = decodeURIComponent(proxy.username);
  const pass = decodeURIComponent(proxy.password);
  return `Basic ${Buffer.from(`${user}:${pass}`).toString('base64')}`;
}

function proxyPort(proxy: URL): number {
  return proxy.port ? Number(proxy.port) : proxy.protocol === 'https:' ? 443 : 80;
}

/** Opens a raw tunnel to host:port through the proxy (HTTP CONNECT); rejects on a refusal, naming the proxy's answer. */
export function connectThroughProxy(proxy: URL, host: string, port: number, timeoutMs = 30_000): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { host: `${host}:${port}` };
    const auth = proxyAuthorization(proxy);
    if (auth) headers['proxy-authorization'] = auth;
    const options: http.RequestOptions = {
      method: 'CONNECT',
      path: `${host.includes(':') ? `[${host}]` : host}:${port}`,
      headers,
      timeout: timeoutMs,
      agent: false,
      ...(proxy.protocol === 'https:'
        ? { createConnection: () => tls.connect({ host: proxy.hostname, port: proxyPort(proxy), servername: proxy.hostname }) }
        : { host: proxy.hostname, port: proxyPort(proxy) }),
    };
    const req = http.request(options);
    req.once('connect', (res, socket, head) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new Error(`the proxy ${proxy.host} refused CONNECT ${host}:${port}: HTTP ${res.statusCode} ${res.statusMessage ?? ''}`.trim()));
        return;
      }
      if (head.length > 0) socket.unshift(head);
      resolve(socket);
    });
    req.once('timeout', () => req.destroy(new Error(`the proxy ${proxy.host} did not answer CONNECT ${host}:${port} within ${timeoutMs} ms`)));
    req.once('error', (err) => reject(new Error(`the proxy ${proxy.host} failed for ${host}:${port}: ${err.message}`, { cause: err })));
    req.end();
  });
}
