// The host side of the sandbox's only way out: an HTTP forwarder on a unix socket that
// passes `/v1/*` requests to the real Messages API and puts the real credentials on
// them. The sandbox holds a dummy key only, so an agent that reads its own environment
// learns nothing it could use elsewhere. Everything else gets 404.
import http from 'node:http';
import https from 'node:https';
import tls from 'node:tls';
import { connectThroughProxy, proxyAuthorization } from './egressProxy.js';

export interface ApiProxyOptions {
  /** The unix socket path to listen on. */
  socketPath: string;
  /** The real API base URL (may carry a path prefix). */
  upstream: string;
  /** Replaces `x-api-key` on every forwarded request, when set. */
  apiKey?: string | undefined;
  /** Replaces `authorization` with `Bearer <token>`, when set. */
  authToken?: string | undefined;
  /** The outbound proxy to reach `upstream` through (see egressProxy.ts); undefined: direct. */
  egressProxy?: URL | undefined;
  /** Extra CA certificates trusted for an https upstream (a private CA); default: Node's store. */
  ca?: string | Buffer | undefined;
}

export interface ApiProxy {
  /** Stops listening and cuts open connections (the run is over). */
  close(): void;
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
    const url = req.url ?? '/';
    if (!url.startsWith('/v1/')) {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"type":"error","error":{"type":"not_found_error","message":"only /v1/* is forwarded"}}');
      req.resume();
      return;
    }
    const headers: http.OutgoingHttpHeaders = {};
    for (const [name, value] of Object.entries(req.headers)) if (!HOP_BY_HOP.has(name) && value !== undefined) headers[name] = value;
    if (o.apiKey !== undefined) headers['x-api-key'] = o.apiKey;
    if (o.authToken !== undefined) headers.authorization = `Bearer ${o.authToken}`;
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
