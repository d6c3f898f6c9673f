// GET /v1/stats: the figures of `agentq stats --json` (src/queue/stats.ts). The turn
// figures are the caller's tenant's; the queue depth and the workers seen are global
// (BullMQ jobs carry only a turn id, and every worker serves every tenant).
import { z } from 'zod';
import { collectStats } from '../../queue/stats.js';
import { problemResponses } from '../problems.js';
import type { ApiApp, ApiDeps } from '../server.js';

const count = z.number().int().nonnegative();

export const statsSchema = z.object({
  at: z.string().describe('when the figures were read (ISO 8601)'),
  queueName: z.string(),
  tenant: z.string().nullable().describe('the tenant the turn figures are limited to (the caller\'s)'),
  queue: z
    .object({
      depth: count.describe('waiting + prioritized: due jobs that no worker has taken; what to scale on'),
      waiting: count,
      prioritized: count,
      active: count,
      delayed: count,
      failed: count,
    })
    .describe('BullMQ jobs of the turn queue, all tenants (only the head turn of a conversation has a job)'),
  turns: z
    .object({
      queued: count.describe('every queued turn: due, delayed, or behind an earlier turn of its conversation'),
      due: count.describe('queued turns whose run_at has passed'),
      delayed: count.describe('queued turns whose run_at is ahead (a delay or a retry backoff)'),
      running: count,
      waitingByPriority: z.array(z.object({ priority: count, count })).describe('due queued turns per priority (0 = FIFO, 1 most urgent)'),
      oldestWaitingAgeSeconds: z.number().nullable().describe('seconds since the oldest due queued turn became due; null when none'),
    })
    .describe("the caller's tenant's turns, from Postgres"),
  workers: z
    .object({ seen: count, windowSeconds: z.number(), ids: z.array(z.string()) })
    .describe('workers whose heartbeat is younger than windowSeconds, all tenants'),
});

export function registerStatsRoutes(app: ApiApp, { config, client }: ApiDeps): void {
  app.get(
    '/v1/stats',
    {
      schema: {
        tags: ['stats'],
        summary: 'Queue depth, waiting and running turns, oldest waiting turn, workers seen: what an autoscaler needs',
        response: { 200: statsSchema, ...problemResponses(401, 429) },
      },
    },
    async (request) => collectStats({ config, db: client.db.$client, queue: client.queue, redis: client.redis }, { tenant: request.tenant }),
  );
}
