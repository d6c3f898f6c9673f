// What a producer may say about a schedule, validated before anything is stored: the name
// (rules of a conversation id), the conversation, prompt and turn options (as for an
// enqueued turn), the cron expression and its IANA time zone, the overlap policy.
import { getNextMillis } from 'bullmq';
import { z } from 'zod';
import { promptSchema, turnOptionsSchema } from '../queue/turnInput.js';
import { conversationIdSchema, tenantIdSchema } from '../store/ids.js';
import { scheduleOverlapPolicies } from '../store/schema.js';
import { ScheduleInputError } from './errors.js';

/** Cron shorthands the parser understands (`@daily` = `0 0 * * *`). */
const CRON_MACROS = ['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@midnight', '@hourly'];

/** Why a cron expression (read in `timezone`) is unusable, or undefined when it is fine. */
export function cronProblem(cron: string, timezone = 'UTC'): string | undefined {
  const fields = cron.trim().split(/\s+/);
  if (!(fields.length === 1 && CRON_MACROS.includes(fields[0]!.toLowerCase())) && fields.length !== 5 && fields.length !== 6) {
    return `must have 5 fields (minute hour day-of-month month day-of-week), 6 with seconds first, or be one of ${CRON_MACROS.join(' ')}; got ${fields.length}`;
  }
  try {
    // The parser BullMQ's job schedulers use, so what passes here is what they run.
    const next = getNextMillis(Date.now(), { pattern: cron, tz: timezone });
    if (next === undefined) return 'never fires';
    return undefined;
  } catch (err) {
    return `is not a valid cron expression: ${(err as Error).message}`;
  }
}

/** Why a time zone name is unusable, or undefined when it is an IANA zone this runtime knows. */
export function timezoneProblem(tz: string): string | undefined {
  // Offsets (`+01:00`) and `Local` are refused: only named zones follow daylight saving.
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+)*$/.test(tz)) return 'must be an IANA time zone name such as Europe/Paris or UTC';
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return undefined;
  } catch {
    return `is not a time zone this runtime knows (an IANA name such as Europe/Paris or UTC)`;
  }
}

export const scheduleNameSchema = conversationIdSchema;

const cronSchema = z
  .string({ error: 'must be a string' })
  .min(1, { error: 'must not be empty' })
  .max(200, { error: 'must be at most 200 characters' })
  .superRefine((cron, ctx) => {
    const problem = cronProblem(cron);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

const timezoneSchema = z
  .string({ error: 'must be a string' })
  .min(1, { error: 'must not be empty' })
  .max(64, { error: 'must be at most 64 characters' })
  .superRefine((tz, ctx) => {
    const problem = timezoneProblem(tz);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  });

/** The body of `POST /v1/schedules` (the tenant comes from the API key). */
export function scheduleBodySchema(maxPromptChars: number) {
  return z
    .strictObject({
      name: scheduleNameSchema,
      conversationId: conversationIdSchema,
      prompt: promptSchema(maxPromptChars),
      options: turnOptionsSchema.optional(),
      cron: cronSchema,
      timezone: timezoneSchema.default('UTC'),
      overlap: z.enum(scheduleOverlapPolicies, { error: `must be one of ${scheduleOverlapPolicies.join(', ')}` }).default('skip'),
      enabled: z.boolean({ error: 'must be true or false' }).default(true),
    })
    .superRefine((s, ctx) => {
      // Each alone may be fine and the pair not (a local time a zone skips is still fine; this catches parser refusals).
      if (typeof s.cron !== 'string' || typeof s.timezone !== 'string') return;
      if (cronProblem(s.cron) || timezoneProblem(s.timezone)) return;
      const problem = cronProblem(s.cron, s.timezone);
      if (problem) ctx.addIssue({ code: 'custom', path: ['cron'], message: `${problem} (in time zone ${s.timezone})` });
    });
}

/**
 * The body of `PATCH /v1/schedules/:name`: any of the fields but the name, at least one.
 * No defaults: a field left out keeps its stored value.
 */
export function schedulePatchSchema(maxPromptChars: number) {
  return z
    .strictObject({
      conversationId: conversationIdSchema.optional(),
      prompt: promptSchema(maxPromptChars).optional(),
      options: turnOptionsSchema.optional(),
      cron: cronSchema.optional(),
      timezone: timezoneSchema.optional(),
      overlap: z.enum(scheduleOverlapPolicies, { error: `must be one of ${scheduleOverlapPolicies.join(', ')}` }).optional(),
      enabled: z.boolean({ error: 'must be true or false' }).optional(),
    })
    .refine((p) => Object.values(p).some((v) => v !== undefined), { error: 'must change at least one field' });
}

export type SchedulePatch = z.input<ReturnType<typeof schedulePatchSchema>>;
export type ValidSchedulePatch = z.output<ReturnType<typeof schedulePatchSchema>>;

/** Validates a change to a schedule; throws ScheduleInputError naming every bad field. */
export function parseSchedulePatch(input: unknown, maxPromptChars: number): ValidSchedulePatch {
  const parsed = schedulePatchSchema(maxPromptChars).safeParse(input);
  if (parsed.success) return parsed.data;
  const issues = parsed.error.issues.map((i) => ({ field: i.path.join('.') || '(root)', message: i.message }));
  throw new ScheduleInputError(
    `Invalid schedule change:\n  ${issues.map((i) => `${i.field}: ${i.message}`).join('\n  ')}`,
    issues.map((i) => i.field),
    issues.map((i) => i.message),
  );
}

export type ScheduleBody = z.input<ReturnType<typeof scheduleBodySchema>>;
export type ScheduleInput = ScheduleBody & { tenantId?: string };
export type ValidScheduleInput = z.output<ReturnType<typeof scheduleBodySchema>> & { tenantId: string };

/** Validates a schedule; throws ScheduleInputError naming every bad field. */
export function parseScheduleInput(input: unknown, maxPromptChars: number): ValidScheduleInput {
  const { tenantId, ...body } = (typeof input === 'object' && input !== null ? input : {}) as Record<string, unknown>;
  const issues: { field: string; message: string }[] = [];
  const tenant = tenantIdSchema.safeParse(tenantId ?? 'default');
  if (!tenant.success) issues.push({ field: 'tenantId', message: tenant.error.issues[0]?.message ?? 'is invalid' });
  const parsed = scheduleBodySchema(maxPromptChars).safeParse(typeof input === 'object' && input !== null ? body : input);
  if (!parsed.success) {
    for (const i of parsed.error.issues) issues.push({ field: i.path.join('.') || '(root)', message: i.message });
  }
  if (issues.length > 0 || !parsed.success || !tenant.success) {
    throw new ScheduleInputError(
      `Invalid schedule:\n  ${issues.map((i) => `${i.field}: ${i.message}`).join('\n  ')}`,
      issues.map((i) => i.field),
      issues.map((i) => i.message),
    );
  }
  return { ...parsed.data, tenantId: tenant.data };
}
