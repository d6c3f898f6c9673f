// Approvals in Postgres (docs/approvals.md): a row per gated tool call a turn stopped at,
// waiting for a person. A decision is one conditional UPDATE that moves a pending,
// unexpired row to `allowed` or `denied`, so of two racing decisions exactly one wins and
// the other learns what the row became; expiry moves pending rows past their time to
// `expired` the same way. A decided turn with nothing left pending is queued again in the
// same transaction, under its conversation's lock. Every read and decision is scoped to a
// tenant: another tenant's approval is not found.
import { and, desc, eq, inArray, or, sql } from 'drizzle-orm';
import { DENIED_MESSAGE, gateInputDigest, type GateDecision } from '../runner/approvalGate.js';
import type { Executor, StoreDb } from './db.js';
import { pgJson, pgText } from './pgSafe.js';
import { approvals, conversations, type ApprovalStatus } from './schema.js';
import type { DueTurn } from './turns.js';

export type ApprovalRow = typeof approvals.$inferSelect;

/** The subtype of the turn event a worker records when the turn stops to wait for a person. */
export const APPROVAL_REQUESTED = 'approval_requested';
/** The subtype of the live event published when a person (or the expiry) decides. */
export const APPROVAL_DECIDED = 'approval_decided';

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
    // The call is the model's: a NUL (which jsonb and text refuse) must not make the commit fail every time.
    .values({ tenantId: r.tenantId, conversationId: r.conversationId, turnId: r.turnId, toolUseId: pgText(r.toolUseId), toolName: pgText(r.toolName), input: pgJson(r.input ?? {}), expiresAt })
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

/**
 * Decides a pending approval, once: of racing decisions exactly one is `decided`. When it
 * was the turn's last pending one, the turn is queued again (`dispatch`: give it a job).
 */
export async function decideApproval(db: StoreDb, d: Decision): Promise<DecideResult & { dispatch?: DueTurn | undefined; event?: DecisionEvent | undefined }> {
  return db.transaction(async (tx) => {
    // The conversation's row lock first, as every change of its turns takes it.
    const [target] = await tx.select({ conversationId: approvals.conversationId }).from(approvals).where(and(eq(approvals.id, d.id), eq(approvals.tenantId, d.tenantId)));
    if (!target) return { kind: 'not_found' as const };
    await lockConversationRow(tx, target.conversationId);
    const result = await decideLocked(tx, d);
    if (result.kind === 'not_found') return result;
    // Decided now, or found expired now: the turn may have nothing left to wait for.
    const changed = result.kind === 'decided' || result.approval.status === 'expired';
    if (!changed) return result;
    const event = await recordDecisionEvent(tx, result.approval);
    return { ...result, event, dispatch: await queueDecidedTurn(tx, result.approval.turnId) };
  });
}

async function lockConversationRow(tx: Executor, conversationId: string): Promise<void> {
  // Index: conversations_pkey.
  await tx.select({ id: conversations.id }).from(conversations).where(eq(conversations.id, conversationId)).for('update');
}

/**
 * Queues a turn that waited for approvals once none of its approvals is pending, to run
 * now; undefined when it still waits, or is not waiting (cancelled meanwhile). Call with
 * the conversation locked.
 */
async function queueDecidedTurn(tx: Executor, turnId: string): Promise<DueTurn | undefined> {
  const r = await tx.execute<{ id: string; run_at: string | Date; priority: number; approval_rounds: number }>(sql`
    update turns set status = 'queued', run_at = now()
     where id = ${turnId}::uuid and status = 'awaiting_approval'
       and not exists (select 1 from approvals a where a.turn_id = turns.id and a.status = 'pending')
    returning id, run_at, priority, approval_rounds`);
  const row = r.rows[0];
  return row ? { id: row.id, runAt: new Date(row.run_at), priority: row.priority, approvalRounds: row.approval_rounds } : undefined;
}

