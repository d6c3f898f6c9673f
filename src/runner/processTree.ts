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
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';

/** Environment variable that marks every process of one run. */
export const RUN_MARKER_VAR = 'AGENTQ_RUN_ID';
/**
 * In every run's environment, sandboxed or not: its conversation's link
 * (src/worker/configLink.ts) as a digest (`linkMark`), so no host path enters a sandbox.
 */
export const CONVERSATION_LINK_VAR = 'AGENTQ_CONVERSATION_MARK';

/** The value of CONVERSATION_LINK_VAR for the conversation whose link is `link`. */
export function linkMark(link: string): string {
  return createHash('sha256').update(link).digest('hex').slice(0, 32);
}
/** The pid of the process that started the run (the worker), also in every run's environment. */
export const PARENT_PID_VAR = 'AGENTQ_PARENT_PID';

interface ProcEntry {
  pid: number;
  ppid: number;
  pgid: number;
  /** Start time in clock ticks since boot (stat field 22): a run's processes start after its CLI. */
  startTicks: number;
}

function readStat(pid: number): ProcEntry | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] === 'Z' || f[0] === 'X') return undefined;
    return { pid, ppid: Number(f[1]), pgid: Number(f[2]), startTicks: Number(f[19]) };
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

/** The last pid the kernel handed out in this pid namespace, if readable. */
function lastPid(): number | undefined {
  try {
    const n = Number(readFileSync('/proc/sys/kernel/ns_last_pid', 'latin1'));
    return Number.isInteger(n) && n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A test for "handed out at or after `firstPid`": Linux gives pids in increasing order
 * and wraps at pid_max, so since `firstPid` they lie in [firstPid, last] or, after a
 * wrap, outside (last, firstPid). Undefined when the order cannot be read.
 */
function allocatedSince(firstPid: number): ((pid: number) => boolean) | undefined {
  const last = lastPid();
  if (last === undefined) return undefined;
  return last >= firstPid ? (pid) => pid >= firstPid && pid <= last : (pid) => pid >= firstPid || pid <= last;
}

/** Live processes; with `include`, only the pids it accepts have their stat read. */
function listProcesses(include?: (pid: number) => boolean): ProcEntry[] | undefined {
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return undefined;
  }
  const out: ProcEntry[] = [];
  for (const name of names) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const pid = Number(name);
    if (include && !include(pid)) continue;
    const e = readStat(pid);
    if (e) out.push(e);
  }
  return out;
}

/**
 * Runs shorter than this look only at pids handed out since the CLI's: every process of
 * a run starts after its CLI, and in so short a time the pid space cannot wrap all the
 * way around to reuse older numbers. Longer runs read every process (a few ms).
 */
const PID_ORDER_TRUSTED_MS = 10_000;

export interface FindRunOptions {
  /** The CLI's start time in clock ticks since boot, when it may be gone already. */
  sinceTicks?: number;
  /** Date.now() when the CLI was spawned: a recent run lets the scan skip older pids. */
  spawnedAtMs?: number;
  /** signalRun only: leave the root and its process group out (a sandbox's bwrap). */
  spareRoot?: boolean;
  /**
   * signalRun only, not for SIGKILL: leave out every process whose command line holds this
   * word (the approval gate's hooks, GATE_PROCESS_TAG) and every fork not yet exec'd (a
   * hook being started), so no group-wide signal is sent.
   */
  spareTagged?: string;
}

