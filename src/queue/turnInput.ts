// What a producer may say about a turn, validated before anything is stored. The
// options are the subset of the runner's options that belong to a turn; where and how
// it runs (cwd, dirs, session) is the worker's business.
import { z } from 'zod';
import { TurnInputError } from '../errors.js';
import { runOptionsFields } from '../runner/options.js';
import { approvalPolicySchema } from '../runner/approvalGate.js';
import { conversationIdSchema, tenantIdSchema } from '../store/ids.js';
import { turnSources } from '../store/schema.js';
import { describeIssues } from '../validation.js';

export const turnOptionsSchema = runOptionsFields
  .pick({
    model: true,
    systemPrompt: true,
    appendSystemPrompt: true,
    allowedTools: true,
    disallowedTools: true,
    permissionMode: true,
    maxTurns: true,
    maxBudgetUsd: true,
    includePartialMessages: true,
    /** Keep the CLI's stdin open for POST /v1/turns/:id/input until its first result. */
    streamInput: true,
  })
  .extend({
    /** A retry after an interruption resumes with a continuation prompt (default) or reruns the prompt. */
    continueOnRetry: z.boolean().optional(),
    /** Keep the CLI process after this turn for the conversation's next one (`false`: never; default AGENTQ_WARM_IDLE_MS). */
    warm: z.union([z.literal(false), z.strictObject({ idleMs: z.number().int().min(100).max(24 * 60 * 60 * 1000) })]).optional(),
    /** Tool calls that wait for a person's allow before they run (docs/approvals.md); overrides the conversation's. */
    approvals: approvalPolicySchema.optional(),
  })
  .strict();

export type TurnOptions = z.infer<typeof turnOptionsSchema>;

const MAX_DELAY_MS = 366 * 24 * 60 * 60 * 1000;
/** BullMQ's priority range (its PRIORITY_LIMIT, 2^21 - 1): 1 is the most urgent; 0 (the default) means plain FIFO. */
const MAX_PRIORITY = 2_097_151;

/** A prompt or a user message: text up to AGENTQ_MAX_PROMPT_CHARS with something besides whitespace, no NUL. */
export function promptSchema(maxPromptChars: number) {
  return z
    .string({ error: 'must be a string' })
    .min(1, { error: 'must not be empty' })
    .max(maxPromptChars, { error: `must be at most ${maxPromptChars} characters` })
    .refine((s) => s.trim() !== '', { error: 'must not be only whitespace' })
    .refine((s) => !s.includes('\0'), { error: 'must not contain NUL' });
}

export function enqueueInputSchema(maxPromptChars: number) {
  return z.strictObject({
    conversationId: conversationIdSchema,
    tenantId: tenantIdSchema.optional(),
    prompt: promptSchema(maxPromptChars),
    options: turnOptionsSchema.optional(),
    idempotencyKey: z
      .string()
      .min(1)
      .max(200)
      .regex(/^[^\p{Cc}]+$/u, { error: 'must not contain control characters' })
      .optional(),
    priority: z.number().int().min(0).max(MAX_PRIORITY).optional(),
    delayMs: z.number().int().min(0).max(MAX_DELAY_MS).optional(),
    source: z.enum(turnSources).optional(),
    /** Sets the conversation's policy: a failed turn cancels the turns queued after it. Default: leave as is (off for a new conversation). */
    haltOnFailure: z.boolean().optional(),
    /** Sets the conversation's approval policy for its turns (docs/approvals.md); null removes it. Default: leave as is. */
    approvals: approvalPolicySchema.nullable().optional(),
  });
}

export type EnqueueTurnInput = z.input<ReturnType<typeof enqueueInputSchema>>;
export type ValidEnqueueTurnInput = z.output<ReturnType<typeof enqueueInputSchema>>;

/** Schemas by prompt limit: building one costs more than using it, and a process has one limit. */
const schemas = new Map<number, ReturnType<typeof enqueueInputSchema>>();

export function parseEnqueueInput(input: unknown, maxPromptChars: number): ValidEnqueueTurnInput {
  let schema = schemas.get(maxPromptChars);
  if (!schema) {
    schema = enqueueInputSchema(maxPromptChars);
    schemas.set(maxPromptChars, schema);
  }
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  const { fields, lines } = describeIssues(parsed.error);
  throw new TurnInputError(`Invalid turn:\n  ${lines.join('\n  ')}`, fields);
}
