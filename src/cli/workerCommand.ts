// `agentq worker`: runs the turn worker until SIGTERM/SIGINT. The first signal drains
// (running turns get AGENTQ_SHUTDOWN_GRACE_MS, then are checkpointed and handed back);
// a second one interrupts at once, after checkpointing what it can.
import type { Config } from '../config.js';
import { createLogger } from '../logger.js';
import { startWorkerTelemetry, type WorkerTelemetry } from '../metrics/workerEndpoint.js';
import { createWorker } from '../worker/worker.js';
import type { CliIo } from './main.js';

export async function workerCommand(config: Config, io: CliIo, flags: { concurrency?: string; metricsPort?: string }): Promise<number> {
  let concurrency: number | undefined;
  if (flags.concurrency !== undefined) {
    concurrency = Number(flags.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
      io.err(`--concurrency must be a whole number from 1 to 256 (got ${JSON.stringify(flags.concurrency)})`);
      return 2;
    }
  }
  let metricsPort = config.worker.metricsPort;
  if (flags.metricsPort !== undefined) {
    metricsPort = Number(flags.metricsPort);
    if (!/^\d+$/.test(flags.metricsPort) || metricsPort > 65535) {
      io.err(`--metrics-port must be a port number from 0 to 65535 (got ${JSON.stringify(flags.metricsPort)})`);
      return 2;
    }
  }
  let telemetry: WorkerTelemetry | undefined;
  if (metricsPort !== undefined) {
    telemetry = await startWorkerTelemetry(config, { port: metricsPort, log: createLogger(config, 'agentq-metrics') });
    io.err(`metrics at http://${config.worker.metricsHost}:${telemetry.port}/metrics`);
  }
  const worker = createWorker(config, { ...(concurrency ? { concurrency } : {}), ...(telemetry ? { observeAttempt: telemetry.observeAttempt } : {}) });
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
  await telemetry?.close();
  return 0;
}
