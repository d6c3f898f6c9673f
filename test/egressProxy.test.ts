// The sandbox's host-side forwarders honour the run's HTTP_PROXY / HTTPS_PROXY / NO_PROXY:
// plain HTTP in absolute form, HTTPS and raw TCP through CONNECT, credentials from the
// proxy URL, loopback and NO_PROXY direct. The upstreams here have names under
// `.agentq.test` that only the test's proxy knows (it maps them to 127.0.0.1), so an
// answer proves the traffic went through the proxy.
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { runClaude } from '../src/runner/runClaude.js';
import { startApiProxy } from '../src/sandbox/apiProxy.js';
import { bypassesProxy, egressProxyFor } from '../src/sandbox/egressProxy.js';
import { probeSandbox } from '../src/sandbox/probe.js';
import { startTcpForwarder } from '../src/sandbox/tcpForwarder.js';
import { loadConfig } from '../src/config.js';
import { realCliSettings } from './helpers/realCli.js';

interface Seen {
  kind: 'absolute' | 'connect';
  target: string;
  auth: string | undefined;
}

/** A forward proxy that knows `*.agentq.test` as 127.0.0.1 and nothing else; `refuse` answers 407. */
async function startTestProxy(opts: { refuse?: boolean } = {}) {
  const seen: Seen[] = [];
  const tunnels = new Set<net.Socket>();
  const resolve = (host: string) => (host.endsWith('.agentq.test') ? '127.0.0.1' : undefined);
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '');
    seen.push({ kind: 'absolute', target: url.host, auth: req.headers['proxy-authorization'] });
    const ip = resolve(url.hostname);
    if (!ip || opts.refuse) return void res.writeHead(opts.refuse ? 407 : 502).end();
    const headers = { ...req.headers };
    delete headers['proxy-authorization'];
    const up = http.request({ host: ip, port: url.port, method: req.method, path: url.pathname + url.search, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    const [host = '', port = ''] = (req.url ?? '').split(':');
    seen.push({ kind: 'connect', target: req.url ?? '', auth: req.headers['proxy-authorization'] });
    const ip = resolve(host);
    if (!ip || opts.refuse) return void socket.end(`HTTP/1.1 ${opts.refuse ? '407 Proxy Authentication Required' : '502 Bad Gateway'}\r\n\r\n`);
    tunnels.add(socket);
    const up = net.connect(Number(port), ip, () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket).pipe(up);
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  return {
    seen,
    url: (auth = '') => new URL(`http://${auth}127.0.0.1:${port}`),
    close: () =>
      new Promise<void>((r) => {
        for (const t of tunnels) t.destroy();
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

let root: string;
let mock: MockModel;
let proxy: Awaited<ReturnType<typeof startTestProxy>>;
beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-egress-'));
  mock = await startMockModel();
  proxy = await startTestProxy();
});
afterAll(async () => {
  await proxy?.close();
  await mock?.close();
  rmSync(root, { recursive: true, force: true });
});

/** GET/POST through the forwarder's unix socket. */
function viaSocket(socketPath: string, pathName: string, body?: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, path: pathName, method: body ? 'POST' : 'GET', headers: body ? { 'content-type': 'application/json' } : {} }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const mockPort = () => new URL(mock.url).port;
const keyOnly = (apiKey: string | undefined) => ({ apiKey, bearerToken: undefined, headers: {} });

describe('which connections use the proxy', () => {
  it('NO_PROXY names, suffixes, ports and *; loopback always direct; the proxy kind by scheme', () => {
    expect(bypassesProxy('api.anthropic.com', 443, undefined)).toBe(false);
    expect(bypassesProxy('127.0.0.1', 8080, undefined)).toBe(true);
    expect(bypassesProxy('localhost', 80, '')).toBe(true);
    expect(bypassesProxy('::1', 80, '')).toBe(true);
    expect(bypassesProxy('api.anthropic.com', 443, 'anthropic.com')).toBe(true);
    expect(bypassesProxy('api.anthropic.com', 443, '.anthropic.com')).toBe(true);
    expect(bypassesProxy('anthropic.com', 443, '.anthropic.com')).toBe(true);
    expect(bypassesProxy('notanthropic.com', 443, 'anthropic.com')).toBe(false);
    expect(bypassesProxy('mcp.example.com', 443, 'example.org, mcp.example.com:8443')).toBe(false);
    expect(bypassesProxy('mcp.example.com', 8443, 'example.org, mcp.example.com:8443')).toBe(true);
    expect(bypassesProxy('anything', 1, '*')).toBe(true);
    const env = { HTTPS_PROXY: 'http://p.corp:3128', http_proxy: 'proxy.corp:8080', NO_PROXY: 'internal.corp' };
    expect(egressProxyFor('https', 'api.anthropic.com', 443, env)?.href).toBe('http://p.corp:3128/');
    expect(egressProxyFor('tcp', 'mcp.example.com', 443, env)?.href).toBe('http://p.corp:3128/');
    expect(egressProxyFor('http', 'model.example.com', 80, env)?.href).toBe('http://proxy.corp:8080/');
    expect(egressProxyFor('https', 'svc.internal.corp', 443, env)).toBeUndefined();
    expect(egressProxyFor('https', 'api.anthropic.com', 443, {})).toBeUndefined();
    expect(() => egressProxyFor('https', 'a.example', 443, { HTTPS_PROXY: 'socks5://p:1080' })).toThrow(/HTTPS_PROXY must be an http:\/\/ or https:\/\/ proxy/);
  });
});

describe('the model API forwarder through a proxy', () => {
  it('plain HTTP: the request goes to the proxy in absolute form, with the proxy credentials, and the key is still swapped', async () => {
    const socketPath = path.join(root, 'api-http.sock');
    const before = mock.requests.length;
    const fwd = startApiProxy({ socketPath, upstream: `http://model.agentq.test:${mockPort()}`, credentials: keyOnly('sk-real'), egressProxy: proxy.url('agent:s%40cret@') });
    try {
      const body = JSON.stringify({ model: 'claude-test', max_tokens: 10, messages: [{ role: 'user', content: 'via proxy' }] });
      const res = await viaSocket(socketPath, '/v1/messages', body);
      expect(res.status, res.text).toBe(200);
      expect(mock.requests.at(-1)?.rawBody).toContain('via proxy');
      const seen = proxy.seen.filter((s) => s.target === `model.agentq.test:${mockPort()}`);
      expect(seen.at(-1)).toEqual({ kind: 'absolute', target: `model.agentq.test:${mockPort()}`, auth: `Basic ${Buffer.from('agent:s@cret').toString('base64')}` });
      expect(mock.requests.length).toBeGreaterThan(before);
      expect(mock.requests.at(-1)?.headers['x-api-key']).toBe('sk-real');
      expect(mock.requests.at(-1)?.headers['proxy-authorization']).toBeUndefined();
    } finally {
      fwd.close();
    }
  });

  it('HTTPS: TLS to the API inside a CONNECT tunnel, the certificate checked against the API name', async () => {
    const dir = mkdtempSync(path.join(root, 'tls-'));
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=secure.agentq.test',
      '-addext', 'subjectAltName=DNS:secure.agentq.test', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    const cert = readFileSync(path.join(dir, 'cert.pem'));
    const server = https.createServer({ key: readFileSync(path.join(dir, 'key.pem')), cert }, (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url, key: req.headers['x-api-key'] }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as net.AddressInfo).port;
    const socketPath = path.join(root, 'api-https.sock');
    const fwd = startApiProxy({ socketPath, upstream: `https://secure.agentq.test:${port}/prefix`, credentials: keyOnly('sk-real'), egressProxy: proxy.url(), ca: cert });
    try {
      const res = await viaSocket(socketPath, '/v1/messages/count_tokens', '{}');
      expect(res.status, res.text).toBe(200);
      expect(JSON.parse(res.text)).toEqual({ path: '/prefix/v1/messages/count_tokens', key: 'sk-real' });
      expect(proxy.seen.some((s) => s.kind === 'connect' && s.target === `secure.agentq.test:${port}`)).toBe(true);
      // Without the CA the certificate is refused: the tunnel does not weaken TLS.
      const strict = startApiProxy({ socketPath: path.join(root, 'api-https-strict.sock'), upstream: `https://secure.agentq.test:${port}`, credentials: keyOnly(undefined), egressProxy: proxy.url() });
      try {
        const refused = await viaSocket(path.join(root, 'api-https-strict.sock'), '/v1/messages/count_tokens', '{}');
        expect(refused.status).toBe(502);
        expect(refused.text).toMatch(/self[- ]signed|certificate/i);
      } finally {
        strict.close();
      }
    } finally {
      fwd.close();
      server.closeAllConnections();
      server.close();
    }
  });

  it("a proxy that refuses the tunnel is a 502 naming the proxy's answer", async () => {
    const refusing = await startTestProxy({ refuse: true });
    const socketPath = path.join(root, 'api-refused.sock');
    const fwd = startApiProxy({ socketPath, upstream: 'https://api.agentq.test', credentials: keyOnly(undefined), egressProxy: refusing.url() });
    try {
      const res = await viaSocket(socketPath, '/v1/messages/count_tokens', '{}');
      expect(res.status).toBe(502);
      expect(res.text).toMatch(/refused CONNECT api\.agentq\.test:443: HTTP 407/);
    } finally {
      fwd.close();
      await refusing.close();
    }
  });
});

describe('an allowed host (raw TCP) through a proxy', () => {
  it('each connection is a CONNECT tunnel to that host and port', async () => {
    const echo = net.createServer((s) => s.pipe(s));
    await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r));
    const port = (echo.address() as net.AddressInfo).port;
    const socketPath = path.join(root, 'tcp.sock');
    const fwd = startTcpForwarder({ socketPath, host: 'mcp.agentq.test', port, egressProxy: proxy.url('u:p@') });
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const c = net.connect(socketPath, () => c.write('ping through the tunnel'));
        c.on('data', (d: Buffer) => {
          resolve(d.toString());
          c.destroy();
        });
        c.on('error', reject);
      });
      expect(reply).toBe('ping through the tunnel');
      expect(proxy.seen.filter((s) => s.kind === 'connect' && s.target === `mcp.agentq.test:${port}`).at(-1)?.auth).toBe(`Basic ${Buffer.from('u:p').toString('base64')}`);
    } finally {
      fwd.close();
      echo.close();
    }
  });
});

