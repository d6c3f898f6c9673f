// The HTTP API (`agentq api`): Fastify with zod schemas (validation, serialization and the
// OpenAPI document at /docs), bearer keys scoped to tenants, problem-details errors, a
// rate limit per key. Routes live in ./routes, one file per resource; each gets the app
// and the shared dependencies.
import { access, constants } from 'node:fs/promises';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { Redis } from 'ioredis';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type RawReplyDefaultExpression, type RawRequestDefaultExpression, type RawServerDefault } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { SharedStreamReader } from '../live/streamReader.js';
import { createLogger } from '../logger.js';
import { createClient, type AgentqClient } from '../queue/client.js';
import { MAX_CONVERSATION_ID_LENGTH } from '../store/ids.js';
import { schemaStatus } from '../store/migrate.js';
import { apiKeyTable, sessionCookieAuthorization } from './auth.js';
import { HttpProblem, sendProblem, toProblem } from './problems.js';
import { sendRefusedPage, wantsHtml } from './viewer/refusedPage.js';
import { RouteMethods } from './routeMethods.js';
import { registerAdminRoutes } from './routes/admin.js';
import { registerApprovalRoutes } from './routes/approvals.js';
import { registerConversationRoutes } from './routes/conversations.js';
import { registerLiveRoutes } from './routes/live.js';
import { registerMetricsRoutes } from './routes/metrics.js';
import { registerScheduleRoutes } from './routes/schedules.js';
import { registerStatsRoutes } from './routes/stats.js';
import { registerTurnRoutes } from './routes/turns.js';

/** The Redis client name of the API's live event reader (one connection per API process): visible in CLIENT LIST. */
export function sseConnectionName(queueName: string): string {
  return `agentq-sse:${queueName}`;
}

export type ApiApp = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, FastifyBaseLogger, ZodTypeProvider>;

/** What every route module gets. */
export interface ApiDeps {
  config: Config;
  /** Producer, store and queue handles (one pg pool, one Redis connection). */
  client: AgentqClient;
  log: Logger;
  /** One blocking Redis connection that every open event stream reads through (src/live/streamReader.ts). */
  streams: SharedStreamReader;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** The caller's tenant, set by the auth hook on every /v1 and /admin route. */
    tenant: string;
  }
}

/** Paths that answer without an API key. */
const PUBLIC_PREFIXES = ['/healthz', '/readyz', '/metrics', '/docs', '/viewer', '/admin/login', '/admin/logout'];

export interface Api {
  app: ApiApp;
  deps: ApiDeps;
  /** Stops listening and closes the client. */
  close(): Promise<void>;
}

