// The host side of an allowed non-API host (AGENTQ_SANDBOX_ALLOW_HOSTS, e.g. an MCP server):
// a unix socket mounted into the sandbox whose every connection is piped, bytes as they
// are, to one fixed host:port. TLS passes through untouched (the name the client asks for
// is the real one), and nothing but that one destination can be reached through it.
import net from 'node:net';

export interface TcpForwarder {
  close(): void;
}

export function startTcpForwarder(o: { socketPath: string; host: string; port: number }): TcpForwarder {
  const open = new Set<net.Socket>();
  const server = net.createServer((inside) => {
    const outside = net.connect(o.port, o.host);
    open.add(inside).add(outside);
    const end = () => {
      inside.destroy();
      outside.destroy();
      open.delete(inside);
      open.delete(outside);
    };
    inside.on('error', end).on('close', end);
    outside.on('error', end).on('close', end);
    inside.pipe(outside).pipe(inside);
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
