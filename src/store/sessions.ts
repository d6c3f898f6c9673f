// The session head row and the commit boundary.
//
// Semantics of attempts (one linear log per session):
// - Stored lines [0, committed_line_count) are committed: a finished turn's history.
//   Lines after that, up to line_count, are checkpoints written by the attempts of the turn
//   in flight. Only one attempt of a conversation writes at a time (the worker's lease and
//   fencing token guarantee it), so the uncommitted tail is always one linear
//   continuation of the committed prefix.
// - A retried attempt that continues (invariant 7 of docs/design.md) hydrates with
//   `includeUncommitted: true`: committed lines plus the interrupted attempt's
//   checkpoints. Its file then continues the stored bytes, it appends after them, and
//   its commit commits the whole tail, the earlier attempt's lines included (its own
//   history contains them).
// - A retried attempt that starts over calls discardUncommitted first, then hydrates the
//   committed lines only. persist refuses a file that does not continue the stored bytes
//   (SessionDivergedError), so forgetting the discard cannot interleave two histories.
import { and, asc, eq, getTableColumns, gte, sql } from 'drizzle-orm';
import { SessionAttemptConflictError, SessionNotFoundError } from '../errors.js';
import type { Executor } from './db.js';
import { sessionChunks, sessions } from './schema.js';

export type SessionHead = typeof sessions.$inferSelect;

const headKey = (conversationId: string, sessionId: string) =>
  and(eq(sessions.conversationId, conversationId), eq(sessions.sessionId, sessionId));

/** The head row, or undefined. Index: sessions_pk. */
export async function getSessionHead(db: Executor, conversationId: string, sessionId: string): Promise<SessionHead | undefined> {
  const rows = await db.select().from(sessions).where(headKey(conversationId, sessionId));
  return rows[0];
}

/** A session's head, its subagent transcripts' heads (by id) and its stored folder's digest. */
export interface SessionHeads {
  head: SessionHead | undefined;
  subagents: SessionHead[];
  folderSha256: string | null;
}

/**
 * The head of a session, the heads of its subagent transcripts (stored as sessions
 * `<sessionId>/<subpath>`) and the digest of its stored folder, in one statement.
 * Index: sessions_pk (the conversation's rows).
 */
export async function getSessionHeads(db: Executor, conversationId: string, sessionId: string): Promise<SessionHeads> {
  const rows = await db
    .select({
      ...getTableColumns(sessions),
      // The digest of the session's stored folder (session_folders_pk), on the main head's row.
      // Qualified by hand: drizzle leaves the outer columns unqualified inside a subquery.
      folderSha256: sql<string | null>`(select f.sha256 from session_folders f
        where f.conversation_id = "sessions"."conversation_id" and f.session_id = "sessions"."session_id")`,
    })
    .from(sessions)
    .where(
      and(
        eq(sessions.conversationId, conversationId),
        // starts_with, not LIKE: `_` in a session id is not a wildcard.
        sql`(${sessions.sessionId} = ${sessionId} or starts_with(${sessions.sessionId}, ${`${sessionId}/`}))`,
      ),
    )
    .orderBy(asc(sessions.sessionId));
  const heads = rows.map(({ folderSha256: _folder, ...head }) => head);
  return {
    head: heads.find((r) => r.sessionId === sessionId),
    subagents: heads.filter((r) => r.sessionId !== sessionId),
    folderSha256: rows.find((r) => r.sessionId === sessionId)?.folderSha256 ?? null,
  };
}

/**
 * Locks the head row for the rest of the transaction. Concurrent writers of one session
 * queue here; under READ COMMITTED the next one then reads the head the previous one
 * left. Index: sessions_pk.
 */
export async function lockSessionHead(tx: Executor, conversationId: string, sessionId: string): Promise<SessionHead | undefined> {
  const rows = await tx.select().from(sessions).where(headKey(conversationId, sessionId)).for('update');
  return rows[0];
}

/** Locks the head row, creating an empty one first if the session is new. */
export async function lockOrCreateSessionHead(
  tx: Executor,
  conversationId: string,
  sessionId: string,
  forkedFrom: string | null,
): Promise<SessionHead> {
  const existing = await lockSessionHead(tx, conversationId, sessionId);
  if (existing) return existing;
  // Two first writers race here: the loser's insert waits on the winner's unique key,
  // then does nothing, and both lock the one row.
  await tx.insert(sessions).values({ conversationId, sessionId, forkedFrom }).onConflictDoNothing();
  const created = await lockSessionHead(tx, conversationId, sessionId);
  if (!created) throw new SessionNotFoundError(conversationId, sessionId);
  return created;
}

