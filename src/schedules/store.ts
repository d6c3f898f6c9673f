// Schedule rows in Postgres, the record the BullMQ schedulers are synced from. Each query
// names the index it relies on.
import { and, asc, eq, sql } from 'drizzle-orm';
import type { Executor, StoreDb, StoreTx } from '../store/db.js';
import { schedules } from '../store/schema.js';
import { ScheduleExistsError } from './errors.js';
import type { ValidScheduleInput } from './input.js';

export type ScheduleRow = typeof schedules.$inferSelect;

/** Inserts a validated schedule; ScheduleExistsError when the tenant already has the name. */
export async function insertSchedule(db: Executor, input: ValidScheduleInput): Promise<ScheduleRow> {
  // Index: schedules_tenant_name_uq (the conflict target).
  const rows = await db
    .insert(schedules)
    .values({
      tenantId: input.tenantId,
      name: input.name,
      conversationExternalId: input.conversationId,
      prompt: input.prompt,
      options: input.options ?? {},
      cron: input.cron,
      timezone: input.timezone,
      overlap: input.overlap,
      enabled: input.enabled,
    })
    .onConflictDoNothing({ target: [schedules.tenantId, schedules.name] })
    .returning();
  if (!rows[0]) throw new ScheduleExistsError(input.tenantId, input.name);
  return rows[0];
}

/** A tenant's schedules by name, or every tenant's. Index: schedules_tenant_name_uq. */
export async function listSchedules(db: Executor, tenantId?: string): Promise<ScheduleRow[]> {
  const q = db.select().from(schedules);
  return (tenantId === undefined ? q : q.where(eq(schedules.tenantId, tenantId))).orderBy(asc(schedules.tenantId), asc(schedules.name));
}

/** Index: schedules_tenant_name_uq. */
export async function findSchedule(db: Executor, tenantId: string, name: string): Promise<ScheduleRow | undefined> {
  const rows = await db
    .select()
    .from(schedules)
    .where(and(eq(schedules.tenantId, tenantId), eq(schedules.name, name)));
  return rows[0];
}

/** Locks the row for the rest of `tx` (an update reads, merges and writes as one step). Index: schedules_tenant_name_uq. */
export async function lockScheduleByName(tx: StoreTx, tenantId: string, name: string): Promise<ScheduleRow | undefined> {
  const rows = await tx
    .select()
    .from(schedules)
    .where(and(eq(schedules.tenantId, tenantId), eq(schedules.name, name)))
    .for('update');
  return rows[0];
}

/** Writes the changed fields of a schedule. Primary key. */
export async function writeSchedule(
  tx: StoreTx,
  id: string,
  change: Partial<Pick<ScheduleRow, 'conversationExternalId' | 'prompt' | 'options' | 'cron' | 'timezone' | 'overlap' | 'enabled'>>,
): Promise<ScheduleRow> {
  const rows = await tx
    .update(schedules)
    .set({ ...change, updatedAt: sql`now()` })
    .where(eq(schedules.id, id))
    .returning();
  return rows[0]!;
}

/** Deletes and returns the row, or undefined when there was none. Index: schedules_tenant_name_uq. */
export async function deleteSchedule(db: Executor, tenantId: string, name: string): Promise<ScheduleRow | undefined> {
  const rows = await db
    .delete(schedules)
    .where(and(eq(schedules.tenantId, tenantId), eq(schedules.name, name)))
    .returning();
  return rows[0];
}

/** What the BullMQ side needs of every schedule (a full scan; schedules are few). */
export async function scheduleSpecs(db: StoreDb): Promise<Pick<ScheduleRow, 'id' | 'cron' | 'timezone' | 'enabled'>[]> {
  return db.select({ id: schedules.id, cron: schedules.cron, timezone: schedules.timezone, enabled: schedules.enabled }).from(schedules);
}

/**
 * Locks a schedule's row for the rest of `tx`: ticks of one schedule (a re-delivered tick,
 * or two ticks close together on two workers) decide one after the other, so the overlap
 * check and the enqueue behave as one step. Primary key.
 */
export async function lockSchedule(tx: StoreTx, id: string): Promise<ScheduleRow | undefined> {
  const rows = await tx.select().from(schedules).where(eq(schedules.id, id)).for('update');
  return rows[0];
}

/**
 * Whether the conversation has a turn queued, running or waiting for an approval. Indexes:
 * conversations_tenant_external_uq, then turns_unfinished_conversation_seq_idx.
 */
export async function hasActiveTurn(db: Executor, tenantId: string, externalId: string): Promise<boolean> {
  const r = await db.execute<{ active: boolean }>(sql`select exists (
      select 1 from conversations c join turns t on t.conversation_id = c.id
      where c.tenant_id = ${tenantId} and c.external_id = ${externalId} and t.status in ('queued', 'running', 'awaiting_approval')
    ) as active`);
  return r.rows[0]?.active === true;
}

export async function markFired(db: Executor, id: string, tickAt: Date, turnId: string): Promise<void> {
  await db.update(schedules).set({ lastFiredAt: tickAt, lastTurnId: turnId }).where(eq(schedules.id, id));
}

export async function markSkipped(db: Executor, id: string, tickAt: Date): Promise<void> {
  await db.update(schedules).set({ lastSkippedAt: tickAt }).where(eq(schedules.id, id));
}
