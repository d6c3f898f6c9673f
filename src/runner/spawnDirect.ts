// Starting a CLI run from the worker's own process, with execa (`AGENTQ_CLI_SPAWN=direct`).
// The event loop waits for the fork and exec: see ./spawnHelper.ts for the default.
import { execa } from 'execa';
import { STALE_LINK, staleLink } from './linkCheck.js';
import type { RunExit, SpawnedRun, SpawnRequest } from './spawnTypes.js';

export function spawnDirect(request: SpawnRequest): SpawnedRun {
  const stale = staleLink(request.linkCheck);
  if (stale !== undefined) {
    const error = Object.assign(new Error(stale), { code: STALE_LINK });
    return { pid: undefined, stdin: null, stdout: null, stderr: null, exited: Promise.resolve({ code: null, signal: null, error }), release: () => undefined };
  }
  const child = execa(request.file, request.args, {
    cwd: request.cwd,
    env: request.env,
    extendEnv: false,
    stdio: [request.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe', ...(request.fd3 ? [request.fd3] : [])],
    // Its own session and process group, so signals reach tool children too.
    detached: true,
    buffer: false,
    reject: false,
    forceKillAfterDelay: false,
  });
  // execa's own promise settles on exit; the runner observes the ChildProcess events
  // directly, but that promise must not be left unhandled.
  child.catch(() => undefined);

  const exited = new Promise<RunExit>((resolve) => {
    child.once('exit', (code, signal) => resolve({ code, signal }));
    child.once('error', (error) => {
      if (child.pid === undefined) resolve({ code: null, signal: null, error });
    });
    // A spawn the kernel refused outright (E2BIG: an argument over 128 KiB) emits no event
    // at all: execa only settles its own promise, with the error's code.
    if (child.pid === undefined) {
      void child.then((r: { code?: string; message?: string; cause?: unknown }) => {
        const error = r.cause instanceof Error ? r.cause : Object.assign(new Error(r.message ?? 'spawn failed'), { code: r.code });
        resolve({ code: null, signal: null, error });
      });
    }
  });
  return {
    pid: child.pid,
    stdin: child.stdin,
    stdout: child.stdout,
    stderr: child.stderr,
    exited,
    release: () => undefined,
  };
}
