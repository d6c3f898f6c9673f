// GET /v1/turns/:id and POST /v1/turns/:id/cancel, scoped to the caller's tenant: another
// tenant's turn answers exactly like a missing one. (The live routes of a turn, /events
// and /input, are in their own module.)
import { z } from 'zod';
import { summarizeTurn } from '../../queue/client.js';
import { findTenantTurn } from '../../store/queries.js';
import { turnStatuses } from '../../store/schema.js';
import { notFound, problemResponses } from '../problems.js';
import type { ApiApp, ApiDeps } from '../server.js';

/** A turn id in a path: the UUID agentq gave the turn. */
export const turnIdSchema = z.uuid({ error: 'must be a turn id (a UUID)' });

/** TurnSummary of src/queue/client.ts. */
export const turnSummarySchema = z.object({
  turnId: z.string(),
  seq: z.number().int(),
  status: z.enum(turnStatuses),
  attempts: z.number().int(),
  sessionIdBefore: z.string().nullable(),
  sessionIdAfter: z.string().nullable(),
  startedAt: z.string().nullable().describe('ISO 8601'),
  finishedAt: z.string().nullable().describe('ISO 8601'),
  costUsd: z.number().nullable(),
  result: z.string().nullable().describe('the final answer of the CLI'),
  error: z.unknown().describe('{class, message, retryable} of the last failure, or null'),
  toolCalls: z.number().int().nullable().describe('tool calls the model made in the last attempt; null until the turn has run'),
  permissionDenials: z
    .object({
      count: z.number().int(),
      tools: z.array(z.string()),
      everyToolCall: z.boolean().describe('the model called tools and the CLI refused every one'),
    })
    .nullable()
    .describe("tool calls the CLI refused (its permission mode or rules); null when none were"),
  cliVersions: z
    .record(z.string(), z.string())
    .nullable()
    .describe('the Claude Code CLI version that ran each attempt, by attempt number, e.g. {"1": "2.1.197", "2": "2.1.332"}; null before any attempt ran the CLI'),
});

const turnViewSchema = turnSummarySchema.extend({
  conversationId: z.string(),
  prompt: z.string().describe('what the turn asked'),
  sessionId: z.string().nullable().describe('the session the turn left (null until it commits)'),
});

const cancelOutcomes = ['cancelled', 'cancel_requested', 'already_finished'] as const;

export function registerTurnRoutes(app: ApiApp, { client }: ApiDeps): void {
  const params = z.strictObject({ id: turnIdSchema });

  app.get(
    '/v1/turns/:id',
    {
      schema: {
        tags: ['turns'],
        summary: 'A turn: status, attempts, result, cost, error',
        params,
        response: { 200: turnViewSchema, ...problemResponses(400, 401, 404, 429) },
      },
    },
    async (request) => {
      const found = await findTenantTurn(client.db, request.tenant, request.params.id);
      if (!found) throw notFound(`turn ${request.params.id}`);
      return { ...summarizeTurn(found.turn), status: found.turn.status, conversationId: found.conversationId, prompt: found.turn.prompt, sessionId: found.turn.sessionIdAfter };
    },
  );

  app.post(
    '/v1/turns/:id/cancel',
    {
      schema: {
        tags: ['turns'],
        summary: 'Cancel a turn',
        description:
          'A queued turn never runs (`cancelled`); a running one is interrupted and committed as cancelled (`cancel_requested`); a finished one is left alone (`already_finished`).',
        params,
        response: {
          200: z.object({ turnId: z.string(), outcome: z.enum(cancelOutcomes) }),
          ...problemResponses(400, 401, 404, 413, 415, 429),
        },
      },
    },
    async (request) => {
      const { id } = request.params;
      // The tenant of a turn never changes, so checking it before cancelling is race-free.
      if (!(await findTenantTurn(client.db, request.tenant, id))) throw notFound(`turn ${id}`);
      const outcome = await client.cancelTurn(id);
      // Deleted in between: as missing as it would have been a moment later.
      if (outcome === 'not_found') throw notFound(`turn ${id}`);
      return { turnId: id, outcome };
    },
  );
}
