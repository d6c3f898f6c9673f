// What `agentq worker --metrics-port N` adds to a worker: its metrics registry (turn
// metrics, queue depth, Node process metrics), the /metrics endpoint, and spans.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { collectDefaultMetrics, Registry } from 'prom-client';
import type { Config } from '../config.js';
import { createTurnQueue } from '../queue/dispatch.js';
import type { ObserveAttempt, WarmObserver } from '../worker/observer.js';
import { serveMetrics } from './httpEndpoint.js';
import { registerQueueDepth } from './queueDepth.js';
import { combineObservers, tracingObserver } from './tracing.js';
import { createWorkerMetrics } from './workerMetrics.js';

export interface WorkerTelemetry {
  /** Pass as `observeAttempt` to createWorker. */
  readonly observeAttempt: ObserveAttempt;
  /** Pass as `observeWarm` to createWorker. */
  readonly observeWarm: WarmObserver;
  readonly registry: Registry;
  /** The port /metrics listens on. */
  readonly port: number;
  /** Stops the endpoint and closes its Redis connection; call after the worker stopped. */
  close(): Promise<void>;
}

export async function startWorkerTelemetry(
  config: Config,
  options: { port: number; host?: string; log?: Logger; processMetrics?: boolean },
): Promise<WorkerTelemetry> {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: 'agentq_' });
  const metrics = createWorkerMetrics(registry);
  // Its own connection: a scrape must not queue behind the worker's blocking commands.
  const conn = new Redis(config.redisUrl, { maxRetriesPerRequest: 1 });
  conn.on('error', () => undefined);
  const queue = createTurnQueue(config.queueName, conn, config.queuePrefix);
  registerQueueDepth(registry, queue, options.log ? { log: options.log } : {});
  let endpoint;
  try {
    endpoint = await serveMetrics(registry, { host: options.host ?? config.worker.metricsHost, port: options.port, ...(options.log ? { log: options.log } : {}) });
  } catch (err) {
    await queue.close().catch(() => undefined);
    conn.disconnect();
    throw err;
  }
  return {
    observeAttempt: combineObservers(metrics.observeAttempt, tracingObserver()),
    observeWarm: metrics.observeWarm,
    registry,
    port: endpoint.port,
    async close() {
      await endpoint.close();
      await queue.close().catch(() => undefined);
      conn.disconnect();
    },
  };
}
