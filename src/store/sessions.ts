// The session head row and the commit boundary.
//
// Semantics of attempts (one linear log per session):
// - Stored lines [0, committed_line_count) are committed: a finished turn's history.
//   Lines after that, up to line_count, are checkpoints written by the attempts of the turn
//   in flight. Only one attempt of a conversation writes at a time (the worker's lease and
//   fencing token guarantee it), so the uncommitted tail is always one linear
//   continuation of the committed prefix.
// - A retried attempt that continues (DESIGN invariant 7) hydrates with
//   `includeUncommitted: true`: committed lines plus the interrupted attempt's
//   checkpoints. Its file then continues the stored bytes, it appends after them, and
//   its commit commits the whole tail, the earlier attempt's lines included (its own
//   history contains them).
// - A retried attempt that starts over calls discardUncommitted first, then hydrates the
//   committed lines only. persist refuses a file that does not continue the stored bytes
//   (SessionDivergedError), so forgetting the discard cannot interleave two histories.
import { and, eq, gte, sql } from 'drizzle-orm';
import { SessionAttemptConflictError, SessionNotFoundError } from '../errors.js';
import type { Executor } from './db.js';
import { conversations, sessionChunks, sessions } from './schema.js';

export type SessionHead = typeof sessions.$inferSelect;

const headKey = (conversationId: string, sessionId: string) =>
  and(eq(sessions.conversationId, conversationId), eq(sessions.sessionId, sessionId));

/** The head row, or undefined. Index: sessions_pk. */
export async function getSessionHead(db: Executor, conversationId: string, sessionId: string): Promise<SessionHead | undefined> {
  const rows = await db.select().from(sessions).where(headKey(conversationId, sessionId));
  return rows[0];
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
}

export interface CommitResult {
  linesCommitted: number;
  bytesCommitted: number;
  lineCount: number;
  byteCount: number;
}

/**
 * Commits every stored line of the session (see the semantics at the top of this file),
 * and points the conversation's session_id at it. Meant for the worker's commit
 * transaction: pass that transaction. Refuses (SessionAttemptConflictError) when another
 * attempt appended after this one, which only a fencing failure can cause.
 */
export async function commitSessionLines(tx: Executor, input: CommitInput): Promise<CommitResult> {
  const attempt = String(input.attempt);
  return tx.transaction(async (inner) => {
    const head = await lockSessionHead(inner, input.conversationId, input.sessionId);
    if (!head) throw new SessionNotFoundError(input.conversationId, input.sessionId);
    if (head.lineCount > head.committedLineCount) {
      // Metadata of the uncommitted tail only (one turn's worth). Index: session_chunks_pk range.
      const tail = await inner
        .select({ attempt: sessionChunks.attempt })
        .from(sessionChunks)
        .where(
          and(
            eq(sessionChunks.conversationId, input.conversationId),
            eq(sessionChunks.sessionId, input.sessionId),
            gte(sessionChunks.firstLine, head.committedLineCount),
          ),
        )
        .orderBy(sessionChunks.firstLine);
      const mine = tail.findIndex((c) => c.attempt === attempt);
      const intruder = mine === -1 ? undefined : tail.slice(mine).find((c) => c.attempt !== attempt);
      if (intruder) throw new SessionAttemptConflictError(input.sessionId, attempt, intruder.attempt);
      await inner
        .update(sessionChunks)
        .set({ committed: true })
        .where(
          and(
            eq(sessionChunks.conversationId, input.conversationId),
            eq(sessionChunks.sessionId, input.sessionId),
            gte(sessionChunks.firstLine, head.committedLineCount),
          ),
        );
      await inner
        .update(sessions)
        .set({
          committedLineCount: head.lineCount,
          committedByteCount: head.byteCount,
          committedTailSha256: head.tailSha256,
          updatedAt: sql`now()`,
        })
        .where(headKey(input.conversationId, input.sessionId));
    }
    // Index: conversations_pkey.
    await inner
      .update(conversations)
      .set({ sessionId: input.sessionId, updatedAt: sql`now()` })
      .where(eq(conversations.id, input.conversationId));
    return {
      linesCommitted: head.lineCount - head.committedLineCount,
      bytesCommitted: head.byteCount - head.committedByteCount,
      lineCount: head.lineCount,
      byteCount: head.byteCount,
    };
  });
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
