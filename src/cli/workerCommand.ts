// `agentq worker`: runs the turn worker until SIGTERM/SIGINT. The first signal drains
// (running turns get AGENTQ_SHUTDOWN_GRACE_MS, then are checkpointed and handed back);
// a second one interrupts at once, after checkpointing what it can.
import type { Config } from '../config.js';
import { createWorker } from '../worker/worker.js';
import type { CliIo } from './main.js';

export async function workerCommand(config: Config, io: CliIo, flags: { concurrency?: string }): Promise<number> {
  let concurrency: number | undefined;
  if (flags.concurrency !== undefined) {
    concurrency = Number(flags.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
      io.err(`--concurrency must be a whole number from 1 to 256 (got ${JSON.stringify(flags.concurrency)})`);
      return 2;
    }
  }
  const worker = createWorker(config, concurrency ? { concurrency } : {});
  let signals = 0;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      io.err(`${signal}: ${signals === 1 ? 'draining' : 'interrupting running turns'}`);
      void worker.stop(signals === 1 ? {} : { graceMs: 0 }).then(resolve, resolve);
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  });
  await worker.start();
  io.err(`worker ${worker.workerId} started`);
  await stopped;
  return 0;
}
