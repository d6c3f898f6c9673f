// bubblewrap's argv for one sandboxed CLI run. Only paths and flags go here; the
// environment is passed by the spawn (never secrets in argv, which `ps` shows).
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { SANDBOX_API_PORT, SANDBOX_API_SOCKET_DIR, API_SOCKET_NAME, SANDBOX_USER, SANDBOX_WORKSPACE } from './layout.js';

/** Top-level system paths: bound read-only when directories, recreated when symlinks (merged /usr). */
const SYSTEM_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** The few /etc entries programs need; everything else of /etc (secrets, configs) stays out. */
const ETC_PATHS = [
  '/etc/nsswitch.conf',
  '/etc/ld.so.cache',
  '/etc/ld.so.conf',
  '/etc/ld.so.conf.d',
  '/etc/localtime',
  '/etc/alternatives',
  '/etc/ssl',
  '/etc/ca-certificates',
  '/etc/pki',
];

/** A writable bind: host path → path inside. */
export interface Mount {
  host: string;
  inside: string;
}

export interface BwrapLayout {
  /** The conversation's workspace on the host (mounted at SANDBOX_WORKSPACE, the cwd). */
  workspace: string;
  /** Other writable binds: the run's HOME/config dir and its private /tmp, extra dirs. */
  writable: readonly Mount[];
  /** Host directories visible read-only at the same path (the CLI's own directory). */
  readOnly: readonly string[];
  /** Host directory with the API socket (mounted read-only at SANDBOX_API_SOCKET_DIR). */
  socketDir: string;
  /** Host files for /etc/passwd and /etc/group naming the agent user. */
  passwdFile: string;
  groupFile: string;
  /** Host file for /etc/hosts: localhost, and each allowed host at its private loopback address. */
  hostsFile: string;
}

function systemArgs(): string[] {
  const args: string[] = [];
  for (const p of SYSTEM_PATHS) {
    let st;
    try {
      st = lstatSync(p);
    } catch {
      continue;
    }
    if (st.isSymbolicLink()) args.push('--symlink', readlinkSync(p), p);
    else if (st.isDirectory()) args.push('--ro-bind', p, p);
  }
  for (const p of ETC_PATHS) {
    if (!existsSync(p)) continue;
    // /etc/localtime is a symlink into /usr/share/zoneinfo: kept a symlink, the runtime
    // reads the zone's name from it; bound as a plain file, the real CLI scans the whole
    // zoneinfo tree to name it (~0.5 s per run measured here).
    if (p === '/etc/localtime' && lstatSync(p).isSymbolicLink()) args.push('--symlink', readlinkSync(p), p);
    else args.push('--ro-bind', p, p);
  }
  return args;
}

/** The bwrap options that isolate one run (given to bwrap through `--args <fd>`, so no host path is in its argv). */
export function buildBwrapArgs(l: BwrapLayout): string[] {
  const args = [
    // An unprivileged user with no capabilities, unable to make namespaces of its own:
    // started by root without these, the sandbox would keep root's capabilities.
    '--unshare-user', '--uid', String(SANDBOX_USER.uid), '--gid', String(SANDBOX_USER.gid),
    '--disable-userns', '--cap-drop', 'ALL',
    // No view of the worker's processes, network (only its own loopback), IPC or hostname.
    '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts', '--hostname', 'agentq-sandbox',
    '--die-with-parent', '--new-session',
    '--proc', '/proc', '--dev', '/dev',
    ...systemArgs(),
    '--ro-bind', l.passwdFile, '/etc/passwd',
    '--ro-bind', l.groupFile, '/etc/group',
    '--ro-bind', l.hostsFile, '/etc/hosts',
  ];
  // Parents before children: a later mount hides what an earlier one put below it, so the
  // private /tmp must come before a read-only CLI directory that lives under /tmp (a
  // checkout in /tmp, say), not after it.
  const mounts = [
    ...l.readOnly.map((dir) => ({ flag: '--ro-bind', host: dir, inside: dir })),
    { flag: '--ro-bind', host: l.socketDir, inside: SANDBOX_API_SOCKET_DIR },
    { flag: '--bind', host: l.workspace, inside: SANDBOX_WORKSPACE },
    ...l.writable.map((m) => ({ flag: '--bind', host: m.host, inside: m.inside })),
  ];
  const depth = (p: string) => p.split('/').filter(Boolean).length;
  for (const m of [...mounts].sort((a, b) => depth(a.inside) - depth(b.inside))) args.push(m.flag, m.host, m.inside);
  // Everything not bound above (the root itself, the mount points bwrap made) is read-only.
  args.push('--remount-ro', '/', '--chdir', SANDBOX_WORKSPACE);
  return args;
}

/** A loopback listener inside the sandbox, forwarded by socat to a mounted unix socket. */
export interface InnerListener {
  /** 127.x.y.z address inside the sandbox. */
  ip: string;
  port: number;
  /** The socket's path inside the sandbox. */
  socket: string;
}

/** The API listener every sandbox has: 127.0.0.1:SANDBOX_API_PORT → the API forwarder. */
export const API_LISTENER: InnerListener = {
  ip: '127.0.0.1',
  port: SANDBOX_API_PORT,
  socket: path.posix.join(SANDBOX_API_SOCKET_DIR, API_SOCKET_NAME),
};

/** How /proc/net/tcp writes a listening IPv4 address: little-endian hex address, hex port, state 0A. */
function procNetTcpLine(l: InnerListener): string {
  const ip = l.ip
    .split('.')
    .map((o) => Number(o).toString(16).toUpperCase().padStart(2, '0'))
    .reverse()
    .join('');
  return ` ${ip}:${l.port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A`;
}

/**
 * The command run inside: one socat per listener (the API, and each allowed host) forwards
 * a loopback address to a mounted socket; the CLI starts once they all listen (read from
 * /proc/net/tcp, bounded), so its first request cannot be refused. `exec` makes the CLI the
 * sandbox's main process.
 */
export function innerCommand(
  socatPath: string,
  cliPath: string,
  cliArgs: readonly string[],
  listeners: readonly InnerListener[] = [API_LISTENER],
): string[] {
  const socat = shellQuote(socatPath);
  const script = [
    ...listeners.map((l) => `${socat} TCP-LISTEN:${l.port},bind=${l.ip},fork,reuseaddr UNIX-CONNECT:${l.socket} </dev/null >/dev/null 2>&1 &`),
    'i=0',
    `until ${listeners.map((l) => `grep -q '${procNetTcpLine(l)}' /proc/net/tcp`).join(' && ')}; do`,
    '  i=$((i+1)); if [ "$i" -gt 5000 ]; then echo "agentq sandbox: socat did not start" >&2; exit 125; fi',
    'done',
    'exec "$@"',
  ].join('\n');
  return ['/bin/sh', '-c', script, 'agentq-sandbox', cliPath, ...cliArgs];
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
