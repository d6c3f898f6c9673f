// Turn state in Postgres, the system of record for the turn protocol: enqueue (seq and
// idempotency under the conversation's row lock), claim with a lease and a fencing
// token, lease renewal, the fence check every write of an attempt makes, finishing and
// requeueing, and the queries the reconciler and dispatcher need.
import { and, asc, eq, inArray, lt, sql, type SQL } from 'drizzle-orm';
import type { Executor, StoreDb } from './db.js';
import { SessionAttemptConflictError, SessionConflictError, StaleLeaseError } from '../errors.js';
import { conversations, sessions, turnEvents, turns, unfinishedTurnStatuses, type TurnSource } from './schema.js';
import type { SessionHeads } from './sessions.js';
import { rowFromJson } from './jsonRow.js';
import { pgErrorOf, pgJson, pgJsonText, pgText } from './pgSafe.js';
import type { NewLines } from './persist.js';
import type { ChunkCodec } from './schema.js';
import type { ConversationRow } from './conversations.js';
import { parseConversationId, parseTenantId } from './ids.js';
import { denyPendingOfCancelledTurn } from './approvals.js';

export type TurnRow = typeof turns.$inferSelect;

/** The statuses of an unfinished turn as an SQL list: such a turn holds back every later turn of its conversation. */
export const UNFINISHED = sql.raw(`(${unfinishedTurnStatuses.map((st) => `'${st}'`).join(', ')})`);