function commandLine(pid: number): Buffer | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`);
  } catch {
    return undefined;
  }
}

function commandLineHas(pid: number, word: Buffer): boolean {
  return commandLine(pid)?.includes(word) === true;
}

/**
 * True while the process is still a copy of its parent: forked, not yet exec'd, so its
 * command line is its parent's. A hook the CLI is starting looks like this until its
 * exec, and only then carries the gate's tag.
 */
function isUnexecutedFork(pid: number): boolean {
  const ppid = readStat(pid)?.ppid;
  if (ppid === undefined || ppid <= 1) return false;
  const own = commandLine(pid);
  const parent = commandLine(ppid);
  return own !== undefined && own.length > 0 && parent !== undefined && own.equals(parent);
}

/** The pids of every live process of the run (see the header for what counts). */
export function findRunProcesses(rootPid: number, runId: string, options: FindRunOptions = {}): number[] {
  const recent = options.spawnedAtMs !== undefined && Date.now() - options.spawnedAtMs < PID_ORDER_TRUSTED_MS;
  const all = listProcesses(recent ? allocatedSince(rootPid) : undefined);
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
  // Reading every environ is the costly part: only processes started since the CLI can carry its marker.
  const since = all.find((e) => e.pid === rootPid)?.startTicks ?? options.sinceTicks ?? 0;
  for (const e of all) {
    if (found.has(e.pid) || e.pid === self) continue;
    if (e.pgid === rootPid || (e.startTicks >= since && hasMarker(e.pid, marker))) found.add(e.pid);
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
 * SIGKILLs the processes and process groups so that none of them sees another die first:
 * all are stopped, then all killed. A gate's hook killed before its CLI is a non-blocking
 * error, after which the CLI would run the call (docs/approvals.md); and in pid order the
 * hook comes first whenever pids wrapped around between the CLI's start and the hook's.
 */
function killTogether(pids: readonly number[], groups: readonly number[]): void {
  for (const signal of ['SIGSTOP', 'SIGKILL'] as const) {
    for (const group of groups) kill(-group, signal);
    for (const pid of pids) kill(pid, signal);
  }
}

function send(pids: readonly number[], groups: readonly number[], signal: NodeJS.Signals): void {
  if (signal === 'SIGKILL') return killTogether(pids, groups);
  for (const group of groups) kill(-group, signal);
  for (const pid of pids) kill(pid, signal);
}

/**
 * Signals the run: the CLI's process group and every process found for the run.
 * Returns how many processes were found besides the group signal.
 */
export function signalRun(rootPid: number, runId: string, signal: NodeJS.Signals, options: FindRunOptions = {}): number {
  const pids = findRunProcesses(rootPid, runId, options);
  const tag = options.spareTagged !== undefined && signal !== 'SIGKILL' ? Buffer.from(options.spareTagged) : undefined;
  if (options.spareRoot || tag) {
    const group = options.spareRoot ? new Set(pids.filter((p) => readStat(p)?.pgid === rootPid)) : new Set<number>();
    // A fork not yet exec'd may be about to become a tagged hook: spared too (SIGKILL ends it with the rest).
    const spared = (p: number) => tag !== undefined && (commandLineHas(p, tag) || isUnexecutedFork(p));
    const targets = pids.filter((p) => !(options.spareRoot && (p === rootPid || group.has(p))) && !spared(p));
    send(targets, [], signal);
    return targets.length;
  }
  send(pids, [rootPid], signal);
  return pids.length;
}

/** True while the process exists and is not a zombie. */
export function isLive(pid: number): boolean {
  return readStat(pid) !== undefined;
}

/** When process `pid` started, in clock ticks after boot; undefined when it is not running. */
export function startTicks(pid: number): number | undefined {
  return readStat(pid)?.startTicks;
}

/**
 * Kills what is left of runs whose worker died without stopping them (kill -9, OOM): a
 * run's processes are in sessions of their own, so nothing else ends them, and a retry on
 * this machine would share the conversation's directory with them. A process belongs to
 * such a run when its environment has a run marker and the parent pid it names is gone.
 * Returns the pids signalled.
 */
export function sweepOrphanedRuns(): number[] {
  const parentPattern = new RegExp(String.raw`(?:^|\x00)${PARENT_PID_VAR}=(\d+)(?:\x00|$)`);
  const runMarker = Buffer.from(`${RUN_MARKER_VAR}=`);
  return killWhereEnv((env) => {
    if (env.indexOf(runMarker) === -1) return false;
    const parent = parentPattern.exec(env.toString('latin1'))?.[1];
    return parent !== undefined && !isLive(Number(parent));
  });
}

const NUL = Buffer.from([0]);

/**
 * Kills (SIGKILL, together) every process but this one whose environment holds exactly
 * `name=value`, or any of the `more` pairs (every child inherits them, as the run marker).
 * Returns the pids signalled.
 */
export function killProcessesWithEnv(name: string, value: string, ...more: readonly (readonly [string, string])[]): number[] {
  // NUL-delimited on both sides, so a value that is a prefix of another does not match it.
  const entries = [[name, value] as const, ...more].map(([n, v]) => Buffer.from(`\0${n}=${v}\0`));
  return killWhereEnv((env) => {
    const delimited = Buffer.concat([NUL, env, NUL]);
    return entries.some((entry) => delimited.indexOf(entry) !== -1);
  });
}

/** SIGKILLs (together) every other process whose environment (readable to us) `matches`; returns their pids. */
function killWhereEnv(matches: (env: Buffer) => boolean): number[] {
  const all = listProcesses();
  if (!all) return [];
  const found: number[] = [];
  for (const e of all) {
    if (e.pid === process.pid) continue;
    let env: Buffer;
    try {
      env = readFileSync(`/proc/${e.pid}/environ`);
    } catch {
      continue;
    }
    if (matches(env)) found.push(e.pid);
  }
  killTogether(found, []);
  return found;
}

/** The start time (clock ticks since boot) of a live process, to bound later scans. */
export function processStartTicks(pid: number): number | undefined {
  return readStat(pid)?.startTicks;
}
