// Scheduled agents over HTTP: create, list, read, change and remove the caller's schedules. A
// schedule of another tenant is a 404, like any other resource.
import { z } from 'zod';
import { ScheduleExistsError, ScheduleInputError } from '../../schedules/errors.js';
import { scheduleBodySchema, scheduleNameSchema, schedulePatchSchema } from '../../schedules/input.js';
import { createScheduleQueue } from '../../schedules/scheduler.js';
import { createSchedule, getSchedule, getSchedules, removeSchedule, updateSchedule, type ScheduleHandles } from '../../schedules/service.js';
import { conflict, HttpProblem, notFound } from '../problems.js';
import type { ApiApp, ApiDeps } from '../server.js';

const scheduleViewSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  tenantId: z.string(),
  conversationId: z.string(),
  prompt: z.string(),
  options: z.record(z.string(), z.unknown()),
  cron: z.string(),
  timezone: z.string(),
  overlap: z.enum(['skip', 'queue']),
  enabled: z.boolean(),
  nextRunAt: z.string().nullable(),
  lastFiredAt: z.string().nullable(),
  lastTurnId: z.string().nullable(),
  lastSkippedAt: z.string().nullable(),
  createdAt: z.string(),
  updatedAt: z.string(),
});

const nameParams = z.strictObject({ name: scheduleNameSchema });

export function registerScheduleRoutes(app: ApiApp, { config, client, log }: ApiDeps): void {
  const queue = createScheduleQueue(config.queueName, client.redis, config.queuePrefix);
  app.addHook('onClose', async () => {
    await queue.close();
  });
  const handles: ScheduleHandles = { db: client.db, queue, warn: (msg, ctx) => log.warn(ctx, msg), maxPromptChars: config.worker.maxPromptChars };

  app.post(
    '/v1/schedules',
    {
      schema: {
        summary: 'Create a schedule: each tick of the cron expression enqueues the prompt as a turn on the conversation',
        tags: ['schedules'],
        body: scheduleBodySchema(config.worker.maxPromptChars),
        response: { 201: scheduleViewSchema },
      },
    },
    async (request, reply) => {
      try {
        const view = await createSchedule(handles, { ...request.body, tenantId: request.tenant });
        return reply.code(201).header('location', `/v1/schedules/${encodeURIComponent(view.name)}`).send(view);
      } catch (err) {
        if (err instanceof ScheduleExistsError) throw conflict(`schedule ${request.body.name} already exists; DELETE it first or pick another name`);
        if (err instanceof ScheduleInputError) {
          throw new HttpProblem(400, 'Bad Request', err.message, err.fields.map((f, i) => ({ field: `body.${f}`, message: err.messages[i] ?? 'is invalid' })));
        }
        throw err;
      }
    },
  );

  app.get(
    '/v1/schedules',
    { schema: { summary: "The caller's schedules, by name", tags: ['schedules'], response: { 200: z.object({ items: z.array(scheduleViewSchema) }) } } },
    async (request) => ({ items: await getSchedules(handles, request.tenant) }),
  );

  app.get(
    '/v1/schedules/:name',
    { schema: { summary: 'One schedule', tags: ['schedules'], params: nameParams, response: { 200: scheduleViewSchema } } },
    async (request) => {
      const view = await getSchedule(handles, request.tenant, request.params.name);
      if (!view) throw notFound(`schedule ${request.params.name}`);
      return view;
    },
  );

  app.patch(
    '/v1/schedules/:name',
    {
      schema: {
        summary: 'Change some fields of a schedule (not its name); a new cron or timezone counts from now; enabled: false stops the ticks',
        tags: ['schedules'],
        params: nameParams,
        body: schedulePatchSchema(config.worker.maxPromptChars),
        response: { 200: scheduleViewSchema },
      },
    },
    async (request) => {
      try {
        const view = await updateSchedule(handles, request.tenant, request.params.name, request.body);
        if (!view) throw notFound(`schedule ${request.params.name}`);
        return view;
      } catch (err) {
        if (err instanceof ScheduleInputError) {
          throw new HttpProblem(400, 'Bad Request', err.message, err.fields.map((f, i) => ({ field: `body.${f}`, message: err.messages[i] ?? 'is invalid' })));
        }
        throw err;
      }
    },
  );

  app.delete(
    '/v1/schedules/:name',
    { schema: { summary: 'Remove a schedule; its ticks stop (turns already enqueued still run)', tags: ['schedules'], params: nameParams, response: { 204: z.null() } } },
    async (request, reply) => {
      const removed = await removeSchedule(handles, request.tenant, request.params.name);
      if (!removed) throw notFound(`schedule ${request.params.name}`);
      return reply.code(204).send(null);
    },
  );
}