export interface CommitInput {
  conversationId: string;
  sessionId: string;
  /** The attempt that is committing (as passed to persistSession). */
  attempt: string | number;
  /**
   * Also point the conversation's session_id at the session (default true). The worker
   * passes false and sets it in the same statement that checks its fence and ends the turn.
   */
  pointConversation?: boolean;
}

export interface CommitResult {
  linesCommitted: number;
  bytesCommitted: number;
  lineCount: number;
  byteCount: number;
}

interface CommitRow extends Record<string, unknown> {
  line_count: string;
  byte_count: string;
  committed_line_count: string;
  committed_byte_count: string;
  intruder: string | null;
}

/**
 * Commits every stored line of the session (see the semantics at the top of this file),
 * and points the conversation's session_id at it. Meant for the worker's commit
 * transaction: pass that transaction. Refuses (SessionAttemptConflictError) when another
 * attempt appended after this one, which only a fencing failure can cause; then nothing
 * changes.
 *
 * One call (agentq_commit_session_lines, migrations/0014; it runs on every turn): lock the
 * head, look for a chunk of another attempt after this attempt's first uncommitted chunk,
 * and only if there is none mark the uncommitted chunks committed and move the committed
 * boundary to the head. The worker's commit runs the same function inside agentq_commit_turn.
 * Index: sessions_pk, session_chunks_pk range (the uncommitted tail: one turn's worth).
 */
export async function commitSessionLines(tx: Executor, input: CommitInput): Promise<CommitResult> {
  const attempt = String(input.attempt);
  const { conversationId, sessionId } = input;
  const pointConversation = input.pointConversation ?? true;
  const r = await tx.execute<CommitRow>(sql`
    select * from agentq_commit_session_lines(${conversationId}::uuid, ${sessionId}, ${attempt}, ${pointConversation}::boolean)`);
  const head = r.rows[0];
  if (!head) throw new SessionNotFoundError(conversationId, sessionId);
  if (head.intruder !== null) throw new SessionAttemptConflictError(sessionId, attempt, head.intruder);
  const lineCount = Number(head.line_count);
  const byteCount = Number(head.byte_count);
  return {
    linesCommitted: lineCount - Number(head.committed_line_count),
    bytesCommitted: byteCount - Number(head.committed_byte_count),
    lineCount,
    byteCount,
  };
}

export interface DiscardResult {
  linesDiscarded: number;
  bytesDiscarded: number;
}

/**
 * Deletes the uncommitted tail (checkpoints of abandoned attempts) and moves the head
 * back to the committed boundary. For a retry that starts over instead of continuing.
 */
export async function discardUncommitted(
  db: Executor,
  input: { conversationId: string; sessionId: string },
): Promise<DiscardResult> {
  return db.transaction(async (tx) => {
    const head = await lockSessionHead(tx, input.conversationId, input.sessionId);
    if (!head) throw new SessionNotFoundError(input.conversationId, input.sessionId);
    if (head.lineCount === head.committedLineCount) return { linesDiscarded: 0, bytesDiscarded: 0 };
    // Index: session_chunks_pk range. Chunks never straddle the boundary: commits happen between appends.
    await tx
      .delete(sessionChunks)
      .where(
        and(
          eq(sessionChunks.conversationId, input.conversationId),
          eq(sessionChunks.sessionId, input.sessionId),
          gte(sessionChunks.firstLine, head.committedLineCount),
        ),
      );
    await tx
      .update(sessions)
      .set({
        lineCount: head.committedLineCount,
        byteCount: head.committedByteCount,
        tailSha256: head.committedTailSha256,
        updatedAt: sql`now()`,
      })
      .where(headKey(input.conversationId, input.sessionId));
    return {
      linesDiscarded: head.lineCount - head.committedLineCount,
      bytesDiscarded: head.byteCount - head.committedByteCount,
    };
  });
}

/**
 * Discards the uncommitted tails of a session and of its subagent transcripts (see
 * discardUncommitted), for an attempt that ends without storing what its run wrote.
 * Index: sessions_pk (the conversation's rows).
 */
export async function discardSessionTails(db: Executor, conversationId: string, sessionId: string): Promise<void> {
  const { head, subagents } = await getSessionHeads(db, conversationId, sessionId);
  for (const h of [head, ...subagents]) {
    if (h && h.lineCount > h.committedLineCount) await discardUncommitted(db, { conversationId, sessionId: h.sessionId });
  }
}
