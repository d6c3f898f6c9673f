// Resource limits for one CLI run with Linux control groups: memory (the OOM killer acts
// inside the run's group only), process count (a fork bomb in a Bash tool gets EAGAIN)
// and CPU (a share of cores). Each run gets its own group under the worker's own group;
// the CLI joins it before it executes (a tiny /bin/sh prelude writes its own pid into
// the group, then execs), so nothing the run starts is ever outside. cgroup v1 (one
// hierarchy per controller) and v2 (unified) are both handled; where the controllers
// cannot be used the worker refuses to start rather than run without the limits asked for.
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CgroupsUnavailableError } from '../errors.js';

export interface RunLimits {
  /** Memory of the run's processes together, in bytes (swap not allowed beyond it). 0 = no limit. */
  memoryMaxBytes: number;
  /** Processes and threads of the run together. 0 = no limit. */
  pidsMax: number;
  /** CPU time as a number of cores (1.5 = one and a half). 0 = no limit. */
  cpuMax: number;
}

export function hasLimits(l: RunLimits): boolean {
  return l.memoryMaxBytes > 0 || l.pidsMax > 0 || l.cpuMax > 0;
}

type Controller = 'memory' | 'pids' | 'cpu';

/** Where the run groups go, found once per worker. */
export type CgroupHost =
  | { version: 1; dirs: Partial<Record<Controller, string>> }
  | { version: 2; parent: string };

/** Where the kernel's files are; tests point these at a directory of their own. */
export interface CgroupFs {
  mountinfo: string;
  selfCgroup: string;
}

const SYSTEM_FS: CgroupFs = { mountinfo: '/proc/self/mountinfo', selfCgroup: '/proc/self/cgroup' };
const CPU_PERIOD_US = 100_000;
/** The v2 group that holds the worker's own processes once controllers are delegated below its group. */
const V2_WORKER_LEAF = 'agentq-worker';
const V2_RUNS = 'agentq-runs';

function needed(l: RunLimits): Controller[] {
  const c: Controller[] = [];
  if (l.memoryMaxBytes > 0) c.push('memory');
  if (l.pidsMax > 0) c.push('pids');
  if (l.cpuMax > 0) c.push('cpu');
  return c;
}

interface Mount {
  root: string;
  point: string;
  fsType: string;
  superOptions: string[];
}

function mounts(fs: CgroupFs): Mount[] {
  return readFileSync(fs.mountinfo, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => {
      const [left = '', right = ''] = line.split(' - ');
      const f = left.split(' ');
      const r = right.split(' ');
      return { root: f[3] ?? '/', point: f[4] ?? '', fsType: r[0] ?? '', superOptions: (r[2] ?? '').split(',') };
    })
    .filter((m) => m.fsType === 'cgroup' || m.fsType === 'cgroup2');
}

/** The directory of a group path within a mount whose own root may be a subtree. */
function inMount(m: Mount, groupPath: string): string {
  const rel = m.root === '/' ? groupPath : groupPath.startsWith(m.root) ? groupPath.slice(m.root.length) : groupPath;
  return path.join(m.point, rel);
}

/**
 * Finds where run groups can be made for these limits and checks it by creating and
 * removing a probe group. Throws CgroupsUnavailableError saying what is missing.
 */
export function probeCgroups(limits: RunLimits, fs: CgroupFs = SYSTEM_FS): CgroupHost {
  const want = needed(limits);
  const ms = mounts(fs);
  const self = readFileSync(fs.selfCgroup, 'utf8').split('\n').filter(Boolean);
  const v1 = new Map<string, string>();
  let v2Path: string | undefined;
  for (const line of self) {
    const [, controllers = '', p = '/'] = line.split(':');
    if (controllers === '') v2Path = p;
    else for (const c of controllers.split(',')) v1.set(c, p);
  }
  // v1: every controller asked for has a hierarchy of its own.
  const dirs: Partial<Record<Controller, string>> = {};
  for (const c of want) {
    const m = ms.find((x) => x.fsType === 'cgroup' && x.superOptions.includes(c));
    const own = v1.get(c);
    if (m && own !== undefined) dirs[c] = inMount(m, own);
  }
  if (want.every((c) => dirs[c] !== undefined)) {
    const host: CgroupHost = { version: 1, dirs };
    checkByProbe(host, limits);
    return host;
  }
  const unified = ms.find((m) => m.fsType === 'cgroup2');
  if (unified && v2Path !== undefined) {
    const own = inMount(unified, v2Path);
    const available = readOr(path.join(own, 'cgroup.controllers'), '').split(/\s+/);
    const missing = want.filter((c) => !available.includes(c));
    if (missing.length > 0) {
      throw new CgroupsUnavailableError(`cgroup v2 group ${own} does not offer the ${missing.join(', ')} controller(s) (delegate them to the worker's group)`);
    }
    const host: CgroupHost = { version: 2, parent: delegateV2(own, want) };
    checkByProbe(host, limits);
    return host;
  }
  throw new CgroupsUnavailableError(`no cgroup hierarchy with the ${want.join(', ')} controller(s) is mounted`);
}

