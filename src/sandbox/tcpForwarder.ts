// The host side of an allowed non-API host (AGENTQ_SANDBOX_ALLOW_HOSTS, e.g. an MCP server):
// a unix socket mounted into the sandbox whose every connection is piped, bytes as they
// are, to one fixed host:port. TLS passes through untouched (the name the client asks for
// is the real one), and nothing but that one destination can be reached through it.
// With an outbound proxy (HTTPS_PROXY), each connection is a CONNECT tunnel through it.
import net from 'node:net';
import { connectThroughProxy } from './egressProxy.js';

export interface TcpForwarder {
  close(): void;
}

export function startTcpForwarder(o: { socketPath: string; host: string; port: number; egressProxy?: URL | undefined }): TcpForwarder {
  const open = new Set<net.Socket>();
  const join = (inside: net.Socket, outside: net.Socket) => {
    open.add(outside);
    const end = () => {
      inside.destroy();
      outside.destroy();
      open.delete(inside);
      open.delete(outside);
    };
    inside.on('error', end).on('close', end);
    outside.on('error', end).on('close', end);
    if (inside.destroyed) return end();
    inside.pipe(outside).pipe(inside);
  };
  const server = net.createServer((inside) => {
    open.add(inside);
    if (!o.egressProxy) return join(inside, net.connect(o.port, o.host));
    // Until the tunnel is up the inside socket buffers (it is not read yet).
    inside.pause();
    connectThroughProxy(o.egressProxy, o.host, o.port).then(
      (outside) => {
        inside.resume();
        join(inside, outside);
      },
      () => {
        inside.destroy();
        open.delete(inside);
      },
    );
  });
  server.on('error', () => undefined);
  server.listen(o.socketPath);
  if (!server.listening) {
    server.close();
    throw new Error(`the forwarder for ${o.host}:${o.port} could not listen on ${o.socketPath}`);
  }
  return {
    close() {
      server.close();
      for (const s of open) s.destroy();
      open.clear();
    },
  };
}
