// Turn state in Postgres, the system of record for the turn protocol: enqueue (seq and
// idempotency under the conversation's row lock), claim with a lease and a fencing
// token, lease renewal, the fence check every write of an attempt makes, finishing and
// requeueing, and the queries the reconciler and dispatcher need.
import { and, asc, eq, getTableColumns, inArray, lt, sql } from 'drizzle-orm';
import type { Executor, StoreDb } from './db.js';
import { StaleLeaseError } from '../errors.js';
import { conversations, turnEvents, turns, type TurnSource } from './schema.js';
import type { ConversationRow } from './conversations.js';

export type TurnRow = typeof turns.$inferSelect;

export interface NewTurn {
  conversationId: string;
  prompt: string;
  options: Record<string, unknown>;
  idempotencyKey?: string | undefined;
  priority: number;
  delayMs: number;
  source: TurnSource;
}

export interface EnqueuedTurn {
  turn: TurnRow;
  /** False when the idempotency key matched an existing turn: nothing was created. */
  created: boolean;
  /** True when no earlier turn of the conversation is queued or running: dispatch it now. */
  isHead: boolean;
}

/** Locks the conversation row: every change of its turns' order or lease goes through it. */
async function lockConversation(tx: Executor, conversationId: string): Promise<ConversationRow> {
  // Index: conversations_pkey.
  const rows = await tx.select().from(conversations).where(eq(conversations.id, conversationId)).for('update');
  const row = rows[0];
  if (!row) throw new Error(`conversation ${conversationId} does not exist`);
  return row;
}

/** True when an earlier turn than `seq` is still queued or running. Index: turns_conversation_status_seq_idx. */
async function hasEarlierPending(tx: Executor, conversationId: string, seq: number): Promise<boolean> {
  const rows = await tx
    .select({ id: turns.id })
    .from(turns)
    .where(and(eq(turns.conversationId, conversationId), inArray(turns.status, ['queued', 'running']), lt(turns.seq, seq)))
    .limit(1);
  return rows.length > 0;
}

/** Records a turn in one transaction; the same idempotency key returns the same turn. */
export async function insertTurn(db: StoreDb, input: NewTurn): Promise<EnqueuedTurn> {
  return db.transaction(async (tx) => {
    const conv = await lockConversation(tx, input.conversationId);
    if (input.idempotencyKey !== undefined) {
      // Index: turns_conversation_idempotency_uq.
      const existing = await tx
        .select()
        .from(turns)
        .where(and(eq(turns.conversationId, conv.id), eq(turns.idempotencyKey, input.idempotencyKey)));
      if (existing[0]) return { turn: existing[0], created: false, isHead: false };
    }
    await tx.update(conversations).set({ nextSeq: conv.nextSeq + 1, updatedAt: sql`now()` }).where(eq(conversations.id, conv.id));
    const inserted = await tx
      .insert(turns)
      .values({
        conversationId: conv.id,
        seq: conv.nextSeq,
        prompt: input.prompt,
        options: input.options,
        idempotencyKey: input.idempotencyKey ?? null,
        priority: input.priority,
        source: input.source,
        runAt: sql`now() + make_interval(secs => ${input.delayMs / 1000})`,
      })
      .returning();
    const turn = inserted[0]!;
    return { turn, created: true, isHead: !(await hasEarlierPending(tx, conv.id, turn.seq)) };
  });
}

export type ClaimResult =
  /** The lease is ours: run the turn. */
  | { kind: 'claimed'; turn: TurnRow; conversation: ConversationRow; fencingToken: number; attempt: number; takeover: boolean }
  /** Finished (or deleted) already: acknowledge the job and do nothing. */
  | { kind: 'done' }
  /** An earlier turn is pending; that turn's commit dispatches this one. */
  | { kind: 'not_head' }
  /** Another worker holds a live lease, or the turn is not due yet: try again at `retryAt`. */
  | { kind: 'later'; retryAt: Date; reason: string };

export interface ClaimInput {
  turnId: string;
  workerId: string;
  leaseMs: number;
}

/**
 * Takes the conversation's lease for this turn if it is the head and due. An expired
 * lease (its worker died or froze) is taken over: the fencing token moves on, so the old
 * owner's later writes are refused.
 */