/**
 * v2 lets a group hand controllers to its children only while it holds no processes
 * itself (except the root). The worker's group is made an inner node: its processes move
 * to a leaf `agentq-worker`, and run groups go under `agentq-runs`.
 */
function delegateV2(own: string, want: Controller[]): string {
  const enable = want.map((c) => `+${c}`).join(' ');
  const runs = path.join(own, V2_RUNS);
  try {
    writeFileSync(path.join(own, 'cgroup.subtree_control'), enable);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EBUSY') throw unavailable(err, own);
    const leaf = path.join(own, V2_WORKER_LEAF);
    try {
      mkdirSync(leaf, { recursive: true });
      for (const pid of readOr(path.join(own, 'cgroup.procs'), '').split('\n').filter(Boolean)) {
        try {
          writeFileSync(path.join(leaf, 'cgroup.procs'), pid);
        } catch {
          // A process that exited meanwhile, or a kernel thread: nothing to move.
        }
      }
      writeFileSync(path.join(own, 'cgroup.subtree_control'), enable);
    } catch (inner) {
      throw unavailable(inner, own);
    }
  }
  try {
    mkdirSync(runs, { recursive: true });
    writeFileSync(path.join(runs, 'cgroup.subtree_control'), enable);
  } catch (err) {
    throw unavailable(err, runs);
  }
  return runs;
}

function unavailable(err: unknown, where: string): CgroupsUnavailableError {
  return new CgroupsUnavailableError(`cannot set up run groups under ${where}: ${(err as Error).message}`, { cause: err });
}

function checkByProbe(host: CgroupHost, limits: RunLimits): void {
  let probe: RunCgroup | undefined;
  try {
    probe = RunCgroup.create(host, `probe-${process.pid}`, limits);
  } catch (err) {
    throw err instanceof CgroupsUnavailableError ? err : unavailable(err, host.version === 1 ? Object.values(host.dirs).join(', ') : host.parent);
  } finally {
    probe?.remove();
  }
}

function readOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return fallback;
  }
}

/** The prelude that puts the CLI in its group before it runs: `sh -c PRELUDE agentq-cgroup N file... cli args...`. */
const PRELUDE = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 125; shift; n=$((n-1)); done; exec "$@"';

/** One run's group (one per controller with v1). */
export class RunCgroup {
  private constructor(
    private readonly host: CgroupHost,
    /** The group directories, one per hierarchy. */
    readonly dirs: string[],
  ) {}