export async function buildApi(config: Config, options: { log?: Logger } = {}): Promise<Api> {
  const log = options.log ?? createLogger(config, 'agentq-api');
  const client = createClient(config);
  const streams = new SharedStreamReader(() => {
    const conn = new Redis(config.redisUrl, { maxRetriesPerRequest: 1, connectionName: sseConnectionName(config.queueName) });
    conn.on('error', () => undefined);
    return conn;
  }, client.redis);
  const deps: ApiDeps = { config, client, log, streams };
  const app = Fastify({
    loggerInstance: log as unknown as FastifyBaseLogger,
    bodyLimit: config.api.bodyLimitBytes,
    // Behind a proxy the operator sets it; here request.ip is the socket's address.
    trustProxy: false,
    // Conversation ids are up to 128 characters, percent-encoded up to three times as many
    // in a path; the router's default (100) would answer 414 to valid ids.
    routerOptions: { maxParamLength: 3 * MAX_CONVERSATION_ID_LENGTH },
    // The router's own refusals (a malformed or too long path segment) as problems too.
    frameworkErrors: (err, request, reply) => {
      void sendProblem(reply, toProblem(err, request));
    },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('tenant', '');
  // Bodies are JSON only: without this, text/plain would reach the schemas as a string (400)
  // instead of being refused as an unsupported media type (415).
  app.removeContentTypeParser('text/plain');

  app.setErrorHandler((err, request, reply) => sendProblem(reply, toProblem(err, request)));
  // Every route, including those plugins add, so a known path with the wrong method is a 405.
  const routeMethods = new RouteMethods();
  app.addHook('onRoute', (route) => routeMethods.add(route.url, route.method));
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0]!;
    const allowed = routeMethods.allowed(path);
    if (allowed.length > 0) {
      void reply.header('allow', allowed.join(', '));
      return sendProblem(reply, { type: 'about:blank', title: 'Method Not Allowed', status: 405, detail: `${path} answers ${allowed.join(', ')}, not ${request.method}` });
    }
    return sendProblem(reply, { type: 'about:blank', title: 'Not Found', status: 404, detail: `no route ${request.method} ${path}` });
  });

  const keys = apiKeyTable(config.api.keys);
  // The hooks answer 401 themselves rather than throw: plugins with error handlers of their
  // own (the dashboard's) would turn a thrown error into a 500.
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0]!;
    if (PUBLIC_PREFIXES.some((p) => path === p || path.startsWith(`${p}/`))) return;
    // Browsers (the viewer's event stream, the dashboard) carry the key in the session
    // cookie that POST /admin/login sets; it counts for reads and for the dashboard only,
    // so a forged cross-site form cannot enqueue or cancel with it. The viewer's approval
    // decisions also count, sent as JSON: a form cannot send that, and a cross-site script
    // only after a CORS preflight this API never answers.
    const viewerDecision = request.method === 'POST' && /^\/v1\/approvals\/[^/]+$/.test(path) && (request.headers['content-type'] ?? '').startsWith('application/json');
    const cookieAllowed = request.method === 'GET' || request.method === 'HEAD' || path.startsWith('/admin/queues') || viewerDecision;
    const tenant =
      keys.tenantOf(request.headers.authorization) ?? (cookieAllowed ? keys.tenantOf(sessionCookieAuthorization(request.headers.cookie)) : undefined);
    if (!tenant && path.startsWith('/admin/queues') && wantsHtml(request)) {
      return sendRefusedPage(reply, 401, 'Log in first', 'The queue dashboard needs an API key of an admin tenant.', '<a href="/viewer">Log in with your key in the viewer</a>, then open this page again.');
    }
    if (!tenant) return sendProblem(reply, toProblem(new HttpProblem(401, 'Unauthorized', 'a valid API key is required: Authorization: Bearer <key>'), request));
    request.tenant = tenant;
    return undefined;
  });

  if (config.api.rateLimitPerMinute > 0) {
    await app.register(rateLimit, {
      max: config.api.rateLimitPerMinute,
      timeWindow: 60_000,
      // Per key; unauthenticated requests (401 anyway) by address.
      keyGenerator: (request) => request.headers.authorization ?? request.ip,
      allowList: (request) => PUBLIC_PREFIXES.some((p) => request.url.startsWith(p)),
      errorResponseBuilder: (_request, ctx) => new HttpProblem(429, 'Too Many Requests', `rate limit of ${ctx.max} requests per minute exceeded; retry after ${ctx.after}`),
    });
  }

  await app.register(swagger, {
    openapi: {
      info: { title: 'agentq', version: '0.1.0', description: 'Claude Code agent sessions as durable background jobs.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });
  await app.register(swaggerUi, { routePrefix: '/docs' });

  app.get('/healthz', { schema: { hide: true } }, async () => ({ ok: true }));
  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const checks = await readiness(deps);
    const ok = checks.every((c) => c.ok);
    return reply.code(ok ? 200 : 503).send({ ok, checks });
  });

  // Route modules register here.
  registerConversationRoutes(app, deps);
  registerTurnRoutes(app, deps);
  registerApprovalRoutes(app, deps);
  registerLiveRoutes(app, deps);
  registerMetricsRoutes(app, deps);
  await registerAdminRoutes(app, deps);
  registerScheduleRoutes(app, deps);
  registerStatsRoutes(app, deps);

  return {
    app,
    deps,
    async close() {
      await app.close();
      streams.close();
      await client.close();
    },
  };
}

interface ReadyCheck {
  name: string;
  ok: boolean;
  detail: string;
}

async function readiness({ config, client }: ApiDeps): Promise<ReadyCheck[]> {
  const check = async (name: string, fn: () => Promise<string>): Promise<ReadyCheck> => {
    try {
      return { name, ok: true, detail: await fn() };
    } catch (err) {
      return { name, ok: false, detail: (err as Error).message };
    }
  };
  return Promise.all([
    check('postgres', async () => {
      await client.db.$client.query('select 1');
      return 'answers';
    }),
    check('redis', async () => {
      return String(await client.redis.ping());
    }),
    check('migrations', async () => {
      const s = await schemaStatus(config.databaseUrl);
      if (!s.current) throw new Error(s.pending.length > 0 ? `pending: ${s.pending.join(', ')}` : 'the schema is newer than this build');
      return `${s.appliedCount} applied`;
    }),
    check('claude CLI', async () => {
      await access(config.claudePath, constants.X_OK);
      return config.claudePath;
    }),
  ]);
}
