// Browser-facing routes: a login that turns an API key into a session cookie, the queue
// dashboard (Bull Board) at /admin/queues for admin tenants, and the transcript viewer
// page at /viewer (static; it reads the /v1 API with the cookie).
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { z } from 'zod';
import { apiKeyTable, SESSION_COOKIE } from '../auth.js';
import { HttpProblem, sendProblem, toProblem } from '../problems.js';
import type { ApiApp, ApiDeps } from '../server.js';
import { createScheduleQueue } from '../../schedules/scheduler.js';
import { viewerHtml } from '../viewer/page.js';
import { sendRefusedPage, wantsHtml } from '../viewer/refusedPage.js';

const DASHBOARD_PATH = '/admin/queues';
/** A browser session lasts a working day; the key itself does not expire. */
const SESSION_MAX_AGE_S = 12 * 60 * 60;

export async function registerAdminRoutes(app: ApiApp, { config, client }: ApiDeps): Promise<void> {
  const keys = apiKeyTable(config.api.keys);

  app.post(
    '/admin/login',
    {
      schema: {
        summary: 'Exchange an API key for a session cookie (for the viewer and the dashboard)',
        body: z.strictObject({ key: z.string().min(1).max(512) }),
        response: { 204: z.null() },
      },
    },
    async (request, reply) => {
      const tenant = keys.tenantOf(`Bearer ${request.body.key}`);
      if (!tenant) throw new HttpProblem(401, 'Unauthorized', 'unknown API key', [{ field: 'body.key', message: 'is not a valid API key' }]);
      const secure = request.protocol === 'https' ? '; Secure' : '';
      reply.header(
        'set-cookie',
        `${SESSION_COOKIE}=${encodeURIComponent(request.body.key)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${SESSION_MAX_AGE_S}${secure}`,
      );
      return reply.code(204).send(null);
    },
  );

  app.post('/admin/logout', { schema: { summary: 'End the browser session', response: { 204: z.null() } } }, async (_request, reply) => {
    reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`);
    return reply.code(204).send(null);
  });

  app.get('/viewer', { schema: { hide: true } }, async (_request, reply) =>
    reply
      .type('text/html; charset=utf-8')
      .header('content-security-policy', "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
      .send(viewerHtml),
  );

  // The dashboard shows every tenant's jobs (job data is only a turn id): admin tenants only.
  const board = new FastifyAdapter();
  board.setBasePath(DASHBOARD_PATH);
  // The turn queue and the schedule ticks' queue (its own connection-less handle over the client's Redis).
  const ticks = createScheduleQueue(config.queueName, client.redis, config.queuePrefix);
  app.addHook('onClose', async () => ticks.close());
  createBullBoard({ queues: [new BullMQAdapter(client.queue), new BullMQAdapter(ticks, { readOnlyMode: true })], serverAdapter: board });
  await app.register(
    async (scoped) => {
      scoped.addHook('onRequest', async (request, reply) => {
        if (reply.sent || config.api.adminTenants.includes(request.tenant)) return undefined;
        if (wantsHtml(request)) {
          return sendRefusedPage(
            reply,
            403,
            'The queue dashboard is for admin tenants',
            `You are logged in as tenant "${request.tenant}". The dashboard shows every tenant's jobs, so only the tenants in AGENTQ_API_ADMIN_TENANTS may open it.`,
            '<a href="/viewer">Back to the viewer</a> (your own conversations), or log in there with an admin tenant\'s key.',
          );
        }
        const denied = new HttpProblem(403, 'Forbidden', `tenant ${request.tenant} may not open the dashboard (AGENTQ_API_ADMIN_TENANTS)`);
        return sendProblem(reply, toProblem(denied, request));
      });
      await scoped.register(board.registerPlugin());
    },
    { prefix: DASHBOARD_PATH },
  );
}