async function decideLocked(db: Executor, d: Decision): Promise<DecideResult> {
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

/**
 * Expires every pending approval past its time and queues the turns that no longer wait
 * for anything (the gate then answers those calls deny). Returns the turns to dispatch.
 */
export async function expireAndQueue(db: StoreDb): Promise<{ expired: ApprovalRow[]; dispatch: DueTurn[] }> {
  const expired = await expireApprovals(db);
  const dispatch: DueTurn[] = [];
  for (const turnId of new Set(expired.map((a) => a.turnId))) {
    const conversationId = expired.find((a) => a.turnId === turnId)!.conversationId;
    const due = await db.transaction(async (tx) => {
      await lockConversationRow(tx, conversationId);
      for (const a of expired.filter((e) => e.turnId === turnId)) await recordDecisionEvent(tx, a);
      return queueDecidedTurn(tx, turnId);
    });
    if (due) dispatch.push(due);
  }
  return { expired, dispatch };
}

/** The turn event that says how an approval was decided, as stored (for the live feed). */
export interface DecisionEvent {
  turnId: string;
  attempt: number;
  seq: number;
  payload: string;
}

/**
 * Records `approval_decided` among the turn's events: after the last event of the attempt
 * that stopped for it (that attempt is over; the next one counts from 1 again).
 */
async function recordDecisionEvent(tx: Executor, a: ApprovalRow): Promise<DecisionEvent> {
  const payload = JSON.stringify({
    type: 'agentq',
    subtype: APPROVAL_DECIDED,
    approvalId: a.id,
    toolUseId: a.toolUseId,
    toolName: a.toolName,
    status: a.status,
    decidedBy: a.decidedBy,
    message: a.message,
  });
  // Index: turns_pkey, then turn_events_turn_attempt_seq_uq.
  const r = await tx.execute<{ attempt: number; seq: number }>(sql`
    with t as (select attempts from turns where id = ${a.turnId}::uuid)
    insert into turn_events (turn_id, attempt, seq, type, payload)
    select ${a.turnId}::uuid, t.attempts,
           coalesce((select max(seq) from turn_events e where e.turn_id = ${a.turnId}::uuid and e.attempt = t.attempts), 0) + 1,
           'agentq', ${payload}
      from t
    returning attempt, seq`);
  const row = r.rows[0]!;
  return { turnId: a.turnId, attempt: row.attempt, seq: row.seq, payload };
}

/** A cancelled turn's pending approvals are answered deny; the next turn's gate denies those calls (see gateDecisions). */
export async function denyPendingOfCancelledTurn(tx: Executor, turnId: string): Promise<void> {
  await tx
    .update(approvals)
    .set({ status: 'denied', decidedAt: sql`now()`, decidedBy: CANCEL_DECIDER, message: 'agentq: not run; the turn that asked for it was cancelled.' })
    .where(and(eq(approvals.turnId, turnId), eq(approvals.status, 'pending')));
}

/** At most this many decisions go to one gate: the turn's latest and a few of cancelled turns. */
const GATE_DECISIONS_MAX = 6;

/** `decided_by` of an approval denied because its turn was cancelled. */
const CANCEL_DECIDER = 'cancel';

/** What the gate says to an allowed call an earlier attempt of the turn was already given (at most once). */
export const ALLOWED_BEFORE =
  'agentq: not run again. A person allowed this call, but the attempt that was given the allow stopped before its end, ' +
  'so the call may or may not have run. Check its effect before asking for it again.';
/** What the gate says to a call whose approval expired. */
export const EXPIRED_MESSAGE = 'agentq: not run; no decision came in time (the approval expired).';

/**
 * The decisions the gate of `attempt` of a turn answers with, by tool_use_id: the turn's
 * latest approval (the one call a resume asks about again: earlier rounds are answered in
 * the session), and the calls of cancelled turns of the conversation (still unanswered in
 * the session the next turn resumes). An allow an earlier attempt was given is answered
 * deny. The allows are marked as given to `attempt` first, under the caller's fence. Few
 * rows, so the gate's argv stays far below Linux's 128 KiB for one argument. Also names the
 * call of the turn's latest approval: the one a prompt-less resume continues.
 */
export async function gateDecisions(tx: Executor, q: { turnId: string; conversationId: string; attempt: number }): Promise<GateDecisions> {
  await tx
    .update(approvals)
    .set({ answeredInAttempt: q.attempt })
    .where(and(eq(approvals.turnId, q.turnId), eq(approvals.status, 'allowed'), sql`${approvals.answeredInAttempt} is null`));
  // Index: approvals_conversation_idx.
  const rows = await tx
    .select()
    .from(approvals)
    .where(
      and(
        eq(approvals.conversationId, q.conversationId),
        inArray(approvals.status, ['allowed', 'denied', 'expired']),
        or(
          eq(approvals.id, sql`(select l.id from approvals l where l.turn_id = ${q.turnId}::uuid order by l.requested_at desc, l.id limit 1)`),
          eq(approvals.decidedBy, CANCEL_DECIDER),
        ),
      ),
    )
    .orderBy(desc(approvals.requestedAt))
    .limit(GATE_DECISIONS_MAX);
  const byToolUseId: Record<string, GateDecision> = {};
  for (const a of rows) byToolUseId[a.toolUseId] = gateDecisionOf(a, q.attempt);
  // A cancelled turn never runs again: the only row of this turn is its latest approval.
  return { byToolUseId, awaitedToolUseId: rows.find((a) => a.turnId === q.turnId)?.toolUseId };
}

/** What gateDecisions reads for one attempt. */
export interface GateDecisions {
  byToolUseId: Record<string, GateDecision>;
  /** The tool_use id of the turn's latest approval, when it is decided. */
  awaitedToolUseId: string | undefined;
}

function gateDecisionOf(a: ApprovalRow, attempt: number): GateDecision {
  const tool = a.toolName;
  switch (a.status) {
    case 'allowed':
      if (a.answeredInAttempt !== null && a.answeredInAttempt !== attempt) return { decision: 'deny', tool, message: ALLOWED_BEFORE };
      // Allowed as shown: the digest of that input, which the permission lock checks the call against.
      return a.updatedInput === null
        ? { decision: 'allow', tool, inputSha256: gateInputDigest(a.input) }
        : { decision: 'allow', tool, updatedInput: a.updatedInput as Record<string, unknown> };
    case 'expired':
      return { decision: 'deny', tool, message: EXPIRED_MESSAGE };
    default:
      return { decision: 'deny', tool, message: a.message ?? DENIED_MESSAGE };
  }
}

/** The approvals of one turn, oldest first (for `show` and the turn's API view). */
export async function approvalsOfTurn(db: Executor, turnId: string): Promise<ApprovalRow[]> {
  return db.select().from(approvals).where(eq(approvals.turnId, turnId)).orderBy(approvals.requestedAt);
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
