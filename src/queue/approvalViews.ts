// Approvals as producers see them (library, HTTP, CLI): the public view of a row, and a
// decision validated before anything is stored (docs/approvals.md "Deciding").
import type { Redis } from 'ioredis';
import { z } from 'zod';
import { ApprovalInputError } from '../errors.js';
import { LIVE_STREAM_IDLE_TTL_MS, LIVE_STREAM_MAX_LEN, liveStreamKey, type QueueRef } from '../live/keys.js';
import { eventFields } from '../live/streamEntry.js';
import type { ApprovalRow, DecisionEvent } from '../store/approvals.js';
import type { ApprovalStatus } from '../store/schema.js';
import { tenantIdSchema } from '../store/ids.js';
import { describeIssues } from '../validation.js';

export interface ApprovalView {
  approvalId: string;
  tenantId: string;
  /** The agentq id of the conversation (the producer's id is on the turn's conversation). */
  conversationId: string;
  turnId: string;
  toolUseId: string;
  toolName: string;
  input: unknown;
  status: ApprovalStatus;
  requestedAt: string;
  expiresAt: string | null;
  decidedAt: string | null;
  decidedBy: string | null;
  message: string | null;
  updatedInput: unknown;
}

export function approvalView(a: ApprovalRow): ApprovalView {
  return {
    approvalId: a.id,
    tenantId: a.tenantId,
    conversationId: a.conversationId,
    turnId: a.turnId,
    toolUseId: a.toolUseId,
    toolName: a.toolName,
    input: a.input,
    status: a.status,
    requestedAt: a.requestedAt.toISOString(),
    expiresAt: a.expiresAt?.toISOString() ?? null,
    decidedAt: a.decidedAt?.toISOString() ?? null,
    decidedBy: a.decidedBy,
    message: a.message,
    updatedInput: a.updatedInput,
  };
}

/** The largest `updatedInput` (or answers) a decision may carry, as JSON: it is passed to the CLI in argv. */
export const MAX_DECISION_INPUT_BYTES = 32 * 1024;

const objectInput = z.record(z.string(), z.unknown(), { error: 'must be a JSON object' });

export const approvalDecisionSchema = z
  .strictObject({
    id: z.string().min(1),
    tenantId: tenantIdSchema.optional(),
    decision: z.enum(['allow', 'deny'], { error: 'must be "allow" or "deny"' }),
    /** With deny: what the model is told. With allow: a note kept with the approval. */
    message: z.string().max(10_000, { error: 'must be at most 10,000 characters' }).refine((s) => !s.includes('\0'), { error: 'must not contain NUL' }).optional(),
    /** With allow: the input the tool runs with instead of the model's. */
    updatedInput: objectInput.optional(),
    /** With allow on an AskUserQuestion call: the person's answers, by question text. */
    answers: z.record(z.string(), z.string(), { error: 'must map each question to its answer (strings)' }).optional(),
    /** Who decided (default: the tenant). */
    decidedBy: z.string().min(1).max(200).optional(),
  })
  .superRefine((d, ctx) => {
    if (d.decision === 'deny' && d.updatedInput !== undefined) ctx.addIssue({ code: 'custom', path: ['updatedInput'], message: 'is only for allow' });
    if (d.decision === 'deny' && d.answers !== undefined) ctx.addIssue({ code: 'custom', path: ['answers'], message: 'is only for allow' });
    if (d.answers !== undefined && d.updatedInput !== undefined) ctx.addIssue({ code: 'custom', path: ['answers'], message: 'give answers or updatedInput, not both' });
    for (const field of ['updatedInput', 'answers'] as const) {
      if (d[field] !== undefined && Buffer.byteLength(JSON.stringify(d[field])) > MAX_DECISION_INPUT_BYTES) {
        ctx.addIssue({ code: 'custom', path: [field], message: `must be at most ${MAX_DECISION_INPUT_BYTES} bytes as JSON` });
      }
    }
  });

export type ApprovalDecisionInput = z.input<typeof approvalDecisionSchema>;

export type ApprovalDecisionResult =
  | { outcome: 'decided'; approval: ApprovalView }
  /** Decided before (or expired): nothing changed; the approval as it is. */
  | { outcome: 'already_decided'; approval: ApprovalView }
  | { outcome: 'not_found' };

export function parseApprovalDecision(input: unknown): z.output<typeof approvalDecisionSchema> {
  const parsed = approvalDecisionSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  const { fields, lines } = describeIssues(parsed.error);
  throw new ApprovalInputError(`Invalid decision:\n  ${lines.join('\n  ')}`, fields);
}

/** The input the tool runs with after an allow: the person's, or the call's own with the answers added; undefined: unchanged. */
export function decisionInput(d: z.output<typeof approvalDecisionSchema>, current: ApprovalRow): Record<string, unknown> | undefined {
  if (d.decision !== 'allow') return undefined;
  if (d.answers !== undefined) return { ...(current.input as Record<string, unknown>), answers: d.answers };
  return d.updatedInput;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** An approval id is a UUID; anything else is not found (and is never sent to Postgres, which would reject it). */
export function isUuid(id: string): boolean {
  return UUID.test(id);
}

/** Appends the decision to the turn's live stream, as the worker appends its events. */
export async function publishDecision(redis: Redis, queue: QueueRef, e: DecisionEvent): Promise<void> {
  const key = liveStreamKey(queue, e.turnId);
  await redis.xadd(key, 'MAXLEN', '~', String(LIVE_STREAM_MAX_LEN), '*', ...eventFields(e.attempt, e.seq, 'agentq', e.payload));
  await redis.pexpire(key, LIVE_STREAM_IDLE_TTL_MS);
}
