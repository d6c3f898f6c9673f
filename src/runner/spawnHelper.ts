// Starting a CLI run without stopping the worker's event loop.
//
// Node 20 spawns with fork(): the parent is blocked while the kernel copies its page
// tables and until the child has exec'd, so the block grows with the worker's memory.
// Measured on the 2-core CI machine: 4.2 ms from a bare 43 MB node, 5.4-7.7 ms at 55-95 MB,
// 15 ms at 200 MB (a worker holds 110-180 MB). Every lane, every heartbeat and every
// live-event write waits that long for each spawn. So a worker starts its runs through a
// small helper process of its own (./spawnHelperMain.ts), which forks from its ~45 MB
// and sends the run's pipes back over the IPC channel (SCM_RIGHTS): the worker then reads
// and writes them exactly as if it had spawned the run itself. `AGENTQ_CLI_SPAWN=direct`
// spawns in the worker instead (./spawnDirect.ts).
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { HelperMessage, SpawnMessage } from './spawnHelperMain.js';
import type { SpawnRequest, SpawnedRun, RunExit } from './spawnTypes.js';

// From src/runner (tests) and dist/runner alike, the compiled helper.
const HELPER_MAIN = fileURLToPath(new URL('../../dist/runner/spawnHelperMain.js', import.meta.url));

interface PendingRun {
  wantStdin: boolean;
  pid?: number;
  stdout?: Socket;
  stderr?: Socket;
  stdin?: Socket;
  started: (run: SpawnedRun) => void;
  exit?: (exit: RunExit) => void;
  exitSeen?: RunExit;
  isStarted?: boolean;
}

/** One helper process per worker process, started at its first run and again after it dies. */
class SpawnHelper {
  private proc: ChildProcess | undefined;
  private nextId = 1;
  private readonly runs = new Map<number, PendingRun>();

  /** Forks the helper now, if it is not running, so its start overlaps other work. */
  warm(): void {
    this.proc ??= this.start();
  }

  spawn(request: SpawnRequest): Promise<SpawnedRun> {
    const proc = this.proc ?? this.start();
    const id = this.nextId++;
    return new Promise<SpawnedRun>((started) => {
      this.runs.set(id, { wantStdin: request.stdin, started });
      this.refChannel();
      const message: SpawnMessage = {
        t: 'spawn',
        id,
        file: request.file,
        args: request.args,
        cwd: request.cwd,
        env: request.env,
        stdin: request.stdin,
        fd3: request.fd3,
        linkCheck: request.linkCheck,
      };
      const unreachable = (err: Error) => this.fail(id, `could not reach the spawn helper: ${err.message}`);
      try {
        proc.send(message, (err) => err && unreachable(err));
      } catch (err) {
        unreachable(err as Error);
      }
    });
  }

  private start(): ChildProcess {
    const proc = fork(HELPER_MAIN, [], {
      // None of the worker's (its URLs, keys, NODE_OPTIONS): each run's environment is sent
      // with it, whole, and the helper needs nothing else.
      env: {},
      execArgv: [],
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.proc = proc;
    proc.on('message', (m: HelperMessage, handle?: Socket) => this.onMessage(m, handle));
    const gone = (why: string) => {
      if (this.proc !== proc) return;
      this.proc = undefined;
      for (const id of [...this.runs.keys()]) this.fail(id, why);
    };
    // A helper that could not be started at all emits only this.
    proc.on('error', (err) => {
      if (proc.pid === undefined) gone(`the spawn helper could not be started: ${err.message}`);
    });
    proc.once('exit', (code, signal) => {
      gone(`the spawn helper (pid ${proc.pid}) exited (${signal ?? `code ${code}`})`);
    });
    // Idle, it keeps nothing alive; see refChannel.
    proc.unref();
    proc.channel?.unref();
    return proc;
  }

  /** The channel holds the worker's event loop open only while a run is starting or going. */
  private refChannel(): void {
    if (this.runs.size > 0) this.proc?.channel?.ref();
    else this.proc?.channel?.unref();
  }

  private onMessage(m: HelperMessage, handle: Socket | undefined): void {
    const run = this.runs.get(m.id);
    if (!run) {
      handle?.destroy();
      return;
    }
    if (m.t === 'error') {
      this.runs.delete(m.id);
      this.refChannel();
      run.started(notStarted(Object.assign(new Error(m.message), { code: m.code })));
      return;
    }
    if (m.t === 'pipe') {
      if (!handle) return this.fail(m.id, `the spawn helper sent ${m.name} without its pipe`);
      run.pid = m.pid;
      run[m.name] = handle;
      if (m.name === 'stdin') {
        // Nothing is read from the CLI's stdin; reading lets the socket see the end and close.
        handle.resume();
        handle.on('error', () => undefined);
      }
      if (run.stdout && run.stderr && (run.stdin || !run.wantStdin)) this.started(run);
      return;
    }
    // exit
    this.runs.delete(m.id);
    this.refChannel();
    const exit: RunExit = { code: m.code, signal: m.signal };
    if (run.exit) return run.exit(exit);
    run.exitSeen = exit;
    // Not expected (the pipes come first), but a run must never wait forever: it ends with what arrived.
    if (!run.isStarted) this.started(run);
  }

  private started(run: PendingRun): void {
    run.isStarted = true;
    const exited = new Promise<RunExit>((resolve) => {
      if (run.exitSeen) resolve(run.exitSeen);
      else run.exit = resolve;
    });
    const sockets = [run.stdin, run.stdout, run.stderr];
    run.started({
      pid: run.pid,
      stdin: run.stdin ?? null,
      stdout: run.stdout ?? null,
      stderr: run.stderr ?? null,
      exited,
      release: () => {
        for (const s of sockets) s?.destroy();
      },
    });
  }

  /** The run did not start, or its exit will never be reported: both settle now. */
  private fail(id: number, message: string): void {
    const run = this.runs.get(id);
    if (!run) return;
    this.runs.delete(id);
    this.refChannel();
    const error = new Error(message);
    if (run.exit) return run.exit({ code: null, signal: null, error });
    for (const s of [run.stdin, run.stdout, run.stderr]) s?.destroy();
    // Its pid, when known, lets the runner sweep what did start.
    run.started(notStarted(error, run.pid));
  }
}

function notStarted(error: Error & { code?: string | undefined }, pid?: number): SpawnedRun {
  return { pid, stdin: null, stdout: null, stderr: null, exited: Promise.resolve({ code: null, signal: null, error }), release: () => undefined };
}

let helper: SpawnHelper | undefined;

/** Starts this process's spawn helper ahead of its first run (a worker does, as it opens). */
export function startSpawnHelper(): void {
  helper ??= new SpawnHelper();
  helper.warm();
}

/** Starts a run through this process's spawn helper; never rejects (a failure is in `exited`). */
export function spawnThroughHelper(request: SpawnRequest): Promise<SpawnedRun> {
  helper ??= new SpawnHelper();
  return helper.spawn(request);
}