export async function claimTurn(db: StoreDb, input: ClaimInput): Promise<ClaimResult> {
  return db.transaction(async (tx) => {
    // Lock the conversation the turn belongs to (and read the database's clock with it).
    // Index: turns_pkey for the subquery, conversations_pkey for the lock.
    const locked = await tx
      .select({ conv: getTableColumns(conversations), now: sql<string>`now()`.as('now') })
      .from(conversations)
      .where(eq(conversations.id, sql`(select ${turns.conversationId} from ${turns} where ${turns.id} = ${input.turnId})`))
      .for('update');
    const row = locked[0];
    if (!row) return { kind: 'done' };
    const conv = row.conv;
    const now = new Date(row.now);
    // Read the turn under the conversation lock: its status may have changed meanwhile.
    // Index: turns_pkey; the EXISTS uses turns_conversation_status_seq_idx.
    const found = await tx
      .select({
        turn: getTableColumns(turns),
        earlierPending: sql<boolean>`exists (select 1 from ${turns} e where e.conversation_id = ${turns.conversationId}
          and e.status in ('queued', 'running') and e.seq < ${turns.seq})`.as('earlier_pending'),
      })
      .from(turns)
      .where(eq(turns.id, input.turnId))
      .for('update');
    const turn = found[0]?.turn;
    if (!turn || (turn.status !== 'queued' && turn.status !== 'running')) return { kind: 'done' };
    const leaseLive = conv.leaseOwner !== null && conv.leaseExpiresAt !== null && conv.leaseExpiresAt > now;
    if (leaseLive) {
      return { kind: 'later', retryAt: conv.leaseExpiresAt!, reason: `conversation leased by ${conv.leaseOwner}` };
    }
    if (found[0]!.earlierPending) return { kind: 'not_head' };
    if (turn.status === 'queued' && turn.runAt > now) return { kind: 'later', retryAt: turn.runAt, reason: 'not due yet' };
    const takeover = turn.status === 'running';
    const token = conv.fencingToken + 1;
    await tx
      .update(conversations)
      .set({
        leaseOwner: input.workerId,
        leaseExpiresAt: sql`now() + make_interval(secs => ${input.leaseMs / 1000})`,
        fencingToken: token,
        updatedAt: sql`now()`,
      })
      .where(eq(conversations.id, conv.id));
    const updated = await tx
      .update(turns)
      .set({
        status: 'running',
        attempts: turn.attempts + 1,
        startedAt: turn.startedAt ?? sql`now()`,
        sessionIdBefore: turn.attempts === 0 ? conv.sessionId : turn.sessionIdBefore,
      })
      .where(eq(turns.id, turn.id))
      .returning();
    return {
      kind: 'claimed',
      turn: updated[0]!,
      conversation: { ...conv, leaseOwner: input.workerId, fencingToken: token },
      fencingToken: token,
      attempt: turn.attempts + 1,
      takeover,
    };
  });
}

export interface Fence {
  conversationId: string;
  fencingToken: number;
  workerId: string;
}

/**
 * Refuses (StaleLeaseError) unless the lease still carries our token and owner; locks the
 * conversation row until the transaction ends so no claim can slip in before its COMMIT.
 * Every transaction an attempt writes in calls it before it commits (see Attempt.fenced).
 */
export async function assertFence(tx: Executor, fence: Fence): Promise<ConversationRow> {
  const conv = await lockConversation(tx, fence.conversationId);
  if (conv.fencingToken !== fence.fencingToken || conv.leaseOwner !== fence.workerId) {
    throw new StaleLeaseError(fence.conversationId, fence.fencingToken, conv.fencingToken);
  }
  return conv;
}

/**
 * Extends the lease if it is still ours. Returns false when it is not (another worker
 * took over): the caller must stop the run and write nothing more.
 */
export async function renewLease(db: StoreDb, fence: Fence, turnId: string, leaseMs: number): Promise<{ ours: boolean; cancelRequested: boolean }> {
  // Index: conversations_pkey.
  const rows = await db
    .update(conversations)
    .set({ leaseExpiresAt: sql`now() + make_interval(secs => ${leaseMs / 1000})` })
    .where(
      and(
        eq(conversations.id, fence.conversationId),
        eq(conversations.fencingToken, fence.fencingToken),
        eq(conversations.leaseOwner, fence.workerId),
      ),
    )
    .returning({ id: conversations.id });
  // Index: turns_pkey.
  const turn = await db.select({ cancelRequestedAt: turns.cancelRequestedAt }).from(turns).where(eq(turns.id, turnId));
  return { ours: rows.length > 0, cancelRequested: turn[0]?.cancelRequestedAt != null };
}