export interface NewTurn {
  /** The producer's conversation id; the conversation is created on first use. */
  externalId: string;
  tenantId?: string | undefined;
  /** When given, sets whether a failed turn cancels the turns queued after it. */
  haltOnFailure?: boolean | undefined;
  /** When given, sets (null: removes) the conversation's approval policy (docs/approvals.md). */
  approvals?: unknown;
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

/** True when an earlier turn than `seq` is not finished (queued, running or awaiting approval). Index: turns_unfinished_conversation_seq_idx. */
async function hasEarlierPending(tx: Executor, conversationId: string, seq: number): Promise<boolean> {
  const rows = await tx
    .select({ id: turns.id })
    .from(turns)
    .where(and(eq(turns.conversationId, conversationId), inArray(turns.status, [...unfinishedTurnStatuses]), lt(turns.seq, seq)))
    .limit(1);
  return rows.length > 0;
}

/**
 * Records a turn in one round trip (agentq_enqueue_turn, migrations/0012): the
 * conversation is created if needed and its row locked (every change of its turns' order
 * goes through that lock); the same idempotency key returns the same turn and changes
 * nothing; else the turn takes the next seq, and the call says whether an earlier turn is
 * pending. Validates both ids (StoreInputError naming the field).
 */
export async function insertTurn(db: StoreDb, input: NewTurn): Promise<EnqueuedTurn> {
  const externalId = parseConversationId(input.externalId, 'externalId');
  const tenantId = parseTenantId(input.tenantId ?? 'default');
  const approvals = input.approvals === undefined || input.approvals === null ? null : JSON.stringify(input.approvals);
  const r = await db.execute<{ created: boolean; is_head: boolean; turn: Record<string, unknown> }>(sql`
    select * from agentq_enqueue_turn(${tenantId}, ${externalId}, ${input.haltOnFailure ?? null}::boolean,
      ${input.approvals !== undefined}::boolean, ${approvals}::jsonb, ${input.prompt}, ${JSON.stringify(input.options)}::jsonb,
      ${input.idempotencyKey ?? null}::text, ${input.priority}::int, ${input.source}, ${input.delayMs}::float8)`);
  const row = r.rows[0]!;
  return { turn: rowFromJson(turns, row.turn), created: row.created, isHead: row.is_head };
}

export type ClaimResult =
  /** The lease is ours: run the turn. */
  | {
      kind: 'claimed';
      turn: TurnRow;
      conversation: ConversationRow;
      fencingToken: number;
      attempt: number;
      takeover: boolean;
      /** Claimed from this worker's own warm lease: the token it held between turns (its CLI process is still current). */
      warmToken: number | undefined;
      /** The digest of the stored workspace at the claim (null: none), read under the lease so it stays true for the attempt. */
      workspaceSha256: string | null;
      /** The heads of the session a cold attempt resumes first, read the same way; undefined: the conversation has none yet. */
      sessionHeads: ClaimedSessionHeads | undefined;
    }
  /** Another worker holds the conversation warm (its CLI idle, waiting for this turn): ask it, or steal the lease (`stealWarmFrom`). */
  | { kind: 'warm'; owner: string; conversationId: string; retryAt: Date }
  /** Finished (or deleted) already: acknowledge the job and do nothing. */
  | { kind: 'done' }
  /** An earlier turn is pending; that turn's commit dispatches this one. */
  | { kind: 'not_head' }
  /** Another worker holds a live lease, or the turn is not due yet: try again at `retryAt`. */
  | { kind: 'later'; retryAt: Date; reason: string };

/** What getSessionHeads gives for `sessionId`, as the claim read it. */
export interface ClaimedSessionHeads extends SessionHeads {
  sessionId: string;
}

function claimedHeads(sessionId: string, rows: Record<string, unknown>[], folderSha256: string | null): ClaimedSessionHeads {
  const heads = rows.map((r) => rowFromJson(sessions, r));
  return {
    sessionId,
    head: heads.find((h) => h.sessionId === sessionId),
    subagents: heads.filter((h) => h.sessionId !== sessionId),
    folderSha256: heads.some((h) => h.sessionId === sessionId) ? folderSha256 : null,
  };
}

export interface ClaimInput {
  turnId: string;
  workerId: string;
  leaseMs: number;
  /** Take the conversation even if this worker holds it warm (idle between turns): the owner did not take the turn. */
  stealWarmFrom?: string | undefined;
}

/**
 * Takes the conversation's lease for this turn if it is the head and due. An expired
 * lease (its worker died or froze) is taken over: the fencing token moves on, so the old
 * owner's later writes are refused.
 */
export async function claimTurn(db: StoreDb, input: ClaimInput): Promise<ClaimResult> {
  const r = await db.execute<{
    kind: 'claimed' | 'done' | 'not_head' | 'later' | 'warm';
    retry_at: string | Date | null;
    reason: string | null;
    owner: string | null;
    takeover: boolean | null;
    warm_token: string | number | null;
    turn: Record<string, unknown> | null;
    conversation: Record<string, unknown> | null;
    workspace_sha256: string | null;
    heads_session_id: string | null;
    session_heads: Record<string, unknown>[] | null;
    session_folder_sha256: string | null;
  }>(sql`select * from agentq_claim_turn(${input.turnId}::uuid, ${input.workerId}, ${input.leaseMs}::float8, ${input.stealWarmFrom ?? null}::text)`);
  const row = r.rows[0]!;
  switch (row.kind) {
    case 'done':
    case 'not_head':
      return { kind: row.kind };
    case 'later':
      return { kind: 'later', retryAt: new Date(row.retry_at!), reason: row.reason! };
    case 'warm':
      return { kind: 'warm', owner: row.owner!, conversationId: rowFromJson(conversations, row.conversation!).id, retryAt: new Date(row.retry_at!) };
    case 'claimed': {
      const turn = rowFromJson(turns, row.turn!);
      const conversation = rowFromJson(conversations, row.conversation!);
      return {
        kind: 'claimed',
        turn,
        conversation,
        fencingToken: conversation.fencingToken,
        attempt: turn.attempts,
        takeover: row.takeover!,
        warmToken: row.warm_token === null ? undefined : Number(row.warm_token),
        workspaceSha256: row.workspace_sha256,
        sessionHeads: row.heads_session_id === null ? undefined : claimedHeads(row.heads_session_id, row.session_heads ?? [], row.session_folder_sha256),
      };
    }
  }
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
      // What the CLI printed is the agent's: a NUL (never in valid stream-json) would fail the insert every time.
      .values(events.slice(i, i + BATCH).map((e) => ({ turnId, attempt, seq: e.seq, type: pgText(e.type), payload: pgText(e.payload) })))
      .onConflictDoNothing();
  }
}

/** The event an attempt records when it hands its turn back unfinished because its worker stops (a drain). */
export const HANDED_BACK_SUBTYPE = 'handed_back';

/**
 * How many attempts of the turn were handed back by a stopping worker: those do not count
 * against AGENTQ_MAX_ATTEMPTS. Index: turn_events_turn_attempt_seq_uq (the turn's events).
 */
