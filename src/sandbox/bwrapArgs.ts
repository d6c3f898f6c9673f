// bubblewrap's argv for one sandboxed CLI run. Only paths and flags go here; the
// environment is passed by the spawn (never secrets in argv, which `ps` shows).
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import { SANDBOX_API_PORT, SANDBOX_API_SOCKET_DIR, API_SOCKET_NAME, SANDBOX_USER, SANDBOX_WORKSPACE } from './layout.js';

/** Top-level system paths: bound read-only when directories, recreated when symlinks (merged /usr). */
const SYSTEM_PATHS = ['/usr', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** The few /etc entries programs need; everything else of /etc (secrets, configs) stays out. */
const ETC_PATHS = [
  '/etc/hosts',
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

/** The bwrap flags (up to and including `--`) that isolate one run. */
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
  ];
  for (const dir of l.readOnly) args.push('--ro-bind', dir, dir);
  args.push('--ro-bind', l.socketDir, SANDBOX_API_SOCKET_DIR);
  args.push('--bind', l.workspace, SANDBOX_WORKSPACE);
  for (const m of l.writable) args.push('--bind', m.host, m.inside);
  // Everything not bound above (the root itself, the mount points bwrap made) is read-only.
  args.push('--remount-ro', '/', '--chdir', SANDBOX_WORKSPACE, '--');
  return args;
}

/**
 * The command run inside: socat forwards the loopback API port to the mounted socket;
 * the CLI starts once socat listens (read from /proc/net/tcp, bounded), so its first
 * request cannot be refused. `exec` makes the CLI the sandbox's main process.
 */
export function innerCommand(socatPath: string, cliPath: string, cliArgs: readonly string[]): string[] {
  const hexPort = SANDBOX_API_PORT.toString(16).toUpperCase().padStart(4, '0');
  const socket = path.posix.join(SANDBOX_API_SOCKET_DIR, API_SOCKET_NAME);
  const script = [
    `"$AGENTQ_SOCAT" TCP-LISTEN:${SANDBOX_API_PORT},bind=127.0.0.1,fork,reuseaddr UNIX-CONNECT:${socket} </dev/null >/dev/null 2>&1 &`,
    'i=0',
    `until grep -q ' 0100007F:${hexPort} 00000000:0000 0A' /proc/net/tcp; do`,
    '  i=$((i+1)); if [ "$i" -gt 5000 ]; then echo "agentq sandbox: socat did not start" >&2; exit 125; fi',
    'done',
    'exec "$@"',
  ].join('\n');
  return ['/bin/sh', '-c', script.replace('"$AGENTQ_SOCAT"', shellQuote(socatPath)), 'agentq-sandbox', cliPath, ...cliArgs];
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}
