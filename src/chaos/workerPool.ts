// The chaos suite's worker processes: real `agentq worker` processes that a killer
// SIGKILLs at random and replaces.
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../bin/agentq.js', import.meta.url));

export class WorkerPool {
  private readonly procs = new Set<ChildProcess>();
  kills = 0;
  started = 0;

  constructor(
    private readonly env: Record<string, string>,
    private readonly concurrency: number,
  ) {}

  start(): ChildProcess {
    const child = spawn(process.execPath, [BIN, 'worker', '--concurrency', String(this.concurrency)], {
      env: this.env,
      stdio: ['ignore', 'ignore', 'ignore'],
    });
    this.started++;
    this.procs.add(child);
    child.once('exit', () => this.procs.delete(child));
    return child;
  }

  /** SIGKILLs one live worker at random and starts a replacement. */
  killOneAndReplace(): void {
    const live = [...this.procs];
    const victim = live[Math.floor(Math.random() * live.length)];
    if (victim) {
      victim.kill('SIGKILL');
      this.kills++;
    }
    this.start();
  }

  size(): number {
    return this.procs.size;
  }

  /** Drains every worker with SIGTERM and waits for them to exit (SIGKILL after `timeoutMs`). */
  async stopAll(timeoutMs: number): Promise<void> {
    const live = [...this.procs];
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