export async function countHandBacks(db: Executor, turnId: string): Promise<number> {
  const rows = await db
    .select({ n: sql<number>`count(distinct ${turnEvents.attempt})::int` })
    .from(turnEvents)
    .where(and(eq(turnEvents.turnId, turnId), eq(turnEvents.type, 'agentq'), sql`${turnEvents.payload} like ${`%"subtype":"${HANDED_BACK_SUBTYPE}"%`}`));
  return rows[0]?.n ?? 0;
}

/** The head turn of a conversation (lowest seq still queued), if any. Index: turns_unfinished_conversation_seq_idx (in seq order). */
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

/** Every `class` a turn's error can have: stable and machine-readable (docs/runner.md "Outcomes"). */
export const turnErrorClasses = [
  'api_error',
  'attempts_exhausted',
  'auth',
  'budget_exceeded',
  'cancelled',
  'cli_not_found',
  'conversation_halted',
  'crashed',
  'max_turns',
  'protocol_error',
  'resource_limit',
  'session_missing',
  'session_not_found',
  'session_not_saved',
  'timed_out',
  'worker_error',
  'workspace_too_large',
] as const;
export type TurnErrorClass = (typeof turnErrorClasses)[number];

/** What is stored in turns.error. */
export interface TurnError {
  class: TurnErrorClass;
  message: string;
  retryable: boolean;
}

/** What dispatching a turn needs. */
export interface DueTurn {
  id: string;
  runAt: Date;
  priority: number;
  /** After the turn waited for an approval: how many times (its job id says the round). */
  approvalRounds?: number | undefined;
}

export interface FinishInput {
  turnId: string;
  conversationId: string;
  /** The attempt's lease: the turn ends only if it is still current. */
  fence: Fence;
  /**
   * `awaiting_approval`: the turn stopped at a gated tool call. Everything is committed as
   * at its end, the lease is released, but the turn is not finished: it holds back the
   * turns after it until a decision queues it again (src/store/approvals.ts).
   */
  status: 'succeeded' | 'failed' | 'cancelled' | 'awaiting_approval';
  result: string | null;
  error: TurnError | null;
  costUsd: number;
  usage: unknown;
  numTurns: number;
  /** Tool calls the model made, and those the CLI refused (empty when none). */
  toolCalls: number;
  permissionDenials: { tool: string; toolUseId: string | null }[];
  sessionIdAfter: string | null;
  /** Point the conversation at this session (the one just committed); unchanged when absent. */
  conversationSessionId?: string | undefined;
  /** The session the attempt ran in, remembered on the turn; unchanged when absent. */
  runSessionId?: string | undefined;
  inputTokens: number;
  outputTokens: number;
  /** Keep the lease, marked warm, for this long instead of releasing it: the worker keeps the CLI running for the next turn. */
  keepWarmMs?: number | undefined;
  /** The CLI version this attempt ran (its init event), added to the turn's `cli_versions`. */
  cliVersion?: AttemptCliVersion | undefined;
  /** Events of `attempt` not stored yet, stored with the rest (as appendTurnEvents would). */
  events?: { attempt: number; list: readonly { seq: number; type: string; payload: string }[] } | undefined;
  /** The session work of the commit, done in the same call (agentq_commit_turn) before the turn ends. */
  session?: CommitSession | undefined;
}

/**
 * A session's last lines and the commit of its stored lines, in the commit's one call. The
 * lines are tagged with `events.attempt`. Throws SessionConflictError when the head is no
 * longer at `lines.from` (nothing written: read the file again under the head's lock), and
 * SessionAttemptConflictError as commitSessionLines does.
 */
export interface CommitSession {
  sessionId: string;
  /** For a session this call creates: the session it was forked from. */
  forkedFrom: string | null;
  /** Read from the head the worker last knew (src/store/persist.ts readSessionDelta); none: nothing to append. */
  lines: NewLines | undefined;
  codec: ChunkCodec;
  /** Subagent transcripts of the session this attempt stored: committed too. */
  subagentIds: readonly string[];
}

/** The CLI version that ran one attempt of a turn. */
export interface AttemptCliVersion {
  attempt: number;
  version: string;
}

/** `cli_versions` with `v` added (the column's value when `v` is undefined). */
function withCliVersion(v: AttemptCliVersion | undefined) {
  if (v === undefined) return sql`cli_versions`;
  return sql`coalesce(cli_versions, '{}'::jsonb) || jsonb_build_object(${String(v.attempt)}::text, ${pgText(v.version)}::text)`;
}

