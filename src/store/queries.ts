// What the HTTP API reads, always scoped to a tenant: a tenant's conversations page by
// page with a status derived from their turns, one turn, the transcript of a conversation
// (its committed session lines, then its turns' events), and the delete that refuses
// while a turn runs. Every query names the index it walks.
import { and, eq, getTableColumns, inArray, sql } from 'drizzle-orm';
import type { Executor, StoreDb } from './db.js';
import { decodeChunk } from './chunks.js';
import { deleteConversation, type ConversationRow } from './conversations.js';
import { conversations, turns, type ChunkCodec } from './schema.js';
import { UNFINISHED, type TurnRow } from './turns.js';

export const conversationStatuses = ['idle', 'queued', 'running', 'awaiting_approval'] as const;
/** running: a turn runs; queued: none runs but one waits; idle: neither. */
export type ConversationStatus = (typeof conversationStatuses)[number];

export interface ConversationListItem {
  externalId: string;
  sessionId: string | null;
  status: ConversationStatus;
  turnsTotal: number;
  costUsd: number;
  updatedAt: Date;
}

export interface ListConversationsInput {
  tenantId: string;
  status?: ConversationStatus | undefined;
  /** Return conversations whose external id sorts after this one (the last of the previous page). */
  afterExternalId?: string | undefined;
  limit: number;
}

// A conversation's status is its head's: the unfinished turn of lowest seq. Only the head
// runs or waits for a person (a turn is claimed only when no unfinished turn is before
// it, and one waiting for a person holds back the turns after it), and a conversation with
// no unfinished turn is idle. One index entry read per conversation, on
// turns_unfinished_conversation_seq_idx, however many turns wait behind the head.
const headStatus = sql`(select t.status from turns t
   where t.conversation_id = c.id and t.status in ${UNFINISHED}
   order by t.seq limit 1)`;

const statusFilter: Record<ConversationStatus, ReturnType<typeof sql>> = {
  running: sql`${headStatus} = 'running'`,
  awaiting_approval: sql`${headStatus} = 'awaiting_approval'`,
  queued: sql`${headStatus} = 'queued'`,
  idle: sql`${headStatus} is null`,
};

/**
 * One page of a tenant's conversations in external-id order. The order is the unique key,
 * so pages neither skip nor repeat a conversation however their turns change between
 * requests (updated_at would move rows across pages). Index: conversations_tenant_external_uq
 * range scan (tenant_id = $1 and external_id > $2, in index order, stops at the limit);
 * the head's status, turns_unfinished_conversation_seq_idx.
 */
export async function listConversations(db: Executor, input: ListConversationsInput): Promise<ConversationListItem[]> {
  const after = input.afterExternalId === undefined ? sql`` : sql`and c.external_id > ${input.afterExternalId}`;
  const filter = input.status === undefined ? sql`` : sql`and ${statusFilter[input.status]}`;
  const r = await db.execute<{
    external_id: string;
    session_id: string | null;
    turns_total: number;
    cost_usd: string;
    updated_at: Date | string;
    status: ConversationStatus;
  }>(sql`
    select c.external_id, c.session_id, c.turns_total, c.cost_usd, c.updated_at,
           coalesce(${headStatus}, 'idle') as status
      from conversations c
     where c.tenant_id = ${input.tenantId} ${after} ${filter}
     order by c.external_id
     limit ${input.limit}`);
  return r.rows.map((row) => ({
    externalId: row.external_id,
    sessionId: row.session_id,
    status: row.status,
    turnsTotal: row.turns_total,
    costUsd: Number(row.cost_usd),
    updatedAt: new Date(row.updated_at),
  }));
}

/** A tenant's conversation by its external id. Index: conversations_tenant_external_uq. */
export async function findTenantConversation(db: Executor, tenantId: string, externalId: string): Promise<ConversationRow | undefined> {
  const rows = await db
    .select()
    .from(conversations)
    .where(and(eq(conversations.tenantId, tenantId), eq(conversations.externalId, externalId)));
  return rows[0];
}

export interface TenantTurn {
  turn: TurnRow;
  /** The conversation's external id. */
  conversationId: string;
}

/**
 * A turn, only if its conversation belongs to the tenant (another tenant's turn reads as
 * missing). Index: turns_pkey, then conversations_pkey.
 */
export async function findTenantTurn(db: Executor, tenantId: string, turnId: string): Promise<TenantTurn | undefined> {
  const rows = await db
    .select({ turn: getTableColumns(turns), conversationId: conversations.externalId })
    .from(turns)
    .innerJoin(conversations, eq(conversations.id, turns.conversationId))
    .where(and(eq(turns.id, turnId), eq(conversations.tenantId, tenantId)));
  return rows[0];
}

/** One line of a committed session file: its 0-based number and its text (one JSON value). */
export interface SessionLine {
  line: number;
  text: string;
}

/**
 * Up to `limit` committed lines of a session, from line `fromLine` on. Lines past the
 * committed boundary (checkpoints of a turn in flight) are never returned. Reads the
 * chunk that holds `fromLine` and the ones after it up to the page's end.
 * Index: sessions_pk for the boundary, session_chunks_pk range scans for the chunks.
 */
