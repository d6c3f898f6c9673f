// In-process workers for tests: created, started and remembered, so that one call after
// the test stops every one of them (without grace: a running turn is handed back) before
// the database and Redis go away.
import type { Config } from '../../src/config.js';
import { createWorker, type TurnWorker, type WorkerOptions } from '../../src/worker/worker.js';

const running = new Set<TurnWorker>();

/** Creates and starts a worker on `config`, running 2 turns at once unless `options.concurrency` says otherwise. */
export async function startWorker(config: Config, options: WorkerOptions = {}): Promise<TurnWorker> {
  const worker = createWorker(config, { concurrency: 2, ...options });
  running.add(worker);
  await worker.start();
  return worker;
}

/** Stops every worker startWorker started; one the test already stopped is stopped again, which does nothing. */
export async function stopWorkers(): Promise<void> {
  const workers = [...running];
  running.clear();
  await Promise.all(workers.map((w) => w.stop({ graceMs: 0 })));
}
