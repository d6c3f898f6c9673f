// `agentq worker` as a real OS process for multi-process tests: spawned with a test's
// environment (nothing inherited), stdout (pino logs) and stderr captured to files,
// signalled and awaited. Every process spawned here is remembered, so afterEach can kill
// the leftovers of a failed test, and so can the fake CLIs a killed worker orphaned.
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isAlive, waitUntil } from './processes.js';
import { liveProcesses } from './procScan.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/agentq.js');

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface WorkerProcess {
  readonly name: string;
  readonly pid: number;
  readonly child: ChildProcess;
  /** The worker id it printed on start (`worker <id> started`), once it is ready. */
  workerId: string;
  readonly stdoutFile: string;
  readonly stderrFile: string;
  /** Settles when the process has exited. */
  readonly exited: Promise<Exit>;
  /** Exit status once exited, else undefined. */
  exit(): Exit | undefined;
  signal(sig: NodeJS.Signals): void;
  /** Sends `sig` and waits (with a deadline) for the process to exit. */
  stop(sig: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
  stderr(): string;
  stdout(): string;
}

const spawned = new Set<WorkerProcess>();

function readIfExists(file: string): string {
  return existsSync(file) ? readFileSync(file, 'utf8') : '';
}

/**
 * Spawns `node bin/agentq.js worker --concurrency N` with exactly `env` and waits until it
 * reports that it started (connected, reconciled once, taking jobs).
 */
export async function startWorkerProcess(
  env: Record<string, string>,
  opts: {
    name: string;
    dir: string;
    concurrency: number;
    readyTimeoutMs?: number;
    /** Arguments after `worker` instead of `--concurrency N` (e.g. `--once`). */
    args?: string[];
    /** false: return at once, without waiting for `worker <id> started` (a --once worker may be gone by then). */
    waitReady?: boolean;
  },
): Promise<WorkerProcess> {
  const stdoutFile = path.join(opts.dir, `${opts.name}.stdout.log`);
  const stderrFile = path.join(opts.dir, `${opts.name}.stderr.log`);
  const out = openSync(stdoutFile, 'a');
  const err = openSync(stderrFile, 'a');
  let child: ChildProcess;
  try {
    child = spawn(process.execPath, [BIN, 'worker', ...(opts.args ?? ['--concurrency', String(opts.concurrency)])], {
      env,
      stdio: ['ignore', out, err],
    });
  } finally {
    // The child has its own copies of the descriptors.
    closeSync(out);
    closeSync(err);
  }
  if (child.pid === undefined) throw new Error(`could not spawn worker ${opts.name}`);
  let exitStatus: Exit | undefined;
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      exitStatus = { code, signal };
      resolve(exitStatus);
    });
  });
  const pid = child.pid;
  const w: WorkerProcess = {
    name: opts.name,
    pid,
    child,
    workerId: '',
    stdoutFile,
    stderrFile,
    exited,
    exit: () => exitStatus,
    signal(sig) {
      if (exitStatus === undefined) process.kill(pid, sig);
    },
    async stop(sig, timeoutMs = 15_000) {
      w.signal(sig);
      let timer: NodeJS.Timeout | undefined;
      try {
        return await Promise.race([
          exited,
          new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`worker ${opts.name} (pid ${pid}) did not exit within ${timeoutMs} ms of ${sig}`)), timeoutMs);
          }),
        ]);
      } finally {
        clearTimeout(timer);
      }
    },
    stderr: () => readIfExists(stderrFile),
    stdout: () => readIfExists(stdoutFile),
  };
  spawned.add(w);
  if (opts.waitReady === false) return w;
  await waitUntil(
    () => {
      if (exitStatus !== undefined) throw new Error(`worker ${opts.name} exited during start (${JSON.stringify(exitStatus)}):\n${w.stderr()}`);
      const m = /worker (\S+) started/.exec(w.stderr());
      if (m) w.workerId = m[1]!;
      return m !== null;
    },
    `worker ${opts.name} to start`,
    opts.readyTimeoutMs ?? 15_000,
  );
  return w;
}

/** SIGKILLs every worker process spawned here that is still running (resuming stopped ones first) and awaits its exit. */
export async function killWorkerProcesses(): Promise<void> {
  const all = [...spawned];
  await Promise.all(
    all.map(async (w) => {
      if (w.exit() !== undefined) return;
      try {
        process.kill(w.pid, 'SIGKILL');
        process.kill(w.pid, 'SIGCONT');
      } catch {
        // gone already
      }
      await w.exited;
    }),
  );
  for (const w of all) spawned.delete(w);
}

/**
 * Live processes whose environment contains `NAME=value` (e.g. the fake CLIs of one test,
 * by their log file), other than this process and the worker processes spawned here.
 */
export function processesWithEnv(name: string, value: string): number[] {
  const marker = Buffer.from(`\0${name}=${value}\0`);
  const mine = new Set([process.pid, ...[...spawned].map((w) => w.pid)]);
  return liveProcesses()
    .filter((p) => !mine.has(p.pid))
    .filter((p) => {
      try {
        return Buffer.concat([Buffer.from([0]), readFileSync(`/proc/${p.pid}/environ`)]).indexOf(marker) !== -1;
      } catch {
        return false;
      }
    })
    .map((p) => p.pid);
}

/** SIGKILLs the live processes carrying `NAME=value` and waits until they are gone; returns their pids. */
export async function killProcessesWithEnv(name: string, value: string): Promise<number[]> {
  const pids = processesWithEnv(name, value);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  await waitUntil(() => pids.every((pid) => !isAlive(pid)), `processes ${pids.join(', ')} to die`, 5000);
  return pids;
}