/** Records which CLI version ran an attempt of the turn. Call after the fence check (the turn row comes after the conversation row). */
export async function recordCliVersion(tx: Executor, turnId: string, v: AttemptCliVersion): Promise<void> {
  await tx.execute(sql`update turns set cli_versions = ${withCliVersion(v)} where id = ${turnId}::uuid`);
}

/** Events as the jsonb array agentq_finish_turn stores; what jsonb refuses (a NUL, a lone surrogate) replaced. */
function eventsJson(events: readonly { seq: number; type: string; payload: string }[] | undefined): string | null {
  if (!events?.length) return null;
  return JSON.stringify(events.map((e) => ({ seq: e.seq, type: pgJsonText(e.type), payload: pgJsonText(e.payload) })));
}

const jsonParam = (value: unknown) => (value === null || value === undefined ? null : JSON.stringify(value));

/**
 * Records a turn's end and releases the conversation's lease, only if `fence` is still
 * the lease (else StaleLeaseError: the statement failed, and the caller's transaction must
 * roll back); returns
 * the next due turn to dispatch. Call inside the commit transaction, after the session
 * writes: the conversation row is locked here, by its update, then the turn row (the lock
 * order every transaction keeps). One round trip, as this runs on every turn.
 */
export async function finishTurn(tx: Executor, input: FinishInput): Promise<DueTurn | undefined> {
  const { fence } = input;
  const haltError: TurnError = {
    class: 'conversation_halted',
    message: `an earlier turn (${input.turnId}) failed and the conversation halts on failure`,
    retryable: false,
  };
  // One call (agentq_finish_turn, migrations/0012): the fence check, the lease release (or
  // warm hold), the totals, the events, the turn's end, a halt, and the next queued turn;
  // with the session's work before it (agentq_commit_turn, migrations/0014).
  const finishArgs = sql`${input.turnId}::uuid, ${input.conversationId}::uuid, ${fence.fencingToken}::bigint, ${fence.workerId},
      ${input.status}, ${pgText(input.result)}, ${jsonParam(pgJson(input.error))}::jsonb, ${String(input.costUsd)}::numeric,
      ${jsonParam(pgJson(input.usage))}::jsonb, ${input.numTurns}::int, ${input.toolCalls}::int,
      ${input.permissionDenials.length === 0 ? null : JSON.stringify(pgJson(input.permissionDenials))}::jsonb,
      ${input.sessionIdAfter}::text, ${input.conversationSessionId ?? null}::text, ${input.runSessionId ?? null}::text,
      ${input.inputTokens}::bigint, ${input.outputTokens}::bigint, ${input.keepWarmMs ?? null}::float8,
      ${input.cliVersion === undefined ? null : String(input.cliVersion.attempt)}::text,
      ${input.cliVersion === undefined ? null : pgText(input.cliVersion.version)}::text, ${JSON.stringify(haltError)}::jsonb,
      ${input.events?.attempt ?? 0}::int, ${eventsJson(input.events?.list)}::jsonb`;
  type FinishRow = { fenced: boolean; next_id: string | null; next_run_at: string | Date | null; next_priority: number | null };
  const { session } = input;
  // A lost fence fails the statement (agentq_fence_held, migrations/0016), so that nothing
  // of it is kept also when it runs without a transaction around it (lazyTransaction).
  const call = session ? sql`agentq_commit_turn(${finishArgs}, ${sessionArgs(session)})` : sql`agentq_finish_turn(${finishArgs})`;
  const execute = () => tx.execute<FinishRow>(sql`select r.* from ${call} r where agentq_fence_held(r.fenced)`);
  let r;
  try {
    r = session ? await commitCall(session, String(input.events?.attempt ?? 0), execute) : await execute();
  } catch (err) {
    if (pgErrorOf(err)?.code === 'AQ411') throw new StaleLeaseError(fence.conversationId, fence.fencingToken, -1);
    throw err;
  }
  const row = r.rows[0]!;
  return row.next_id === null ? undefined : { id: row.next_id, runAt: new Date(row.next_run_at!), priority: row.next_priority! };
}

