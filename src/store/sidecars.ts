// The JSON sidecar of a stored subagent transcript (`session_sidecars`, see schema.ts):
// one row per transcript, replaced when the CLI's file changes.
import { and, eq, inArray, sql } from 'drizzle-orm';
import type { Executor } from './db.js';
import { sessionSidecars } from './schema.js';

/** Stores `content` as the sidecar of the stored transcript `fileId` (its head must exist). */
export async function putSidecar(db: Executor, conversationId: string, fileId: string, content: string): Promise<void> {
  // Index: session_sidecars_pk. An unchanged content is not rewritten.
  await db
    .insert(sessionSidecars)
    .values({ conversationId, sessionId: fileId, content })
    .onConflictDoUpdate({
      target: [sessionSidecars.conversationId, sessionSidecars.sessionId],
      set: { content, updatedAt: sql`now()` },
      setWhere: sql`${sessionSidecars.content} is distinct from excluded.content`,
    });
}

/** The sidecars of these stored transcripts, by file id. Index: session_sidecars_pk. */
export async function getSidecars(db: Executor, conversationId: string, fileIds: readonly string[]): Promise<Map<string, string>> {
  if (fileIds.length === 0) return new Map();
  const rows = await db
    .select({ sessionId: sessionSidecars.sessionId, content: sessionSidecars.content })
    .from(sessionSidecars)
    .where(and(eq(sessionSidecars.conversationId, conversationId), inArray(sessionSidecars.sessionId, [...fileIds])));
  return new Map(rows.map((r) => [r.sessionId, r.content]));
}
