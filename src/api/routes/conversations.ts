// The conversation routes: enqueue a turn, list a tenant's conversations, read one and its
// transcript, delete one with everything it owns. The tenant always comes from the API
// key; another tenant's conversation answers exactly like a missing one.
import { z } from 'zod';
import { enqueueInputSchema } from '../../queue/turnInput.js';
import { conversationIdSchema, sessionIdSchema } from '../../store/ids.js';
import {
  conversationStatuses,
  deleteIdleConversation,
  findTenantConversation,
  listConversations,
  readCommittedSessionLines,
  readConversationEvents,
} from '../../store/queries.js';
import { turnStatuses } from '../../store/schema.js';
import { conflict, notFound, problemResponses } from '../problems.js';
import type { ApiApp, ApiDeps } from '../server.js';
import { turnSummarySchema } from './turns.js';

const DEFAULT_LIMIT = 50;
const MAX_LIMIT = 500;

/**
 * Cursors are opaque to clients: base64url of the JSON of the last item's key. Decoding
 * checks the shape, so a cursor that this API did not hand out is a 400 naming
 * `query.cursor`, never a query with odd values.
 */
export function encodeCursor(key: unknown): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url');
}

function cursorSchema<T>(key: z.ZodType<T>) {
  return z
    .string()
    .max(2048, { error: 'is too long to be a cursor' })
    .transform((s, ctx): T => {
      const fail = () => {
        ctx.addIssue({ code: 'custom', message: 'is not a cursor returned by this API (pass nextCursor back unchanged)' });
        return z.NEVER;
      };
      if (!/^[A-Za-z0-9_-]+$/.test(s)) return fail();
      let value: unknown;
      try {
        value = JSON.parse(Buffer.from(s, 'base64url').toString('utf8'));
      } catch {
        return fail();
      }
      const parsed = key.safeParse(value);
      return parsed.success ? parsed.data : fail();
    });
}

const limitSchema = z
  .string()
  .regex(/^\d{1,4}$/, { error: `must be a whole number from 1 to ${MAX_LIMIT}` })
  .transform(Number)
  .pipe(z.number().min(1, { error: 'must be at least 1' }).max(MAX_LIMIT, { error: `must be at most ${MAX_LIMIT}` }))
  .optional()
  .describe(`page size, default ${DEFAULT_LIMIT}, at most ${MAX_LIMIT}`);

const listCursorKey = z.strictObject({ c: conversationIdSchema });
const sessionCursorKey = z.strictObject({ s: sessionIdSchema, l: z.number().int().min(0) });
const eventCursorKey = z.strictObject({ t: z.number().int().min(1), a: z.number().int().min(0), q: z.number().int().min(0) });

const idParams = z.strictObject({ id: conversationIdSchema });

const conversationItemSchema = z.object({
  conversationId: z.string(),
  sessionId: z.string().nullable(),
  status: z.enum(conversationStatuses),
  turnsTotal: z.number().int().describe('finished turns'),
  costUsd: z.number(),
  updatedAt: z.string().describe('ISO 8601'),
});

const sessionEntrySchema = z.object({
  kind: z.literal('session'),
  sessionId: z.string(),
  line: z.number().int().describe('0-based line of the session file'),
  entry: z.unknown().describe('the parsed JSONL line the CLI wrote'),
});

const eventItemSchema = z.object({
  kind: z.literal('event'),
  turnId: z.string(),
  turnSeq: z.number().int(),
  attempt: z.number().int(),
  seq: z.number().int(),
  type: z.string(),
  createdAt: z.string().describe('ISO 8601'),
  event: z.unknown().describe('the parsed stream-json line (or agentq event)'),
});

