// Turns one CLI spawn (file, argv, env, cwd) into the same spawn inside bubblewrap, and
// starts the run's API forwarder. The caller spawns what this returns and calls
// `close()` once the run's processes are gone.
import { closeSync, existsSync, mkdtempSync, mkdirSync, openSync, readSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startApiProxy } from './apiProxy.js';
import { egressProxyFor } from './egressProxy.js';
import { API_LISTENER, buildBwrapArgs, innerCommand, type InnerListener, type Mount } from './bwrapArgs.js';
import { startTcpForwarder, type TcpForwarder } from './tcpForwarder.js';
import {
  API_SOCKET_NAME,
  SANDBOX_API_PORT,
  SANDBOX_API_SOCKET_DIR,
  SANDBOX_CONFIG_DIR,
  SANDBOX_HOME,
  SANDBOX_TMP,
  SANDBOX_USER,
} from './layout.js';
import { splitSandboxEnv } from './sandboxEnv.js';
import type { SandboxSettings } from './settings.js';

/** Where the Messages API is when ANTHROPIC_BASE_URL is unset. */
export const DEFAULT_API_BASE_URL = 'https://api.anthropic.com';
export { DUMMY_API_KEY } from './sandboxEnv.js';

export interface UnsandboxedSpawn {
  file: string;
  args: readonly string[];
  env: Readonly<Record<string, string>>;
  /** The conversation's workspace (host path). */
  cwd: string;
  /** The run's CLAUDE_CONFIG_DIR, HOME (if separate) and tmp dir on the host. */
  configDir: string;
  homeDir: string | undefined;
  tmpDir: string;
  /** Extra host directories the run may write (`--add-dir`), bound at the same path. */
  addDirs: readonly string[];
}

export interface SandboxedSpawn {
  file: string;
  /** `bwrap --args 3 -- <command>`: the mounts (host paths) go in through fd 3, not argv, which the agent can read as /proc/1/cmdline. */
  args: string[];
  /** What to give the spawn as its fd 3 (NUL-separated bwrap options). */
  fd3: Uint8Array;
  env: Record<string, string>;
  /** Stops the forwarder and removes the run's socket and /etc files. Idempotent. */
  close(): void;
}

/** A script (`#!`) runs under an interpreter that must be visible too, e.g. node for the fake CLI. */
function interpreterDirs(cliPath: string): string[] {
  // Only the first bytes: the real CLI is a ~200 MB binary (reading it whole cost ~0.3 s a call).
  let head = '';
  try {
    const fd = openSync(cliPath, 'r');
    try {
      const buf = Buffer.alloc(256);
      head = buf.subarray(0, readSync(fd, buf, 0, buf.length, 0)).toString('latin1');
    } finally {
      closeSync(fd);
    }
  } catch {
    return [];
  }
  if (!head.startsWith('#!')) return [];
  const line = head.slice(2).split('\n')[0]!.trim().split(/\s+/);
  const interp = line[0] === '/usr/bin/env' && line[1] ? line[1] : line[0];
  if (!interp) return [];
  const found = interp.startsWith('/') ? interp : process.execPath;
  return [path.dirname(realpathSync(found))];
}

/**
 * The directories a CLI needs read-only: its own, and for a script the top folder of its
 * package that holds it (the fake CLI imports its siblings under dist/), never the package
 * root itself.
 */
function cliDirs(cliPath: string, isScript: boolean): string[] {
  const dirs = [path.dirname(cliPath)];
  if (!isScript) return dirs;
  for (let d = path.dirname(cliPath); path.dirname(d) !== d; d = path.dirname(d)) {
    if (existsSync(path.join(d, 'package.json'))) {
      const top = path.relative(d, cliPath).split(path.sep)[0]!;
      if (top !== path.basename(cliPath)) dirs.push(path.join(d, top));
      break;
    }
  }
  return dirs;
}