  static create(host: CgroupHost, runId: string, limits: RunLimits): RunCgroup {
    // The worker's pid in the name: a sweep removes only groups of workers that are gone.
    const name = `agentq-run-${process.pid}-${runId}`;
    if (host.version === 2) {
      const dir = path.join(host.parent, name);
      mkdirSync(dir);
      const group = new RunCgroup(host, [dir]);
      try {
        if (limits.memoryMaxBytes > 0) {
          writeFileSync(path.join(dir, 'memory.max'), String(limits.memoryMaxBytes));
          if (existsSync(path.join(dir, 'memory.swap.max'))) writeFileSync(path.join(dir, 'memory.swap.max'), '0');
        }
        if (limits.pidsMax > 0) writeFileSync(path.join(dir, 'pids.max'), String(limits.pidsMax));
        if (limits.cpuMax > 0) writeFileSync(path.join(dir, 'cpu.max'), `${Math.round(limits.cpuMax * CPU_PERIOD_US)} ${CPU_PERIOD_US}`);
      } catch (err) {
        group.remove();
        throw err;
      }
      return group;
    }
    const dirs: string[] = [];
    const group = new RunCgroup(host, dirs);
    try {
      // Only the hierarchies of the limits set (writing 0 as a v1 CPU quota is invalid).
      for (const controller of needed(limits)) {
        const parent = host.dirs[controller];
        if (parent === undefined) throw new CgroupsUnavailableError(`no ${controller} hierarchy was found when the worker started`);
        const dir = path.join(parent, name);
        mkdirSync(dir);
        dirs.push(dir);
        if (controller === 'memory') {
          writeFileSync(path.join(dir, 'memory.limit_in_bytes'), String(limits.memoryMaxBytes));
          // With swap accounting, the same bound on memory + swap (else swap would stretch it).
          const memsw = path.join(dir, 'memory.memsw.limit_in_bytes');
          if (existsSync(memsw)) writeFileSync(memsw, String(limits.memoryMaxBytes));
        }
        if (controller === 'pids') writeFileSync(path.join(dir, 'pids.max'), String(limits.pidsMax));
        if (controller === 'cpu') {
          writeFileSync(path.join(dir, 'cpu.cfs_period_us'), String(CPU_PERIOD_US));
          writeFileSync(path.join(dir, 'cpu.cfs_quota_us'), String(Math.round(limits.cpuMax * CPU_PERIOD_US)));
        }
      }
    } catch (err) {
      group.remove();
      throw err;
    }
    return group;
  }

  /** The spawn that joins the group first, then execs `file args`. */
  wrap(file: string, args: readonly string[]): { file: string; args: string[] } {
    const procs = this.dirs.map((d) => path.join(d, 'cgroup.procs'));
    return { file: '/bin/sh', args: ['-c', PRELUDE, 'agentq-cgroup', String(procs.length), ...procs, file, ...args] };
  }

  /** Every process in the group now (with v1, the union over the hierarchies). */
  pids(): number[] {
    const all = new Set<number>();
    for (const d of this.dirs) for (const p of readOr(path.join(d, 'cgroup.procs'), '').split('\n').filter(Boolean)) all.add(Number(p));
    return [...all];
  }

  /** How many times the kernel's OOM killer acted in the group (0 without a memory limit). */
  oomKills(): number {
    for (const d of this.dirs) {
      const text = this.host.version === 2 ? readOr(path.join(d, 'memory.events'), '') : readOr(path.join(d, 'memory.oom_control'), '');
      const m = /^oom_kill (\d+)$/m.exec(text);
      if (m) return Number(m[1]);
    }
    return 0;
  }

  /** Sends `signal` to every process in the group. */
  signalAll(signal: NodeJS.Signals): void {
    for (const pid of this.pids()) {
      try {
        process.kill(pid, signal);
      } catch {
        // Already gone.
      }
    }
  }

  /** Removes the group (its processes must be gone: the runner kills them first). Never throws. */
  remove(): void {
    for (const d of this.dirs) {
      try {
        rmdirSync(d);
      } catch {
        // Busy (a zombie not reaped yet) or gone: a later sweep removes it.
      }
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes the empty run groups of workers that are gone (a live worker's group may be about to be joined). */
export function sweepRunGroups(host: CgroupHost): number {
  const parents = host.version === 2 ? [host.parent] : Object.values(host.dirs);
  let removed = 0;
  for (const parent of parents) {
    let names: string[] = [];
    try {
      names = readdirSync(parent).filter((n) => n.startsWith('agentq-run-'));
    } catch {
      continue;
    }
    for (const n of names) {
      const owner = Number(/^agentq-run-(\d+)-/.exec(n)?.[1]);
      if (!Number.isInteger(owner) || alive(owner)) continue;
      const dir = path.join(parent, n);
      if (readOr(path.join(dir, 'cgroup.procs'), 'x').trim() !== '') continue;
      try {
        rmdirSync(dir);
        removed++;
      } catch {
        // Still in use.
      }
    }
  }
  return removed;
}
