// Approvals from Postgres, read when Prometheus scrapes the API (docs/approvals.md
// "Metrics"): how many wait for a person now, and how long decided ones waited. The wait
// is a histogram built from the decided rows on each scrape (one query), so decisions made
// anywhere (the API, `agentq approve`, a worker's expiry sweep) are counted once.
import type pg from 'pg';
import { Gauge, type Metric, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { collectErrorsCounter, withTimeout } from './collectHelpers.js';

type Queryable = Pick<pg.Pool, 'query'>;

/** Upper bounds of the wait histogram, in seconds: a minute to a week. */
export const APPROVAL_WAIT_BUCKETS = [60, 300, 900, 3600, 4 * 3600, 24 * 3600, 7 * 24 * 3600] as const;
const OUTCOMES = ['allowed', 'denied', 'expired'] as const;

interface WaitRow {
  status: string;
  count: string;
  sum: number | null;
  [bucket: `b${number}`]: string;
}

/** Registers `agentq_approvals_pending` and `agentq_approval_wait_seconds{outcome}`. */
export function registerApprovalMetrics(registry: Registry, db: Queryable, options: { log?: Logger; timeoutMs?: number } = {}): void {
  const timeoutMs = options.timeoutMs ?? 2000;
  const scrapeErrors = collectErrorsCounter(registry);
  const failed = (err: unknown) => {
    scrapeErrors.inc({ source: 'postgres' });
    options.log?.warn({ err }, 'metrics: could not read approvals from Postgres');
  };
  new Gauge({
    name: 'agentq_approvals_pending',
    help: 'Gated tool calls waiting for a person now (all tenants), from Postgres on scrape.',
    registers: [registry],
    async collect() {
      this.reset();
      try {
        // Index: approvals_pending_expiry_idx (partial, pending rows only).
        const r = await withTimeout(db.query<{ n: string }>("select count(*) as n from approvals where status = 'pending'"), timeoutMs, 'counting approvals');
        this.set(Number(r.rows[0]!.n));
      } catch (err) {
        failed(err);
      }
    },
  });
  const name = 'agentq_approval_wait_seconds';
  const help = 'How long decided approvals waited for their decision (or expiry), by outcome, from Postgres on scrape.';
  const buckets = APPROVAL_WAIT_BUCKETS.map((b, i) => `count(*) filter (where extract(epoch from decided_at - requested_at) <= ${b}) as b${i}`).join(', ');
  const histogram = {
    name,
    help,
    type: 'histogram',
    aggregator: 'sum',
    reset: () => undefined,
    async get() {
      const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
      try {
        const r = await withTimeout(
          db.query<WaitRow>(`select status, count(*) as count, sum(extract(epoch from decided_at - requested_at))::float8 as sum, ${buckets}
             from approvals where status <> 'pending' and decided_at is not null group by status`),
          timeoutMs,
          'reading approval waits',
        );
        for (const outcome of OUTCOMES) {
          const row = r.rows.find((x) => x.status === outcome);
          APPROVAL_WAIT_BUCKETS.forEach((le, i) => values.push({ labels: { outcome, le }, value: Number(row?.[`b${i}`] ?? 0), metricName: `${name}_bucket` }));
          values.push({ labels: { outcome, le: '+Inf' }, value: Number(row?.count ?? 0), metricName: `${name}_bucket` });
          values.push({ labels: { outcome }, value: row?.sum ?? 0, metricName: `${name}_sum` });
          values.push({ labels: { outcome }, value: Number(row?.count ?? 0), metricName: `${name}_count` });
        }
      } catch (err) {
        failed(err);
      }
      return { name, help, type: 'histogram', aggregator: 'sum', values };
    },
  };
  // A histogram read whole from Postgres: prom-client's own Histogram only counts observations in this process.
  registry.registerMetric(histogram as unknown as Metric);
}