/** Appends buffered stdout events of an attempt. Index: turn_events_turn_attempt_seq_uq. */
export async function appendTurnEvents(
  tx: Executor,
  turnId: string,
  attempt: number,
  events: readonly { seq: number; type: string; payload: string }[],
): Promise<void> {
  if (events.length === 0) return;
  const BATCH = 500;
  for (let i = 0; i < events.length; i += BATCH) {
    await tx
      .insert(turnEvents)
      .values(events.slice(i, i + BATCH).map((e) => ({ turnId, attempt, seq: e.seq, type: e.type, payload: e.payload })))
      .onConflictDoNothing();
  }
}

/** The head turn of a conversation (lowest seq still queued), if any. Index: turns_conversation_status_seq_idx. */
export async function headTurn(db: Executor, conversationId: string): Promise<TurnRow | undefined> {
  const rows = await db
    .select()
    .from(turns)
    .where(and(eq(turns.conversationId, conversationId), eq(turns.status, 'queued')))
    .orderBy(asc(turns.seq))
    .limit(1);
  return rows[0];
}

export async function getTurn(db: Executor, turnId: string): Promise<TurnRow | undefined> {
  return (await db.select().from(turns).where(eq(turns.id, turnId)))[0];
}

/** Remembers the session an attempt runs in, so a retry resumes the same one. */
export async function setRunSessionId(tx: Executor, turnId: string, sessionId: string): Promise<void> {
  await tx.update(turns).set({ runSessionId: sessionId }).where(eq(turns.id, turnId));
}

export interface TurnError {
  class: string;
  message: string;
  retryable: boolean;
}

export interface FinishInput {
  turnId: string;
  conversationId: string;
  status: 'succeeded' | 'failed' | 'cancelled';
  result: string | null;
  error: TurnError | null;
  costUsd: number;
  usage: unknown;
  numTurns: number;
  sessionIdAfter: string | null;
  inputTokens: number;
  outputTokens: number;
}

/**
 * Records a turn's end and releases the conversation's lease; returns the next due turn
 * to dispatch. Call inside the commit transaction, after assertFence.
 */
export async function finishTurn(tx: Executor, input: FinishInput): Promise<TurnRow | undefined> {
  await tx
    .update(turns)
    .set({
      status: input.status,
      result: input.result,
      error: input.error,
      costUsd: String(input.costUsd),
      usage: input.usage ?? null,
      numTurns: input.numTurns,
      sessionIdAfter: input.sessionIdAfter,
      finishedAt: sql`now()`,
    })
    .where(eq(turns.id, input.turnId));
  await tx
    .update(conversations)
    .set({
      leaseOwner: null,
      leaseExpiresAt: null,
      turnsTotal: sql`${conversations.turnsTotal} + 1`,
      costUsd: sql`${conversations.costUsd} + ${String(input.costUsd)}::numeric`,
      inputTokens: sql`${conversations.inputTokens} + ${input.inputTokens}`,
      outputTokens: sql`${conversations.outputTokens} + ${input.outputTokens}`,
      updatedAt: sql`now()`,
    })
    .where(eq(conversations.id, input.conversationId));
  if (input.status === 'failed') {
    // A conversation that halts on failure cancels what was queued behind the failed turn.
    // Index: conversations_pkey, then turns_conversation_status_seq_idx.
    const conv = await tx.select({ halt: conversations.haltOnFailure }).from(conversations).where(eq(conversations.id, input.conversationId));
    if (conv[0]?.halt) {
      await tx
        .update(turns)
        .set({
          status: 'cancelled',
          finishedAt: sql`now()`,
          error: { class: 'conversation_halted', message: `an earlier turn (${input.turnId}) failed and the conversation halts on failure`, retryable: false },
        })
        .where(and(eq(turns.conversationId, input.conversationId), eq(turns.status, 'queued')));
      return undefined;
    }
  }
  return headTurn(tx, input.conversationId);
}

/** Sets whether a failed turn cancels the turns queued after it. */
export async function setHaltOnFailure(db: Executor, conversationId: string, halt: boolean): Promise<void> {
  await db.update(conversations).set({ haltOnFailure: halt, updatedAt: sql`now()` }).where(eq(conversations.id, conversationId));
}

