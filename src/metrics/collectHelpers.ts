// What the scrape-time collectors share: a deadline on their reads (a scrape must answer
// even when Redis or Postgres hangs) and one counter of the reads that failed.
import { Counter, type Registry } from 'prom-client';

/** Rejects with a message naming `what` if `promise` has not settled after `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took longer than ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** `agentq_metrics_collect_errors_total{source}`, created once per registry. */
export function collectErrorsCounter(registry: Registry): Counter<'source'> {
  const name = 'agentq_metrics_collect_errors_total';
  const existing = registry.getSingleMetric(name);
  if (existing) return existing as Counter<'source'>;
  return new Counter({
    name,
    help: 'Scrapes in which a metric could not be read from its source (redis, postgres); that metric has no samples in that scrape.',
    labelNames: ['source'] as const,
    registers: [registry],
  });
}
