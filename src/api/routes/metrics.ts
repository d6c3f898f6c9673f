// GET /metrics on the API: Prometheus text from the API's own registry (never the global
// one). Read on scrape: the BullMQ queue depth, queued/running turns and the age of the
// oldest due turn from Postgres; kept as it goes: request counts and latency by route.
// Public like /healthz (no API key): expose it only where Prometheus can reach it.
import { collectDefaultMetrics, Counter, Histogram, Registry } from 'prom-client';
import { registerApprovalMetrics } from '../../metrics/approvals.js';
import { registerQueueDepth } from '../../metrics/queueDepth.js';
import { registerTurnBacklog, registerWorkersSeen } from '../../metrics/turnBacklog.js';
import type { ApiApp, ApiDeps } from '../server.js';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export function registerMetricsRoutes(app: ApiApp, { config, client, log }: ApiDeps): void {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'agentq_' });
  registerQueueDepth(registry, client.queue, { log });
  registerTurnBacklog(registry, client.db.$client, { log });
  registerWorkersSeen(registry, client.redis, config, { log });
  registerApprovalMetrics(registry, client.db.$client, { log });
  const requests = new Counter({
    name: 'agentq_http_requests_total',
    help: 'API requests by method, route template and status code.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [registry],
  });
  const latency = new Histogram({
    name: 'agentq_http_request_duration_seconds',
    help: 'API response time by method and route template (event streams: until the stream ends).',
    labelNames: ['method', 'route'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [registry],
  });

  app.addHook('onResponse', async (request, reply) => {
    // The route template, not the URL: ids in paths would make one series per resource.
    const route = request.routeOptions.url ?? 'unmatched';
    if (route === '/metrics') return;
    requests.inc({ method: request.method, route, status: String(reply.statusCode) });
    latency.observe({ method: request.method, route }, reply.elapsedTime / 1000);
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    const text = await registry.metrics();
    return reply.type(registry.contentType).send(text);
  });
}
