// Infrastructure a protocol test breaks on purpose: a private redis-server it may flush,
// a TCP proxy in front of Postgres it may cut, a log it can read, and a wrapper around the
// fake CLI that scripts each invocation in turn.
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { Config } from '../../src/config.js';
import { createLogger } from '../../src/logger.js';
import type { RunnerSettings } from '../../src/runner/runClaude.js';
import { fakeCliPath } from '../../src/testing/fakeCliPath.js';
import { isAlive, waitUntil } from './processes.js';

/** A TCP port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface PrivateRedis {
  url: string;
  port: number;
  /** FLUSHALL on this server only. */
  flushAll(): Promise<void>;
  stop(): Promise<void>;
}

/** A redis-server of the test's own (no persistence), so the test may flush it. */
export async function startPrivateRedis(): Promise<PrivateRedis> {
  for (let tries = 0; ; tries++) {
    const port = await freePort();
    const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no'], {
      stdio: 'ignore',
    });
    let exited = false;
    child.once('exit', () => (exited = true));
    const url = `redis://127.0.0.1:${port}`;
    const answers = async (): Promise<boolean> => {
      const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      probe.on('error', () => undefined);
      try {
        await probe.connect();
        return (await probe.ping()) === 'PONG';
      } catch {
        return false;
      } finally {
        probe.disconnect();
      }
    };
    try {
      await waitUntil(async () => exited || (await answers()), `redis-server on port ${port} answers`, 10_000);
    } catch (err) {
      child.kill('SIGKILL');
      throw err;
    }
    if (exited) {
      // Lost the port race: someone took it between freePort() and the bind.
      if (tries < 3) continue;
      throw new Error('redis-server would not start');
    }
    const admin = new Redis(url, { maxRetriesPerRequest: null });
    const pid = child.pid!;
    return {
      url,
      port,
      async flushAll() {
        await admin.flushall();
      },
      async stop() {
        admin.disconnect();
        child.kill('SIGKILL');
        await waitUntil(() => exited || !isAlive(pid), 'the private redis-server exited', 5000);
      },
    };
  }
}

export interface TcpProxy {
  port: number;
  /** Destroys every open connection and refuses new ones (the port is closed). */
  cut(): Promise<void>;
  /** Listens again on the same port. */
  restore(): Promise<void>;
  /** Connections accepted so far. */
  accepted(): number;
  close(): Promise<void>;
}

/** A plain TCP forwarder to `target`, e.g. between a worker and Postgres. */
export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const sockets = new Set<net.Socket>();
  let accepted = 0;
  let server: net.Server | undefined;
  let port = 0;

  const listen = async () => {
    const s = net.createServer((client) => {
      accepted++;
      const upstream = net.connect(target.port, target.host);
      sockets.add(client);
      sockets.add(upstream);
      const drop = () => {
        client.destroy();
        upstream.destroy();
        sockets.delete(client);
        sockets.delete(upstream);
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', resolve);
    });
    port = (s.address() as net.AddressInfo).port;
    server = s;
  };
  const unlisten = async () => {
    const s = server;
    server = undefined;
    for (const sock of sockets) sock.destroy();
    sockets.clear();
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };

  await listen();
  return {
    get port() {
      return port;
    },
    cut: unlisten,
    restore: listen,
    accepted: () => accepted,
    close: unlisten,
  };
}

export interface CapturedLog {
  log: Logger;
  /** Parsed log records so far. */
  records(): Record<string, unknown>[];
  /** Records whose msg contains `text`. */
  matching(text: string): Record<string, unknown>[];
}

/** A pino logger that keeps its records in memory instead of printing them. */
export function captureLogger(level = 'info'): CapturedLog {
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
      cb();
    },
  });
  // The project's own logger (its serializers and redaction), writing here.
  const log = createLogger({ logLevel: level as Config['logLevel'] }, 'agentq', sink);
  const records = () => lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  return {
    log,
    records,
    matching: (text) => records().filter((r) => typeof r.msg === 'string' && r.msg.includes(text)),
  };
}

export interface ScriptedCli {
  /** Use as AGENTQ_CLAUDE_PATH. */
  path: string;
  /** How many times the CLI was started. */
  invocations(): number;
}

/**
 * A wrapper around the fake CLI: invocation n runs with FAKE_CLAUDE_SCRIPT = plan[n-1]
 * (an empty or missing entry = default behaviour). A test fixture only: it `exec`s the
 * fake CLI, so the runner still sees one process.
 */
export function scriptedFakeCli(dir: string, plan: readonly (object | undefined)[]): ScriptedCli {
  mkdirSync(dir, { recursive: true });
  const counter = path.join(dir, 'count');
  const planFile = path.join(dir, 'plan');
  writeFileSync(counter, '0\n');
  writeFileSync(planFile, plan.map((p) => (p ? JSON.stringify(p) : '')).join('\n') + '\n');
  const script = path.join(dir, 'claude');
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  writeFileSync(
    script,
    [
      '#!/bin/sh',
      // The worker's config seed (src/runner/configSeed.ts) is not a turn: it takes no step of the plan.
      `[ "$1 $2" = "plugin list" ] && exec ${q(fakeCliPath())} "$@"`,
      `n=$(( $(cat ${q(counter)}) + 1 ))`,
      `echo "$n" > ${q(counter)}`,
      `FAKE_CLAUDE_SCRIPT=$(sed -n "\${n}p" ${q(planFile)})`,
      'export FAKE_CLAUDE_SCRIPT',
      `exec ${q(fakeCliPath())} "$@"`,
      '',
    ].join('\n'),
  );
  chmodSync(script, 0o755);
  return {
    path: script,
    invocations: () => Number(readFileSync(counter, 'utf8').trim()),
  };
}

/** Runner settings for the fake CLI, recording its invocations to `logFile`. */
export function fakeCliSettings(logFile: string, over: Partial<RunnerSettings> = {}): RunnerSettings {
  return {
    claudePath: fakeCliPath(),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', FAKE_CLAUDE_LOG: logFile },
    maxLineBytes: 1024 * 1024,
    killGraceMs: 500,
    idleTimeoutMs: 0,
    timeoutMs: 30_000,
    stderrTailBytes: 4096,
    ...over,
  };
}
