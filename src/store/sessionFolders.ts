// Session folders in Postgres (`session_folders`, see schema.ts): one archive per stored
// session, replaced only when its digest changes, like a workspace archive.
import { and, eq, sql } from 'drizzle-orm';
import type { Executor } from './db.js';
import { sessionFolders } from './schema.js';
import { unpackWorkspace, type PackedWorkspace, type RefusedEntry } from './workspaceArchive.js';
import { ARCHIVE_UPSERT_SET } from './workspaces.js';

/** Stores the packed folder unless the stored one has the same digest. Index: session_folders_pk. */
export async function storeSessionFolder(db: Executor, conversationId: string, sessionId: string, packed: PackedWorkspace): Promise<{ written: boolean }> {
  const rows = await db
    .insert(sessionFolders)
    .values({ conversationId, sessionId, archive: packed.archive, sha256: packed.sha256, sizeBytes: packed.archive.length, fileCount: packed.fileCount })
    .onConflictDoUpdate({
      target: [sessionFolders.conversationId, sessionFolders.sessionId],
      set: ARCHIVE_UPSERT_SET,
      setWhere: sql`${sessionFolders.sha256} <> excluded.sha256`,
    })
    .returning({ sessionId: sessionFolders.sessionId });
  return { written: rows.length > 0 };
}

/**
 * Unpacks the stored folder of a session into `dir` (absent, or holding only the names in
 * `alongside`: the subagent transcripts written before it); `restored` false when there is
 * none. Entries that could escape `dir` are refused (see unpackWorkspace).
 * Index: session_folders_pk.
 */
export async function restoreSessionFolder(
  db: Executor,
  conversationId: string,
  sessionId: string,
  dir: string,
  alongside: readonly string[] = [],
): Promise<{ restored: boolean; sha256: string | null; refused: RefusedEntry[] }> {
  const rows = await db
    .select({ sha256: sessionFolders.sha256, archive: sessionFolders.archive })
    .from(sessionFolders)
    .where(and(eq(sessionFolders.conversationId, conversationId), eq(sessionFolders.sessionId, sessionId)));
  const row = rows[0];
  if (!row) return { restored: false, sha256: null, refused: [] };
  const { refused } = await unpackWorkspace(row.archive, dir, alongside);
  return { restored: true, sha256: row.sha256, refused };
}
