// Finding and signalling every process that belongs to one CLI run.
//
// The CLI is spawned detached (its own session and process group), but that is not
// enough: the CLI's Bash tool starts each command in a NEW session (measured with
// 2.1.197: the tool's bash has sid = pgid = its own pid), so a signal to the CLI's group
// misses it, and once the CLI dies the tool is reparented and its parent link is gone.
// So a run is every process that (a) is in the CLI's process group, (b) descends from
// the CLI while it lives, or (c) carries the run's marker in its environment, which
// every child inherits and which survives reparenting. (c) needs a readable /proc
// (Linux, same user or root); elsewhere (a) is what is left.
import { readdirSync, readFileSync } from 'node:fs';

/** Environment variable that marks every process of one run. */
export const RUN_MARKER_VAR = 'AGENTQ_RUN_ID';

interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
}

function readStat(pid: number): ProcEntry | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return undefined;
    return { pid, ppid: Number(f[1]), pgid: Number(f[2]) };
  } catch {
    return undefined;
  }
}

/** True when the process's environment holds the marker (a unique run id, so a substring match is exact). */
function hasMarker(pid: number, marker: Buffer): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`).indexOf(marker) !== -1;
  } catch {
    return false;
  }
}

function listProcesses(): ProcEntry[] | undefined {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const out: ProcEntry[] = [];
  for (const name of names) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const e = readStat(Number(name));
    if (e) out.push(e);
  }
  return out;
}

/** The pids of every live process of the run (see the header for what counts). */
export function findRunProcesses(rootPid: number, runId: string): number[] {
  const all = listProcesses();
  if (!all) return [];
  const self = process.pid;
  const marker = Buffer.from(`${RUN_MARKER_VAR}=${runId}`);
  const children = new Map<number, number[]>();
  for (const e of all) {
    const list = children.get(e.ppid) ?? [];
    list.push(e.pid);
    children.set(e.ppid, list);
  }
  const found = new Set<number>();
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    if (found.has(pid)) continue;
    found.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  for (const e of all) {
    if (found.has(e.pid) || e.pid === self) continue;
    if (e.pgid === rootPid || hasMarker(e.pid, marker)) found.add(e.pid);
  }
  found.delete(self);
  const live = new Set(all.map((e) => e.pid));
  return [...found].filter((pid) => live.has(pid));
}

function kill(target: number, signal: NodeJS.Signals): void {
  try {
    process.kill(target, signal);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
  }
}

/**
 * Signals the run: the CLI's process group and every process found for the run.
 * Returns how many processes were found besides the group signal.
 */
export function signalRun(rootPid: number, runId: string, signal: NodeJS.Signals): number {
  const pids = findRunProcesses(rootPid, runId);
  kill(-rootPid, signal);
  for (const pid of pids) kill(pid, signal);
  return pids.length;
}