function parseLine(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export function registerConversationRoutes(app: ApiApp, { config, client, log }: ApiDeps): void {
  // The body of POST .../turns is the library's turn input minus what the path, the
  // headers and the API key say, so its field errors are the same as enqueueTurn's.
  const turnInput = enqueueInputSchema(config.worker.maxPromptChars);
  const turnBody = turnInput.omit({ conversationId: true, tenantId: true, idempotencyKey: true, source: true });
  const turnHeaders = z.looseObject({ 'idempotency-key': turnInput.shape.idempotencyKey });

  app.post(
    '/v1/conversations/:id/turns',
    {
      schema: {
        tags: ['conversations'],
        summary: 'Enqueue a turn',
        description:
          'Creates the conversation on first use. The same `Idempotency-Key` on the same conversation returns the turn it created first (`created: false`) and stores nothing.',
        params: idParams,
        headers: turnHeaders,
        body: turnBody,
        response: {
          202: z.object({
            turnId: z.string(),
            conversationId: z.string(),
            seq: z.number().int(),
            status: z.enum(turnStatuses),
            created: z.boolean(),
          }),
          ...problemResponses(400, 401, 413, 415, 429),
        },
      },
    },
    async (request, reply) => {
      const key = request.headers['idempotency-key'];
      const turn = await client.enqueueTurn({
        ...request.body,
        conversationId: request.params.id,
        tenantId: request.tenant,
        source: 'api',
        ...(key !== undefined ? { idempotencyKey: key } : {}),
      });
      return reply.code(202).send({ ...turn, status: turn.status as (typeof turnStatuses)[number] });
    },
  );

  app.get(
    '/v1/conversations',
    {
      schema: {
        tags: ['conversations'],
        summary: "List the tenant's conversations",
        description:
          'In conversation-id order; `status` is derived from the turns: `running` (a turn runs), `awaiting_approval` (a turn waits for a person to approve a tool call), `queued` (one waits), `idle`. Pass `nextCursor` back as `cursor` for the next page; null at the end.',
        querystring: z.strictObject({
          status: z.enum(conversationStatuses).optional(),
          limit: limitSchema,
          cursor: cursorSchema(listCursorKey).optional(),
        }),
        response: {
          200: z.object({ items: z.array(conversationItemSchema), nextCursor: z.string().nullable() }),
          ...problemResponses(400, 401, 429),
        },
      },
    },
    async (request) => {
      const limit = request.query.limit ?? DEFAULT_LIMIT;
      // One more than the page, so the last page says so.
      const rows = await listConversations(client.db, {
        tenantId: request.tenant,
        status: request.query.status,
        afterExternalId: request.query.cursor?.c,
        limit: limit + 1,
      });
      const page = rows.slice(0, limit);
      return {
        items: page.map((r) => ({
          conversationId: r.externalId,
          sessionId: r.sessionId,
          status: r.status,
          turnsTotal: r.turnsTotal,
          costUsd: r.costUsd,
          updatedAt: r.updatedAt.toISOString(),
        })),
        nextCursor: rows.length > limit ? encodeCursor({ c: page[page.length - 1]!.externalId }) : null,
      };
    },
  );

  app.get(
    '/v1/conversations/:id',
    {
      schema: {
        tags: ['conversations'],
        summary: 'A conversation and its turns',
        params: idParams,
        response: {
          200: z.object({
            conversationId: z.string(),
            tenantId: z.string(),
            sessionId: z.string().nullable(),
            turns: z.array(turnSummarySchema),
          }),
          ...problemResponses(400, 401, 404, 429),
        },
      },
    },
    async (request) => {
      const view = await client.getConversation(request.params.id, request.tenant);
      if (!view) throw notFound(`conversation ${request.params.id}`);
      return { ...view, turns: view.turns.map((t) => ({ ...t, status: t.status as (typeof turnStatuses)[number] })) };
    },
  );

  app.get(
    '/v1/conversations/:id/transcript',
    {
      schema: {
        tags: ['conversations'],
        summary: 'The transcript: committed session entries, then the events of every turn',
        description:
          "First the committed lines of the conversation's CLI session (`kind: session`, in file order), then the stored events of its turns (`kind: event`, by turn seq, attempt, event seq). Lines of a turn still running appear once it commits; its events as they are checkpointed (or live at /v1/turns/:id/events).",
        params: idParams,
        querystring: z.strictObject({
          limit: limitSchema,
          cursor: cursorSchema(z.union([sessionCursorKey, eventCursorKey])).optional(),
        }),
        response: {
          200: z.object({
            items: z.array(z.discriminatedUnion('kind', [sessionEntrySchema, eventItemSchema])),
            nextCursor: z.string().nullable(),
          }),
          ...problemResponses(400, 401, 404, 429),
        },
      },
    },
    async (request) => {
      const conv = await findTenantConversation(client.db, request.tenant, request.params.id);
      if (!conv) throw notFound(`conversation ${request.params.id}`);
      const limit = request.query.limit ?? DEFAULT_LIMIT;
      const cursor = request.query.cursor;
      type Item = z.infer<typeof sessionEntrySchema> | z.infer<typeof eventItemSchema>;
      const items: Item[] = [];
      // One more than the page, so the last page says so.
      const want = limit + 1;
      if ((cursor === undefined || 's' in cursor) && conv.sessionId !== null) {
        // A cursor of an earlier session (the conversation forked since) continues at the
        // same line of the current one: a fork starts with the history it was forked from.
        const lines = await readCommittedSessionLines(client.db, {
          conversationId: conv.id,
          sessionId: conv.sessionId,
          fromLine: cursor ? cursor.l + 1 : 0,
          limit: want,
        });
        for (const l of lines) items.push({ kind: 'session', sessionId: conv.sessionId, line: l.line, entry: parseLine(l.text) });
      }
      if (items.length < want) {
        const events = await readConversationEvents(client.db, {
          conversationId: conv.id,
          after: cursor && 't' in cursor ? { turnSeq: cursor.t, attempt: cursor.a, seq: cursor.q } : undefined,
          limit: want - items.length,
        });
        for (const e of events) {
          items.push({
            kind: 'event',
            turnId: e.turnId,
            turnSeq: e.turnSeq,
            attempt: e.attempt,
            seq: e.seq,
            type: e.type,
            createdAt: e.createdAt.toISOString(),
            event: parseLine(e.payload),
          });
        }
      }
      const page = items.slice(0, limit);
      const last = page[page.length - 1];
      let nextCursor: string | null = null;
      if (items.length > limit && last) {
        nextCursor = encodeCursor(last.kind === 'session' ? { s: last.sessionId, l: last.line } : { t: last.turnSeq, a: last.attempt, q: last.seq });
      }
      return { items: page, nextCursor };
    },
  );

  app.delete(
    '/v1/conversations/:id',
    {
      schema: {
        tags: ['conversations'],
        summary: 'Delete a conversation and everything it owns',
        description:
          'Turns, their events, the stored session and the workspace archive, and the queued jobs of its turns. Refused with 409 while a turn runs: cancel it first or wait for it to finish.',
        params: idParams,
        response: { 204: z.null().describe('deleted'), ...problemResponses(400, 401, 404, 409, 413, 415, 429) },
      },
    },
    async (request, reply) => {
      const { id } = request.params;
      const outcome = await deleteIdleConversation(client.db, request.tenant, id);
      if (outcome.kind === 'not_found') throw notFound(`conversation ${id}`);
      if (outcome.kind === 'running') {
        throw conflict(`turn ${outcome.turnId} of conversation ${id} is running; cancel it (POST /v1/turns/${outcome.turnId}/cancel) or wait for it to finish, then delete again`);
      }
      // After the commit: a job removed late is harmless (its claim finds no turn and acks);
      // one that is active right now cannot be removed and acknowledges itself the same way.
      await Promise.all(
        outcome.jobTurnIds.map((turnId) =>
          client.queue.remove(turnId).catch((err: unknown) => log.warn({ err, turnId }, 'could not remove the job of a deleted turn')),
        ),
      );
      return reply.code(204).send(null);
    },
  );
}