export async function readCommittedSessionLines(
  db: Executor,
  input: { conversationId: string; sessionId: string; fromLine: number; limit: number },
): Promise<SessionLine[]> {
  const { conversationId, sessionId, fromLine } = input;
  const head = await db.execute<{ committed_line_count: string }>(sql`
    select committed_line_count from sessions where conversation_id = ${conversationId}::uuid and session_id = ${sessionId}`);
  const committed = Number(head.rows[0]?.committed_line_count ?? 0);
  const toLine = Math.min(committed, fromLine + input.limit);
  if (fromLine >= toLine) return [];
  // The first chunk may start before fromLine: it is the last one starting at or before it.
  const chunks = await db.execute<{ first_line: string; line_count: number; codec: ChunkCodec; data: Buffer }>(sql`
    select first_line, line_count, codec, data
      from session_chunks
     where conversation_id = ${conversationId}::uuid and session_id = ${sessionId}
       and first_line < ${toLine}
       and first_line >= coalesce((select max(first_line) from session_chunks
                                    where conversation_id = ${conversationId}::uuid and session_id = ${sessionId}
                                      and first_line <= ${fromLine}), 0)
     order by first_line`);
  const out: SessionLine[] = [];
  for (const chunk of chunks.rows) {
    const raw = await decodeChunk(chunk.data, chunk.codec);
    let line = Number(chunk.first_line);
    let start = 0;
    while (start < raw.length && line < toLine) {
      const nl = raw.indexOf(0x0a, start);
      const end = nl === -1 ? raw.length : nl;
      if (line >= fromLine) out.push({ line, text: raw.subarray(start, end).toString('utf8') });
      line++;
      start = end + 1;
    }
  }
  return out;
}

/** One stored event of a turn: a stream-json stdout line of the CLI, or an agentq event. */
export interface StoredTurnEvent {
  turnId: string;
  turnSeq: number;
  attempt: number;
  seq: number;
  type: string;
  payload: string;
  createdAt: Date;
}

/** Position of an event within a conversation: (turn seq, attempt, event seq). */
export interface EventKey {
  turnSeq: number;
  attempt: number;
  seq: number;
}

/**
 * Up to `limit` events of a conversation's turns after `after` (or from the start), in
 * (turn seq, attempt, event seq) order. The turns are walked in seq order through
 * turns_conversation_seq_uq; each turn's events come from turn_events_turn_attempt_seq_uq
 * in key order (at most `limit` per turn), so the final sort is incremental and stops at
 * the limit instead of sorting every later event.
 */
export async function readConversationEvents(
  db: Executor,
  input: { conversationId: string; after?: EventKey | undefined; limit: number },
): Promise<StoredTurnEvent[]> {
  const a = input.after ?? { turnSeq: 0, attempt: -1, seq: -1 };
  const r = await db.execute<{
    turn_id: string;
    turn_seq: number;
    attempt: number;
    seq: number;
    type: string;
    payload: string;
    created_at: Date | string;
  }>(sql`
    select t.id as turn_id, t.seq as turn_seq, e.attempt, e.seq, e.type, e.payload, e.created_at
      from turns t
     cross join lateral (
       select ev.attempt, ev.seq, ev.type, ev.payload, ev.created_at
         from turn_events ev
        where ev.turn_id = t.id
          and (ev.attempt, ev.seq) > (case when t.seq = ${a.turnSeq}::int then ${a.attempt}::int else -1 end,
                                      case when t.seq = ${a.turnSeq}::int then ${a.seq}::int else -1 end)
        order by ev.attempt, ev.seq
        limit ${input.limit}
     ) e
     where t.conversation_id = ${input.conversationId}::uuid and t.seq >= ${a.turnSeq}::int
     order by t.seq, e.attempt, e.seq
     limit ${input.limit}`);
  return r.rows.map((row) => ({
    turnId: row.turn_id,
    turnSeq: row.turn_seq,
    attempt: row.attempt,
    seq: row.seq,
    type: row.type,
    payload: row.payload,
    createdAt: new Date(row.created_at),
  }));
}

export type DeleteOutcome =
  | { kind: 'not_found' }
  /** A turn runs: nothing was deleted. */
  | { kind: 'running'; turnId: string }
  /** Deleted; `jobTurnIds` are the turns that may still have a BullMQ job to remove. */
  | { kind: 'deleted'; jobTurnIds: string[] };

/**
 * Deletes a tenant's conversation and everything it owns unless a turn runs, in one
 * transaction. The conversation row is locked first: a turn only becomes `running` in
 * claimTurn, under that same lock, so no turn can start between the check and the delete
 * (a claim waiting on the lock then finds the conversation gone and acknowledges its job).
 * Index: conversations_tenant_external_uq for the lock, turns_conversation_seq_uq for the
 * checks (they read the conversation's turns, which the delete removes anyway), the
 * cascades as in deleteConversation.
 */
export async function deleteIdleConversation(db: StoreDb, tenantId: string, externalId: string): Promise<DeleteOutcome> {
  return db.transaction(async (tx) => {
    const locked = await tx
      .select({ id: conversations.id })
      .from(conversations)
      .where(and(eq(conversations.tenantId, tenantId), eq(conversations.externalId, externalId)))
      .for('update');
    const conv = locked[0];
    if (!conv) return { kind: 'not_found' } as const;
    // Queued turns may have a job (the head does); failed ones may have a kept failed job.
    const pending = await tx
      .select({ id: turns.id, status: turns.status })
      .from(turns)
      .where(and(eq(turns.conversationId, conv.id), inArray(turns.status, ['running', 'queued', 'failed'])));
    const running = pending.find((t) => t.status === 'running');
    if (running) return { kind: 'running', turnId: running.id } as const;
    await deleteConversation(tx, conv.id);
    return { kind: 'deleted', jobTurnIds: pending.map((t) => t.id) } as const;
  });
}
