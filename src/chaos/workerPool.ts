// The chaos suite's worker processes: real `agentq worker` processes that a killer
// SIGKILLs at random and replaces.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/agentq.js', import.meta.url));

export class WorkerPool {
  private readonly procs = new Set<ChildProcess>();
  private readonly frozen = new Set<ChildProcess>();
  private readonly draining = new Set<ChildProcess>();
  kills = 0;
  freezes = 0;
  drains = 0;
  started = 0;

  /** Exit codes or signals of workers that ended without being told to. */
  readonly unexpectedExits: string[] = [];
  private readonly told = new Set<ChildProcess>();

  constructor(
    private readonly env: Record<string, string>,
    private readonly concurrency: number,
    /** Each worker's stderr goes to `<logDir>/worker-<n>.log`. */
    private readonly logDir: string,
  ) {
    mkdirSync(logDir, { recursive: true });
  }

  start(): ChildProcess {
    const log = openSync(path.join(this.logDir, `worker-${this.started + 1}.log`), 'a');
    const child = spawn(process.execPath, [BIN, 'worker', '--concurrency', String(this.concurrency)], {
      env: this.env,
      stdio: ['ignore', 'ignore', log],
    });
    this.started++;
    this.procs.add(child);
    child.once('exit', (code, signal) => {
      this.procs.delete(child);
      if (!this.told.has(child)) this.unexpectedExits.push(`worker-${this.started} ${signal ?? `exit ${code}`}`);
    });
    return child;
  }

  /** SIGKILLs one live worker at random and starts a replacement. */
  killOneAndReplace(): void {
    const live = [...this.procs];
    const victim = live[Math.floor(Math.random() * live.length)];
    if (victim) {
      this.told.add(victim);
      victim.kill('SIGKILL');
      this.kills++;
    }
    this.start();
  }

  /**
   * SIGSTOPs one worker for `ms` (past its job lock and lease), then SIGCONTs it: the
   * stalled-job path, where the frozen worker wakes up holding a stale lease.
   */
  freezeOne(ms: number): void {
    const live = [...this.procs].filter((p) => !this.frozen.has(p));
    const victim = live[Math.floor(Math.random() * live.length)];
    if (!victim) return;
    this.frozen.add(victim);
    this.freezes++;
    victim.kill('SIGSTOP');
    setTimeout(() => {
      victim.kill('SIGCONT');
      this.frozen.delete(victim);
    }, ms).unref();
  }

  /** SIGTERMs one worker (a rolling deploy: it drains) and starts a replacement. */
  drainOneAndReplace(): void {
    const live = [...this.procs].filter((p) => !this.frozen.has(p) && !this.draining.has(p));
    const victim = live[Math.floor(Math.random() * live.length)];
    if (victim) {
      this.draining.add(victim);
      this.told.add(victim);
      victim.once('exit', () => this.draining.delete(victim));
      victim.kill('SIGTERM');
      this.drains++;
    }
    this.start();
  }

  size(): number {
    return this.procs.size;
  }

  /** Drains every worker with SIGTERM and waits for them to exit (SIGKILL after `timeoutMs`). */
  async stopAll(timeoutMs: number): Promise<void> {
    const live = [...this.procs];
    for (const p of live) {
      this.told.add(p);
      p.kill('SIGCONT');
    }
    await Promise.all(
      live.map(
        (p) =>
          new Promise<void>((resolve) => {
            if (p.exitCode !== null || p.signalCode !== null) return resolve();
            const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
            p.once('exit', () => {
              clearTimeout(t);
              resolve();
            });
            p.kill('SIGTERM');
          }),
      ),
    );
  }
}
