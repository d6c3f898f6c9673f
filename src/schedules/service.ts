// Creating, reading and removing schedules, shared by the HTTP API and the CLI. The row
// is written first and the job scheduler second; when Redis is unreachable the row still
// stands and the workers' next sync adds (or removes) the scheduler.
import { getNextMillis, type Queue } from 'bullmq';
import type { StoreDb } from '../store/db.js';
import { ScheduleInputError } from './errors.js';
import { cronProblem, parseScheduleInput, parseSchedulePatch, type ScheduleInput, type SchedulePatch } from './input.js';
import { removeScheduler, upsertScheduler, type TickJobData } from './scheduler.js';
import { deleteSchedule, findSchedule, insertSchedule, listSchedules, lockScheduleByName, writeSchedule, type ScheduleRow } from './store.js';

/** A schedule as the API and `agentq schedule list --json` show it. */
export interface ScheduleView {
  id: string;
  name: string;
  tenantId: string;
  conversationId: string;
  prompt: string;
  options: Record<string, unknown>;
  cron: string;
  timezone: string;
  overlap: 'skip' | 'queue';
  enabled: boolean;
  /** The next tick by the cron expression (null when disabled). */
  nextRunAt: string | null;
  lastFiredAt: string | null;
  lastTurnId: string | null;
  lastSkippedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

export function scheduleView(row: ScheduleRow, now = Date.now()): ScheduleView {
  let next: number | undefined;
  try {
    next = row.enabled ? getNextMillis(now, { pattern: row.cron, tz: row.timezone }) : undefined;
  } catch {
    next = undefined;
  }
  return {
    id: row.id,
    name: row.name,
    tenantId: row.tenantId,
    conversationId: row.conversationExternalId,
    prompt: row.prompt,
    options: (row.options ?? {}) as Record<string, unknown>,
    cron: row.cron,
    timezone: row.timezone,
    overlap: row.overlap,
    enabled: row.enabled,
    nextRunAt: next === undefined ? null : new Date(next).toISOString(),
    lastFiredAt: row.lastFiredAt?.toISOString() ?? null,
    lastTurnId: row.lastTurnId,
    lastSkippedAt: row.lastSkippedAt?.toISOString() ?? null,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  };
}

export interface ScheduleHandles {
  db: StoreDb;
  queue: Queue<TickJobData>;
  /** Told when Redis refused a scheduler change (the row change stands; the workers' sync finishes it). */
  warn?: (message: string, context: { err: unknown; scheduleId: string }) => void;
  maxPromptChars: number;
}

/** Validates (ScheduleInputError), stores (ScheduleExistsError on a taken name), then adds the job scheduler. */
export async function createSchedule(h: ScheduleHandles, input: ScheduleInput): Promise<ScheduleView> {
  const valid = parseScheduleInput(input, h.maxPromptChars);
  const row = await insertSchedule(h.db, valid);
  if (row.enabled) {
    await upsertScheduler(h.queue, row).catch((err: unknown) =>
      h.warn?.('could not add the job scheduler in Redis; the workers add it at their next sync', { err, scheduleId: row.id }),
    );
  }
  return scheduleView(row);
}

export async function getSchedules(h: Pick<ScheduleHandles, 'db'>, tenantId?: string): Promise<ScheduleView[]> {
  return (await listSchedules(h.db, tenantId)).map((r) => scheduleView(r));
}

export async function getSchedule(h: Pick<ScheduleHandles, 'db'>, tenantId: string, name: string): Promise<ScheduleView | undefined> {
  const row = await findSchedule(h.db, tenantId, name);
  return row && scheduleView(row);
}

/**
 * Changes some fields of a schedule (ScheduleInputError naming the bad ones; nothing is
 * changed then), then replaces or removes its job scheduler: a new cron or zone counts
 * from now, `enabled: false` stops the ticks, `enabled: true` starts them again.
 * Undefined when no such schedule exists.
 */
export async function updateSchedule(h: ScheduleHandles, tenantId: string, name: string, patch: SchedulePatch): Promise<ScheduleView | undefined> {
  const change = parseSchedulePatch(patch, h.maxPromptChars);
  const row = await h.db.transaction(async (tx) => {
    const current = await lockScheduleByName(tx, tenantId, name);
    if (!current) return undefined;
    const cron = change.cron ?? current.cron;
    const timezone = change.timezone ?? current.timezone;
    // Each may be fine alone and the pair not (the same check as on create).
    const pairProblem = cronProblem(cron, timezone);
    if (pairProblem) {
      const field = change.cron !== undefined ? 'cron' : 'timezone';
      throw new ScheduleInputError(`Invalid schedule change:\n  ${field}: ${pairProblem} (in time zone ${timezone})`, [field], [`${pairProblem} (in time zone ${timezone})`]);
    }
    return writeSchedule(tx, current.id, {
      ...(change.conversationId !== undefined ? { conversationExternalId: change.conversationId } : {}),
      ...(change.prompt !== undefined ? { prompt: change.prompt } : {}),
      ...(change.options !== undefined ? { options: change.options } : {}),
      ...(change.cron !== undefined ? { cron: change.cron } : {}),
      ...(change.timezone !== undefined ? { timezone: change.timezone } : {}),
      ...(change.overlap !== undefined ? { overlap: change.overlap } : {}),
      ...(change.enabled !== undefined ? { enabled: change.enabled } : {}),
    });
  });
  if (!row) return undefined;
  // Prompt, options and overlap are read from the row at each tick: only the timing needs Redis.
  const timing = change.cron !== undefined || change.timezone !== undefined || change.enabled !== undefined;
  if (timing) {
    await (row.enabled ? upsertScheduler(h.queue, row) : removeScheduler(h.queue, row.id)).catch((err: unknown) =>
      h.warn?.('could not change the job scheduler in Redis; the workers finish it at their next sync', { err, scheduleId: row.id }),
    );
  }
  return scheduleView(row);
}

/** Deletes the row, then the job scheduler; undefined when no such schedule exists. */
export async function removeSchedule(h: ScheduleHandles, tenantId: string, name: string): Promise<ScheduleView | undefined> {
  const row = await deleteSchedule(h.db, tenantId, name);
  if (!row) return undefined;
  // A tick already planned finds no row and does nothing; a failed removal is finished by the next sync.
  await removeScheduler(h.queue, row.id).catch((err: unknown) =>
    h.warn?.('could not remove the job scheduler from Redis; the workers remove it at their next sync', { err, scheduleId: row.id }),
  );
  return scheduleView(row);
}
