// The host side of the sandbox's only way out: an HTTP forwarder on a unix socket that
// passes the Messages API requests the CLI makes (POST /v1/messages and
// /v1/messages/count_tokens, compared byte for byte: no `..`, no encoding, no other path)
// to the real API and puts the real credentials on them (src/sandbox/sandboxEnv.ts). The
// sandbox holds placeholders only, so an agent that reads its own environment learns
// nothing it could use elsewhere, and cannot aim the real key at another endpoint.
// Everything else gets 404.
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { connectThroughProxy, proxyAuthorization } from './egressProxy.js';
import type { ForwardedCredentials } from './sandboxEnv.js';

export interface ApiProxyOptions {
  /** The unix socket path to listen on. */
  socketPath: string;
  /** The real API base URL (may carry a path prefix). */
  upstream: string;
  /** Put on every forwarded request: `x-api-key`, `authorization: Bearer`, custom headers (each replacing what the sandbox sent). */
  credentials: ForwardedCredentials;
  /** The outbound proxy to reach `upstream` through (see egressProxy.ts); undefined: direct. */
  egressProxy?: URL | undefined;
  /** Extra CA certificates trusted for an https upstream (a private CA); default: Node's store. */
  ca?: string | Buffer | undefined;
}

export interface ApiProxy {
  /** Stops listening and cuts open connections (the run is over). */
  close(): void;
}

/** The paths the CLI calls, exactly as it sends them (before the query). */
export const FORWARDED_PATHS: readonly string[] = ['/v1/messages', '/v1/messages/count_tokens'];

/** The request's path and query when it is one the forwarder passes, else undefined. */
export function forwardedTarget(method: string | undefined, url: string): string | undefined {
  if (method !== 'POST') return undefined;
  const q = url.indexOf('?');
  const pathname = q === -1 ? url : url.slice(0, q);
  if (!FORWARDED_PATHS.includes(pathname)) return undefined;
  // A query cannot change the path, but keep it to plain characters all the same.
  const query = q === -1 ? '' : url.slice(q);
  return /^[\x21-\x7e]*$/.test(query) && !query.includes('#') ? `${pathname}${query}` : undefined;
}

/** Headers that describe one hop, not the request (RFC 9110 7.6.1). */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authorization', 'te', 'trailer', 'upgrade', 'host']);

/**
 * Starts the forwarder. Listening on a path binds synchronously in Node, so when this
 * returns the socket accepts connections (checked: it throws otherwise).
 */
export function startApiProxy(o: ApiProxyOptions): ApiProxy {
  const base = new URL(o.upstream);
  const prefix = base.pathname.replace(/\/+$/, '');
  const client = base.protocol === 'https:' ? https : http;
  const server = http.createServer((req, res) => {
    const url = forwardedTarget(req.method, req.url ?? '/');
    if (url === undefined) {
      res
        .writeHead(404, { 'content-type': 'application/json' })
        .end(`{"type":"error","error":{"type":"not_found_error","message":"the agentq forwarder passes only POST ${FORWARDED_PATHS.join(', ')}"}}`);
      req.resume();
      return;
    }
    const { apiKey, bearerToken, headers: custom } = o.credentials;
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    if (apiKey !== undefined) headers['x-api-key'] = apiKey;
    if (bearerToken !== undefined) headers.authorization = `Bearer ${bearerToken}`;
    Object.assign(headers, custom);
    const onResponse = (upstreamRes: http.IncomingMessage) => {
      const out: http.OutgoingHttpHeaders = {};
      for (const [name, value] of Object.entries(upstreamRes.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) out[name] = value;
      res.writeHead(upstreamRes.statusCode ?? 502, out);
      upstreamRes.pipe(res);
      upstreamRes.on('error', () => res.destroy());
    };
    const onError = (err: Error) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(502, { 'content-type': 'application/json' }).end(JSON.stringify({ type: 'error', error: { type: 'api_error', message: `agentq API forwarder: ${err.message}` } }));
    };
    const target = { protocol: base.protocol, hostname: base.hostname, port: base.port || undefined, method: req.method, path: `${prefix}${url}`, headers };
    const send = (upstreamReq: http.ClientRequest) => {
      upstreamReq.on('error', onError);
      // The body waits (the request stream stays paused) until the upstream request exists.
      req.pipe(upstreamReq);
      res.on('close', () => upstreamReq.destroy());
    };
    const proxy = o.egressProxy;
    if (!proxy) return send(client.request({ ...target, ...(o.ca ? { ca: o.ca } : {}) }, onResponse));
    if (base.protocol === 'http:') {
      // Plain HTTP through a proxy: the request in absolute form, to the proxy.
      const auth = proxyAuthorization(proxy);
      const viaHeaders = { ...headers, host: base.host, ...(auth ? { 'proxy-authorization': auth } : {}) };
      const viaClient = proxy.protocol === 'https:' ? https : http;
      return send(
        viaClient.request(
          { hostname: proxy.hostname, port: proxy.port || undefined, method: req.method, path: `${base.origin}${prefix}${url}`, headers: viaHeaders, agent: false },
          onResponse,
        ),
      );
    }
    // HTTPS through a proxy: TLS to the API inside a CONNECT tunnel.
    connectThroughProxy(proxy, base.hostname, Number(base.port || 443)).then(
      (tunnel) =>
        send(
          https.request(
            { ...target, createConnection: () => tls.connect({ socket: tunnel, host: base.hostname, servername: base.hostname, ...(o.ca ? { ca: o.ca } : {}) }) },
            onResponse,
          ),
        ),
      (err: Error) => {
        req.resume();
        onError(err);
      },
    );
  });
  server.on('error', () => undefined);
  server.listen(o.socketPath);
  if (!server.listening) {
    server.close();
    throw new Error(`the API forwarder could not listen on ${o.socketPath}`);
  }
  return {
    close() {
      server.close();
      server.closeAllConnections();
    },
  };
}