export function wrapInSandbox(s: SandboxSettings, run: UnsandboxedSpawn): SandboxedSpawn {
  const cliPath = realpathSync(run.file);
  // A short path: unix socket paths are limited to 108 bytes.
  const hostDir = mkdtempSync(path.join(os.tmpdir(), 'agentq-sbx-'));
  let proxy: { close(): void } | undefined;
  const forwarders: TcpForwarder[] = [];
  const close = () => {
    proxy?.close();
    proxy = undefined;
    for (const f of forwarders.splice(0)) f.close();
    rmSync(hostDir, { recursive: true, force: true });
  };
  try {
    const socketDir = path.join(hostDir, 'sock');
    mkdirSync(socketDir);
    const passwdFile = path.join(hostDir, 'passwd');
    const groupFile = path.join(hostDir, 'group');
    const { name, uid, gid } = SANDBOX_USER;
    writeFileSync(passwdFile, `${name}:x:${uid}:${gid}:agentq agent:${SANDBOX_HOME}:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n`);
    writeFileSync(groupFile, `${name}:x:${gid}:\nnogroup:x:65534:\n`);
    // Each allowed host gets its own loopback address inside (so two hosts may share a
    // port), named in /etc/hosts before the defaults, and a forwarder to the real one.
    const listeners: InnerListener[] = [API_LISTENER];
    const hostLines: string[] = [];
    (s.allowHosts ?? []).forEach((h, i) => {
      const sock = `tcp-${i}.sock`;
      forwarders.push(startTcpForwarder({ socketPath: path.join(socketDir, sock), host: h.host, port: h.port, egressProxy: egressProxyFor('tcp', h.host, h.port, run.env) }));
      const ip = `127.0.${Math.floor((i + 2) / 256)}.${(i + 2) % 256}`;
      listeners.push({ ip, port: h.port, socket: path.posix.join(SANDBOX_API_SOCKET_DIR, sock) });
      hostLines.push(`${ip} ${h.host}`);
    });
    const hostsFile = path.join(hostDir, 'hosts');
    writeFileSync(hostsFile, [...hostLines, '127.0.0.1 localhost', '::1 localhost', ''].join('\n'));

    const { inside: env, credentials } = splitSandboxEnv(run.env, s.passEnv);
    const upstream = new URL(run.env.ANTHROPIC_BASE_URL ?? DEFAULT_API_BASE_URL);
    proxy = startApiProxy({
      socketPath: path.join(socketDir, API_SOCKET_NAME),
      upstream: upstream.toString(),
      credentials,
      egressProxy: egressProxyFor(
        upstream.protocol === 'https:' ? 'https' : 'http',
        upstream.hostname,
        Number(upstream.port || (upstream.protocol === 'https:' ? 443 : 80)),
        run.env,
      ),
    });
    env.ANTHROPIC_BASE_URL = `http://127.0.0.1:${SANDBOX_API_PORT}`;
    const configInside = run.homeDir === undefined ? SANDBOX_HOME : SANDBOX_CONFIG_DIR;
    env.HOME = SANDBOX_HOME;
    env.CLAUDE_CONFIG_DIR = configInside;
    env.TMPDIR = SANDBOX_TMP;
    env.CLAUDE_CODE_TMPDIR = SANDBOX_TMP;
    env.USER = name;
    env.LOGNAME = name;
    // Telemetry, error reports and update checks cannot leave the sandbox (only /v1/* is
    // forwarded); left on, the CLI waits on their DNS lookups: +2.5 s per run measured here.
    env.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC = '1';

    const writable: Mount[] = [
      { host: run.configDir, inside: configInside },
      ...(run.homeDir === undefined ? [] : [{ host: run.homeDir, inside: SANDBOX_HOME }]),
      { host: run.tmpDir, inside: SANDBOX_TMP },
      ...run.addDirs.map((d) => ({ host: d, inside: d })),
    ];
    // The CLI's first bytes are read once: a script needs its interpreter and package too.
    const interpreter = interpreterDirs(cliPath);
    // Node, for the approval gate's hook (src/runner/approvalGate.ts), which the CLI starts inside.
    const gateRuntime = path.dirname(process.execPath);
    const readOnly = [...new Set([...cliDirs(cliPath, interpreter.length > 0), ...interpreter, path.dirname(s.socatPath), gateRuntime])].filter(
      (d) => !d.startsWith('/usr/'),
    );
    // A script's interpreter (`#!/usr/bin/env node`) is looked up on PATH.
    env.PATH = [...interpreter.filter((d) => !env.PATH!.split(':').includes(d)), env.PATH].join(':');
    const options = buildBwrapArgs({ workspace: run.cwd, writable, readOnly, socketDir, passwdFile, groupFile, hostsFile });
    const fd3 = new TextEncoder().encode(options.map((a) => `${a}\0`).join(''));
    const args = ['--args', '3', '--', ...innerCommand(s.socatPath, cliPath, run.args, listeners)];
    return { file: s.bwrapPath, args, fd3, env, close };
  } catch (err) {
    close();
    throw err;
  }
}
