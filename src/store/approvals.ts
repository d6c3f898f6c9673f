// Approvals in Postgres (issue 21, the store only so far): a row per gated tool call a
// turn stopped at, waiting for a person. A decision is one conditional UPDATE that moves a
// pending, unexpired row to `allowed` or `denied`, so of two racing decisions exactly one
// wins and the other learns what the row became; expiry moves pending rows past their
// time to `expired` the same way. Every read and decision is scoped to a tenant: another
// tenant's approval is not found.
import { and, desc, eq, sql } from 'drizzle-orm';
import type { Executor } from './db.js';
import { approvals, type ApprovalStatus } from './schema.js';

export type ApprovalRow = typeof approvals.$inferSelect;

export interface ApprovalRequest {
  tenantId: string;
  conversationId: string;
  turnId: string;
  toolUseId: string;
  toolName: string;
  input: unknown;
  /** Wait at most this long for a decision; undefined: for ever. */
  timeoutMs?: number | undefined;
}

/**
 * Records that the turn waits for a decision on `toolUseId`. Idempotent: the same call
 * asked again (a retried commit) returns the row already there, decided or not.
 */
export async function requestApproval(db: Executor, r: ApprovalRequest): Promise<ApprovalRow> {
  const expiresAt = r.timeoutMs === undefined ? null : sql`now() + make_interval(secs => ${r.timeoutMs / 1000})`;
  const inserted = await db
    .insert(approvals)
    .values({ tenantId: r.tenantId, conversationId: r.conversationId, turnId: r.turnId, toolUseId: r.toolUseId, toolName: r.toolName, input: r.input ?? {}, expiresAt })
    .onConflictDoNothing({ target: [approvals.turnId, approvals.toolUseId] })
    .returning();
  if (inserted[0]) return inserted[0];
  // Index: approvals_turn_tool_use_uq.
  const [existing] = await db.select().from(approvals).where(and(eq(approvals.turnId, r.turnId), eq(approvals.toolUseId, r.toolUseId)));
  return existing!;
}

/** A tenant's approvals, newest first; only those with `status` when given. */
export async function listApprovals(db: Executor, q: { tenantId: string; status?: ApprovalStatus; limit?: number }): Promise<ApprovalRow[]> {
  const where = q.status === undefined ? eq(approvals.tenantId, q.tenantId) : and(eq(approvals.tenantId, q.tenantId), eq(approvals.status, q.status));
  // Index: approvals_tenant_status_requested_idx.
  return db.select().from(approvals).where(where).orderBy(desc(approvals.requestedAt), desc(approvals.id)).limit(q.limit ?? 100);
}

/** One approval of a tenant; undefined when there is none (or it is another tenant's). */
export async function getApproval(db: Executor, tenantId: string, id: string): Promise<ApprovalRow | undefined> {
  const [row] = await db.select().from(approvals).where(and(eq(approvals.id, id), eq(approvals.tenantId, tenantId)));
  return row;
}

export interface Decision {
  tenantId: string;
  id: string;
  decision: 'allow' | 'deny';
  message?: string | undefined;
  /** With allow: the input the tool runs with instead. */
  updatedInput?: Record<string, unknown> | undefined;
  decidedBy: string;
}

export type DecideResult =
  | { kind: 'decided'; approval: ApprovalRow }
  | { kind: 'not_found' }
  /** Decided before (or expired): the row as it is. */
  | { kind: 'already_decided'; approval: ApprovalRow };

/** Decides a pending approval, once: of racing decisions exactly one is `decided`. */
export async function decideApproval(db: Executor, d: Decision): Promise<DecideResult> {
  const [row] = await db
    .update(approvals)
    .set({
      status: d.decision === 'allow' ? 'allowed' : 'denied',
      decidedAt: sql`now()`,
      decidedBy: d.decidedBy,
      message: d.message ?? null,
      updatedInput: d.decision === 'allow' ? (d.updatedInput ?? null) : null,
    })
    .where(
      and(
        eq(approvals.id, d.id),
        eq(approvals.tenantId, d.tenantId),
        eq(approvals.status, 'pending'),
        sql`(${approvals.expiresAt} is null or ${approvals.expiresAt} > now())`,
      ),
    )
    .returning();
  if (row) return { kind: 'decided', approval: row };
  // Not pending (decided, or expired now or before), or not this tenant's.
  await expireApprovals(db);
  const current = await getApproval(db, d.tenantId, d.id);
  return current ? { kind: 'already_decided', approval: current } : { kind: 'not_found' };
}

/** Moves every pending approval past its time to `expired`; returns them. */
export async function expireApprovals(db: Executor): Promise<ApprovalRow[]> {
  // Index: approvals_pending_expiry_idx.
  return db
    .update(approvals)
    .set({ status: 'expired', decidedAt: sql`now()`, decidedBy: 'expiry', message: 'no decision came in time' })
    .where(and(eq(approvals.status, 'pending'), sql`${approvals.expiresAt} <= now()`))
    .returning();
}