describe('the real CLI, sandboxed, behind a proxy', () => {
  it('reaches the model only through HTTP_PROXY (the model name resolves nowhere else)', async () => {
    const config = loadConfig({ PATH: process.env.PATH ?? '/usr/bin:/bin' });
    const probe = await probeSandbox(config.sandbox.bwrapPath, config.sandbox.socatPath);
    if (!probe.ok) throw new Error(`bubblewrap is needed for this test (apt-get install bubblewrap socat): ${probe.reason}`);
    const modelUrl = `http://model.agentq.test:${mockPort()}`;
    const settings = { ...realCliSettings(modelUrl, { HTTP_PROXY: proxy.url().href }), sandbox: { ...probe.settings, allowHosts: [] } };
    const cwd = mkdtempSync(path.join(root, 'ws-'));
    const run = mkdtempSync(path.join(root, 'run-'));
    const before = proxy.seen.length;
    const outcome = await runClaude(
      {
        prompt: 'hello from behind the proxy',
        cwd,
        configDir: path.join(run, 'config'),
        homeDir: path.join(run, 'home'),
        tmpDir: path.join(run, 'tmp'),
        session: { mode: 'new', sessionId: randomUUID() },
      },
      settings,
    );
    expect(outcome.type).toBe('success');
    expect(outcome.resultText).toContain('hello from behind the proxy');
    expect(proxy.seen.slice(before).some((s) => s.kind === 'absolute' && s.target === `model.agentq.test:${mockPort()}`)).toBe(true);
  }, 60_000);
});
