// Workspace archives in Postgres: one row per conversation, replaced only when its
// digest changes.
import { eq, ne, sql } from 'drizzle-orm';
import type { Executor } from './db.js';
import { unpackWorkspace, type PackedWorkspace, type RefusedEntry } from './workspaceArchive.js';
import { workspaces } from './schema.js';

/** The columns an archive row's upsert replaces (workspaces, session_folders). */
export const ARCHIVE_UPSERT_SET = {
  archive: sql`excluded.archive`,
  sha256: sql`excluded.sha256`,
  sizeBytes: sql`excluded.size_bytes`,
  fileCount: sql`excluded.file_count`,
  updatedAt: sql`now()`,
};

/**
 * Stores a packed workspace unless the stored one has the same sha256 (then nothing is
 * sent). Usable inside the commit transaction. Returns whether it wrote.
 * Index: workspaces_pkey.
 */
export async function storeWorkspace(
  db: Executor,
  conversationId: string,
  packed: PackedWorkspace,
  /** The stored digest, when the caller read it under a lock nobody else writes through (the worker's lease). */
  knownSha256?: string | null,
): Promise<{ written: boolean }> {
  const stored =
    knownSha256 !== undefined
      ? knownSha256
      : (await db.select({ sha256: workspaces.sha256 }).from(workspaces).where(eq(workspaces.conversationId, conversationId)))[0]?.sha256;
  if (stored === packed.sha256) return { written: false };
  // The digest condition also covers a concurrent writer that stored the same bytes first.
  const rows = await db
    .insert(workspaces)
    .values({
      conversationId,
      archive: packed.archive,
      sha256: packed.sha256,
      sizeBytes: packed.archive.length,
      fileCount: packed.fileCount,
    })
    .onConflictDoUpdate({
      target: workspaces.conversationId,
      set: ARCHIVE_UPSERT_SET,
      setWhere: ne(workspaces.sha256, sql`excluded.sha256`),
    })
    .returning({ conversationId: workspaces.conversationId });
  return { written: rows.length > 0 };
}

export interface RestoreResult {
  /** False when the conversation has no stored workspace (nothing was written). */
  restored: boolean;
  sha256: string | null;
  /** Archive entries not extracted because they could escape the directory. */
  refused: RefusedEntry[];
}

/** Unpacks the stored archive into `dir` (absent or empty). Index: workspaces_pkey. */
export async function restoreWorkspace(db: Executor, conversationId: string, dir: string): Promise<RestoreResult> {
  const rows = await db
    .select({ sha256: workspaces.sha256, archive: workspaces.archive })
    .from(workspaces)
    .where(eq(workspaces.conversationId, conversationId));
  const row = rows[0];
  if (!row) return { restored: false, sha256: null, refused: [] };
  const { refused } = await unpackWorkspace(row.archive, dir);
  return { restored: true, sha256: row.sha256, refused };
}

/** The digest of the stored workspace archive, without the archive. Index: workspaces_pkey. */
export async function getWorkspaceSha(db: Executor, conversationId: string): Promise<string | undefined> {
  const rows = await db.select({ sha256: workspaces.sha256 }).from(workspaces).where(eq(workspaces.conversationId, conversationId));
  return rows[0]?.sha256;
}
