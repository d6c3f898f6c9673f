// `agentq stats [--json] [--tenant t]`: the figures an autoscaler or an operator needs
// (src/queue/stats.ts computes them for this command, GET /v1/stats and the gauges).
import type { Config } from '../config.js';
import { createClient } from '../queue/client.js';
import { collectStats, type AgentqStats } from '../queue/stats.js';
import { parseTenantId } from '../store/ids.js';
import type { CliIo } from './main.js';

export function formatStats(s: AgentqStats): string {
  const t = s.turns;
  const byPriority = t.waitingByPriority.map((p) => `${p.priority}: ${p.count}`).join(', ') || '-';
  const age = t.oldestWaitingAgeSeconds === null ? '-' : `${t.oldestWaitingAgeSeconds.toFixed(1)} s`;
  return [
    `queue ${s.queueName} (all tenants) at ${s.at}`,
    `  depth (due jobs not taken)  ${s.queue.depth}   [waiting ${s.queue.waiting}, prioritized ${s.queue.prioritized}, active ${s.queue.active}, delayed ${s.queue.delayed}, failed ${s.queue.failed}]`,
    `turns${s.tenant === null ? ' (all tenants)' : ` of tenant ${s.tenant}`}`,
    `  running                     ${t.running}`,
    `  queued                      ${t.queued}   [due ${t.due}, delayed ${t.delayed}]`,
    `  due by priority             ${byPriority}`,
    `  oldest due waiting for      ${age}`,
    `workers seen in the last ${s.workers.windowSeconds} s (all tenants): ${s.workers.seen}${s.workers.ids.length ? `\n  ${s.workers.ids.join('\n  ')}` : ''}`,
  ].join('\n');
}

export async function statsCommand(config: Config, io: CliIo, flags: { json?: boolean; tenant?: string }): Promise<number> {
  const tenant = flags.tenant === undefined ? undefined : parseTenantId(flags.tenant, '--tenant');
  const client = createClient(config);
  try {
    const stats = await collectStats({ config, db: client.db.$client, queue: client.queue, redis: client.redis }, tenant === undefined ? {} : { tenant });
    io.out(flags.json ? JSON.stringify(stats) : formatStats(stats));
    return 0;
  } finally {
    await client.close();
  }
}