/** agentq_commit_turn's session parameters. */
function sessionArgs(s: CommitSession): SQL {
  const lines = s.lines;
  const chunks = lines?.chunks ?? [];
  return sql`${s.sessionId}::text, ${s.forkedFrom}::text, ${lines?.from.lineCount ?? 0}::bigint, ${lines?.from.byteCount ?? 0}::bigint,
      ${lines?.tailSha256 ?? null}::text, ${s.codec}::text,
      ${`{${chunks.map((c) => c.chunk.lineCount).join(',')}}`}::int[], ${`{${chunks.map((c) => c.chunk.raw.length).join(',')}}`}::int[],
      ${`{${chunks.map((c) => c.data.length).join(',')}}`}::int[], ${Buffer.concat(chunks.map((c) => c.data))}::bytea,
      array(select jsonb_array_elements_text(${JSON.stringify(s.subagentIds)}::jsonb))`;
}

/** Runs the commit call, its session refusals as the errors persistSession and commitSessionLines throw. */
async function commitCall<T>(s: CommitSession, attempt: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (err) {
    const pgErr = pgErrorOf(err);
    if (pgErr?.code === 'AQ409') throw new SessionConflictError(s.sessionId, s.lines?.from.lineCount ?? 0);
    if (pgErr?.code === 'AQ410') throw new SessionAttemptConflictError(s.sessionId, attempt, pgErr.detail ?? '?');
    throw err;
  }
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
      error: pgJson(input.error),
      runAt: sql`now() + make_interval(secs => ${input.delayMs / 1000})`,
    })
    .where(eq(turns.id, input.turnId))
    .returning();
  await tx
    .update(conversations)
    .set({ leaseOwner: null, leaseExpiresAt: null, leaseWarm: false, updatedAt: sql`now()` })
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
    if (turn.status === 'awaiting_approval') {
      // No worker holds it: it ends here, its pending approvals are answered deny, and the
      // next turn resumes the session with the gated call still unanswered: the gate
      // denies it then (docs/approvals.md "Cancel").
      const rows = await tx
        .update(turns)
        .set({ status: 'cancelled', finishedAt: sql`now()`, cancelRequestedAt: sql`now()`, error: { class: 'cancelled', message: 'cancelled while it waited for an approval', retryable: false } })
        .where(eq(turns.id, turnId))
        .returning();
      // The next turn's gate must answer the calls left open in the session (src/worker/gate.ts).
      await tx.execute(sql`update conversations
         set turns_total = turns_total + 1, updated_at = now(),
             default_options = coalesce(default_options, '{}'::jsonb) || '{"openGatedCalls": true}'::jsonb
       where id = ${turn.conversationId}::uuid`);
      await denyPendingOfCancelledTurn(tx, turnId);
      return { kind: 'cancelled', turn: rows[0]!, next: await headTurn(tx, turn.conversationId) };
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
 * running. The reconciler checks each has a job. Index: turns_due_run_at_idx, then
 * turns_unfinished_conversation_seq_idx for the NOT EXISTS.
 */
export async function pendingHeads(
  db: Executor,
  limit: number,
): Promise<{ id: string; status: string; runAt: Date; priority: number; leaseExpiresAt: Date | null; approvalRounds: number }[]> {
  const r = await db.execute<{ id: string; status: string; run_at: Date; priority: number; lease_expires_at: Date | null; approval_rounds: number }>(sql`
    select t.id, t.status, t.run_at, t.priority, t.approval_rounds,
           -- A warm lease (its owner idle, waiting for this turn) does not hold the turn back.
           case when c.lease_warm then null else c.lease_expires_at end as lease_expires_at
      from turns t join conversations c on c.id = t.conversation_id
     where t.status in ('queued', 'running')
       and not exists (select 1 from turns e
                        where e.conversation_id = t.conversation_id
                          and e.status in ${UNFINISHED} and e.seq < t.seq)
     order by t.run_at
     limit ${limit}`);
  return r.rows.map((row) => ({
    id: row.id,
    status: row.status,
    runAt: new Date(row.run_at),
    priority: row.priority,
    leaseExpiresAt: row.lease_expires_at ? new Date(row.lease_expires_at) : null,
    approvalRounds: row.approval_rounds,
  }));
}

/** Turns of a conversation in seq order (for `show`). Index: turns_conversation_seq_uq. */
export async function listTurns(db: Executor, conversationId: string): Promise<TurnRow[]> {
  return db.select().from(turns).where(eq(turns.conversationId, conversationId)).orderBy(asc(turns.seq));
}
