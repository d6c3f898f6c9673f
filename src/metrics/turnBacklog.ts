// Turn counts from Postgres (the system of record), read when Prometheus scrapes the API.
// Only queued and running turns are counted: both queries are answered from the index
// turns_status_run_at_idx (status, run_at) and are bounded by the backlog, whereas
// counting every succeeded turn would grow with history. Terminal totals come from the
// workers' agentq_turns_total counters instead.
import type pg from 'pg';
import { Gauge, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import { collectErrorsCounter, withTimeout } from './collectHelpers.js';

type Queryable = Pick<pg.Pool, 'query'>;

const BACKLOG_STATUSES = ['queued', 'running'] as const;

/** Registers `agentq_turns_current{status}` and `agentq_turns_oldest_due_age_seconds`. */
export function registerTurnBacklog(registry: Registry, db: Queryable, options: { log?: Logger; timeoutMs?: number } = {}): void {
  const timeoutMs = options.timeoutMs ?? 2000;
  const scrapeErrors = collectErrorsCounter(registry);
  const failed = (err: unknown) => {
    scrapeErrors.inc({ source: 'postgres' });
    options.log?.warn({ err }, 'metrics: could not read turn counts from Postgres');
  };
  new Gauge({
    name: 'agentq_turns_current',
    help: 'Turns queued (waiting for their turn, delayed or due) and running now, from Postgres on scrape.',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      try {
        // Index: turns_status_run_at_idx (equality on status).
        const r = await withTimeout(
          db.query<{ status: string; n: number }>(`select status, count(*)::int as n from turns where status = any($1::text[]) group by status`, [
            [...BACKLOG_STATUSES],
          ]),
          timeoutMs,
          'counting turns',
        );
        for (const status of BACKLOG_STATUSES) this.set({ status }, r.rows.find((row) => row.status === status)?.n ?? 0);
      } catch (err) {
        failed(err);
      }
    },
  });
  new Gauge({
    name: 'agentq_turns_oldest_due_age_seconds',
    help: 'How long the oldest queued turn that is due (run_at passed) has waited; 0 when none. A growing value means workers are missing or saturated.',
    registers: [registry],
    async collect() {
      this.reset();
      try {
        // Index: turns_status_run_at_idx (status = 'queued', min(run_at) is its first entry).
        const r = await withTimeout(
          db.query<{ age: number | null }>(
            `select extract(epoch from now() - min(run_at))::float8 as age from turns where status = 'queued' and run_at <= now()`,
          ),
          timeoutMs,
          'reading the oldest due turn',
        );
        this.set(Math.max(0, r.rows[0]?.age ?? 0));
      } catch (err) {
        failed(err);
      }
    },
  });
}
