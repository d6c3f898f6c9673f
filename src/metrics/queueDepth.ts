// The BullMQ queue depth as a gauge, read from Redis when Prometheus scrapes (not on a
// timer): one series per job state. Used by the worker and the API endpoints alike.
import type { Queue } from 'bullmq';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { collectErrorsCounter, withTimeout } from './collectHelpers.js';

/** The job states reported; completed jobs are removed at once, so that count stays near 0. */
export const QUEUE_STATES = ['waiting', 'prioritized', 'active', 'delayed', 'waiting-children', 'failed', 'completed'] as const;

/** Registers `agentq_queue_jobs{state}` in `registry`, read from `queue` on every scrape. */
export function registerQueueDepth(registry: Registry, queue: Pick<Queue, 'getJobCounts'>, options: { log?: Logger; timeoutMs?: number } = {}): void {
  const scrapeErrors = collectErrorsCounter(registry);
  new Gauge({
    name: 'agentq_queue_jobs',
    help: 'BullMQ jobs of the turn queue by state, read from Redis on scrape (waiting + prioritized = turns due and not yet taken).',
    labelNames: ['state'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        const counts = await withTimeout(queue.getJobCounts(...QUEUE_STATES), options.timeoutMs ?? 2000, 'reading BullMQ job counts');
        for (const state of QUEUE_STATES) this.set({ state }, counts[state] ?? 0);
      } catch (err) {
        // No series this scrape (absent, not a stale or a false 0), and a counted error.
        scrapeErrors.inc({ source: 'redis' });
        options.log?.warn({ err }, 'metrics: could not read the queue depth');
      }
    },
  });
}

