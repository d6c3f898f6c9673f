// The CLI runs as the leader of its own process group (spawned detached), so a signal
// to the negative pid reaches its tool children too: a Bash tool's child otherwise
// outlives the CLI.

/** Signals the whole group; returns false when no process of the group is left. */
export function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw err;
  }
}

/** True while any process of the group exists. */
export function groupAlive(pgid: number): boolean {
  return signalGroup(pgid, 0);
}
