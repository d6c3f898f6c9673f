// Private Postgres and Redis servers for the chaos suite, on their own ports and data
// directories, so restarting or flushing them never touches the machine's own services.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa } from 'execa';
import { Redis } from 'ioredis';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function pgBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  for (const v of versions) if (existsSync(path.join(root, v, 'bin', 'initdb'))) return path.join(root, v, 'bin');
  throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql (install postgresql)');
}

/** Runs as the postgres user when we are root (initdb and postgres refuse to run as root). */
function asPostgres(cmd: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args];
}

export interface PrivatePostgres {
  url: string;
  port: number;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrivatePostgres(dir: string): Promise<PrivatePostgres> {
  const bin = pgBinDir();
  const port = await freePort();
  const data = path.join(dir, 'pgdata');
  const sock = path.join(dir, 'pgsock');
  mkdirSync(data, { recursive: true });
  mkdirSync(sock, { recursive: true });
  chmodSync(dir, 0o755);
  if (process.getuid?.() === 0) {
    const pw = await execa('id', ['-u', 'postgres']);
    const gr = await execa('id', ['-g', 'postgres']);
    for (const d of [data, sock]) chownSync(d, Number(pw.stdout), Number(gr.stdout));
  }
  const [initCmd, initArgs] = asPostgres(path.join(bin, 'initdb'), ['-D', data, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--locale=C.UTF-8']);
  await execa(initCmd, initArgs);
  const pgCtl = (action: string[]) => {
    const [c, a] = asPostgres(path.join(bin, 'pg_ctl'), [
      '-D', data, '-w', '-l', path.join(sock, 'log'),
      '-o', `-p ${port} -k ${sock} -c listen_addresses=127.0.0.1 -c max_connections=200`,
      ...action,
    ]);
    return execa(c, a);
  };
  await pgCtl(['start']);
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  return {
    url,
    port,
    async restart() {
      await pgCtl(['-m', 'fast', 'restart']);
    },
    async stop() {
      await pgCtl(['-m', 'immediate', 'stop']).catch(() => undefined);
    },
  };
}

export interface PrivateRedis {
  url: string;
  flushAll(): Promise<void>;
  stop(): Promise<void>;
}

export async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
  const url = `redis://127.0.0.1:${port}`;
  const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  // Refused connections while the server starts are expected; waitFor retries.
  client.on('error', () => undefined);
  await waitFor('redis', async () => {
    if (client.status !== 'ready') await client.connect().catch(() => undefined);
    return (await client.ping()) === 'PONG';
  });
  return {
    url,
    async flushAll() {
      await client.flushall();
    },
    async stop() {
      client.disconnect();
      child.kill('SIGKILL');
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once('exit', r)));
    },
  };
}
