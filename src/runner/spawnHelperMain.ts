// The spawn helper process (see ./spawnHelper.ts): it starts CLI runs for the worker that
// forked it and hands each run's pipes back over the IPC channel, so the worker's event
// loop never waits for a fork. It stays small on purpose (node:child_process only): a
// fork's cost grows with the memory of the process that forks.
//
// Protocol (advanced serialization, one helper per worker process):
//   worker → helper  { t: 'spawn', id, file, args, cwd, env, stdin, fd3? }
//   helper → worker  { t: 'error', id, code, message }     the spawn failed; nothing runs
//                    { t: 'pipe', id, name, pid } + handle  stdout, stderr, then stdin if asked
//                    { t: 'exit', id, code, signal }
// Node keeps the order of messages sent with and without handles, so a run's pipes reach
// the worker before its exit.
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { STALE_LINK, staleLink } from './linkCheck.js';
import type { LinkCheck } from './spawnTypes.js';

export interface SpawnMessage {
  t: 'spawn';
  id: number;
  file: string;
  args: readonly string[];
  cwd: string;
  env: Readonly<Record<string, string>>;
  /** A pipe to the run's stdin (else /dev/null). */
  stdin: boolean;
  /** Written to the run's fd 3, then closed (bwrap reads its options there). */
  fd3?: Uint8Array | undefined;
  /** Checked right before the spawn (./linkCheck.ts). */
  linkCheck?: LinkCheck | undefined;
}

export type HelperMessage =
  | { t: 'error'; id: number; code: string | undefined; message: string }
  | { t: 'pipe'; id: number; name: 'stdout' | 'stderr' | 'stdin'; pid: number }
  | { t: 'exit'; id: number; code: number | null; signal: NodeJS.Signals | null };

const send = (message: HelperMessage, handle?: Socket): void => {
  process.send?.(message, handle);
};

/**
 * Node starts reading a child's stdout and stderr as soon as it makes them, and what it
 * reads before a handle is sent would be lost: stop reading at once (before this tick ends,
 * so nothing has been read), and let the worker read everything. False when this Node's
 * stream has no such handle (then the run is not handed over: see `start`).
 */
function holdReads(stream: Socket | null): boolean {
  const handle = (stream as unknown as { _handle?: { readStop?: () => number } } | null)?._handle;
  if (typeof handle?.readStop !== 'function') return false;
  handle.readStop();
  return true;
}

function start(m: SpawnMessage): void {
  const stale = staleLink(m.linkCheck);
  if (stale !== undefined) {
    send({ t: 'error', id: m.id, code: STALE_LINK, message: stale });
    return;
  }
  let child: ChildProcess;
  try {
    child = spawn(m.file, m.args, {
      cwd: m.cwd,
      env: m.env,
      stdio: [m.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', ...(m.fd3 ? (['pipe'] as const) : [])],
      // Its own session and process group, so signals reach tool children too.
      detached: true,
    });
  } catch (err) {
    // E2BIG (an argument over 128 KiB) is thrown, not emitted.
    send({ t: 'error', id: m.id, code: (err as NodeJS.ErrnoException).code, message: (err as Error).message });
    return;
  }
  const pid = child.pid;
  if (pid === undefined) {
    child.once('error', (err: NodeJS.ErrnoException) => send({ t: 'error', id: m.id, code: err.code, message: err.message }));
    return;
  }
  if (!holdReads(child.stdout as Socket | null) || !holdReads(child.stderr as Socket | null)) {
    // Output could be lost unseen: the run does not go ahead (fail closed).
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone
    }
    send({ t: 'error', id: m.id, code: 'ERR_AGENTQ_PIPES', message: 'this Node cannot hand a run’s pipes over unread (no readStop on the stream handle); set AGENTQ_CLI_SPAWN=direct' });
    return;
  }
  const fd3 = child.stdio[3] as Socket | null | undefined;
  if (m.fd3 && fd3) {
    fd3.on('error', () => undefined);
    fd3.end(m.fd3);
  }
  send({ t: 'pipe', id: m.id, name: 'stdout', pid }, child.stdout as Socket);
  send({ t: 'pipe', id: m.id, name: 'stderr', pid }, child.stderr as Socket);
  if (child.stdin) send({ t: 'pipe', id: m.id, name: 'stdin', pid }, child.stdin as Socket);
  child.once('exit', (code, signal) => send({ t: 'exit', id: m.id, code, signal }));
}

process.on('message', (m: SpawnMessage) => {
  if (m?.t === 'spawn') start(m);
});
// The worker is gone (exit, crash, kill -9): so is the helper. Sandboxed runs die with it
// (bwrap --die-with-parent); unsandboxed ones are the orphan sweep's, as before.
process.on('disconnect', () => process.exit(0));