/**
 * Hands a running turn back to the queue (a retry after `delayMs`, or a drain on
 * shutdown) and releases the lease. Call after assertFence.
 */
export async function requeueTurn(
  tx: Executor,
  input: { turnId: string; conversationId: string; delayMs: number; error: TurnError | null },
): Promise<TurnRow> {
  const rows = await tx
    .update(turns)
    .set({
      status: 'queued',
      error: input.error,
      runAt: sql`now() + make_interval(secs => ${input.delayMs / 1000})`,
    })
    .where(eq(turns.id, input.turnId))
    .returning();
  await tx
    .update(conversations)
    .set({ leaseOwner: null, leaseExpiresAt: null, updatedAt: sql`now()` })
    .where(eq(conversations.id, input.conversationId));
  return rows[0]!;
}

export type CancelResult =
  | { kind: 'not_found' }
  | { kind: 'already_finished'; status: string }
  /** It never ran; `next` is the turn to dispatch now that it is out of the way (only when the cancelled turn was the head). */
  | { kind: 'cancelled'; turn: TurnRow; next: TurnRow | undefined }
  /** It is running: the flag is set, the worker stops it. */
  | { kind: 'requested'; turn: TurnRow };

export async function cancelTurnRecord(db: StoreDb, turnId: string): Promise<CancelResult> {
  return db.transaction(async (tx) => {
    const t0 = await getTurn(tx, turnId);
    if (!t0) return { kind: 'not_found' };
    await lockConversation(tx, t0.conversationId);
    const turn = (await tx.select().from(turns).where(eq(turns.id, turnId)).for('update'))[0]!;
    if (turn.status === 'queued') {
      const rows = await tx
        .update(turns)
        .set({
          status: 'cancelled',
          finishedAt: sql`now()`,
          cancelRequestedAt: sql`now()`,
          error: { class: 'cancelled', message: 'cancelled before it ran', retryable: false },
        })
        .where(eq(turns.id, turnId))
        .returning();
      // Only the head turn may get a job: if an earlier turn is still pending, its commit
      // dispatches the next one. Dispatching it now would park a job for a turn that
      // cannot run yet, delayed to the lease's expiry, and the commit's own dispatch would
      // then be a no-op (same job id), so it would start late.
      const wasHead = !(await hasEarlierPending(tx, turn.conversationId, turn.seq));
      return { kind: 'cancelled', turn: rows[0]!, next: wasHead ? await headTurn(tx, turn.conversationId) : undefined };
    }
    if (turn.status === 'running') {
      const rows = await tx.update(turns).set({ cancelRequestedAt: sql`now()` }).where(eq(turns.id, turnId)).returning();
      return { kind: 'requested', turn: rows[0]! };
    }
    return { kind: 'already_finished', status: turn.status };
  });
}

/**
 * The head of every conversation with work: its lowest-seq turn that is queued or
 * running. The reconciler checks each has a job. Index: turns_status_run_at_idx, then
 * turns_conversation_status_seq_idx for the NOT EXISTS.
 */
export async function pendingHeads(db: Executor, limit: number): Promise<{ id: string; status: string; runAt: Date; priority: number; leaseExpiresAt: Date | null }[]> {
  const r = await db.execute<{ id: string; status: string; run_at: Date; priority: number; lease_expires_at: Date | null }>(sql`
    select t.id, t.status, t.run_at, t.priority, c.lease_expires_at
      from turns t join conversations c on c.id = t.conversation_id
     where t.status in ('queued', 'running')
       and not exists (select 1 from turns e
                        where e.conversation_id = t.conversation_id
                          and e.status in ('queued', 'running') and e.seq < t.seq)
     order by t.run_at
     limit ${limit}`);
  return r.rows.map((row) => ({
    id: row.id,
    status: row.status,
    runAt: new Date(row.run_at),
    priority: row.priority,
    leaseExpiresAt: row.lease_expires_at ? new Date(row.lease_expires_at) : null,
  }));
}

/** Turns of a conversation in seq order (for `show`). Index: turns_conversation_seq_uq. */
export async function listTurns(db: Executor, conversationId: string): Promise<TurnRow[]> {
  return db.select().from(turns).where(eq(turns.conversationId, conversationId)).orderBy(asc(turns.seq));
}
