// Approvals over HTTP (docs/approvals.md "Deciding"), scoped to the caller's tenant: another
// tenant's approval answers exactly like a missing one; a second decision gets 409.
import { z } from 'zod';
import { approvalStatuses } from '../../store/schema.js';
import { conflict, notFound, problemResponses } from '../problems.js';
import type { ApiApp, ApiDeps } from '../server.js';

/** ApprovalView of src/queue/approvalViews.ts. */
export const approvalViewSchema = z.object({
  approvalId: z.string(),
  tenantId: z.string(),
  conversationId: z.string().describe("agentq's id of the conversation"),
  turnId: z.string(),
  toolUseId: z.string().describe("the CLI's id of the tool call"),
  toolName: z.string(),
  input: z.unknown().describe('the input the model gave the tool'),
  status: z.enum(approvalStatuses),
  requestedAt: z.string().describe('ISO 8601'),
  expiresAt: z.string().nullable().describe('ISO 8601; null: it waits for ever'),
  decidedAt: z.string().nullable(),
  decidedBy: z.string().nullable(),
  message: z.string().nullable(),
  updatedInput: z.unknown(),
});

const params = z.strictObject({ id: z.uuid({ error: 'must be an approval id (a UUID)' }) });

const decisionBody = z.strictObject({
  decision: z.enum(['allow', 'deny']),
  message: z.string().optional().describe('with deny: what the model is told'),
  updatedInput: z.record(z.string(), z.unknown()).optional().describe('with allow: the input the tool runs with instead'),
  answers: z.record(z.string(), z.string()).optional().describe('with allow on AskUserQuestion: the answer to each question, by its text'),
});

export function registerApprovalRoutes(app: ApiApp, { client }: ApiDeps): void {
  app.get(
    '/v1/approvals',
    {
      schema: {
        tags: ['approvals'],
        summary: "The tenant's approvals, newest first",
        querystring: z.strictObject({
          status: z.enum(approvalStatuses).optional(),
          limit: z.coerce.number().int().min(1).max(500).optional(),
        }),
        response: { 200: z.object({ approvals: z.array(approvalViewSchema) }), ...problemResponses(400, 401, 429) },
      },
    },
    async (request) => ({ approvals: await client.listApprovals({ tenantId: request.tenant, status: request.query.status, limit: request.query.limit }) }),
  );

  app.get(
    '/v1/approvals/:id',
    { schema: { tags: ['approvals'], summary: 'One approval', params, response: { 200: approvalViewSchema, ...problemResponses(400, 401, 404, 429) } } },
    async (request) => {
      const found = await client.getApproval(request.params.id, request.tenant);
      if (!found) throw notFound(`approval ${request.params.id}`);
      return found;
    },
  );

  app.post(
    '/v1/approvals/:id',
    {
      schema: {
        tags: ['approvals'],
        summary: 'Allow or deny a gated tool call',
        description: 'Decides a pending approval once; the turn then runs on, on any worker. 409 when it was decided (or expired) before.',
        params,
        body: decisionBody,
        response: { 200: approvalViewSchema, ...problemResponses(400, 401, 404, 409, 413, 415, 429) },
      },
    },
    async (request) => {
      const r = await client.decideApproval({ ...request.body, id: request.params.id, tenantId: request.tenant, decidedBy: `api:${request.tenant}` });
      if (r.outcome === 'not_found') throw notFound(`approval ${request.params.id}`);
      if (r.outcome === 'already_decided') throw conflict(`approval ${request.params.id} is already ${r.approval.status}`);
      return r.approval;
    },
  );
}
