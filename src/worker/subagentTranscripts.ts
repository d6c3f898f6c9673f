// A turn's subagent transcripts, kept like its session file: stored with the same
// checkpoints (uncommitted) and the same commit transaction, hydrated next to the session
// file before the next run, on whatever worker (src/claude/subagentPath.ts says where).
// Each one's `.meta.json` sidecar goes with it (session_sidecars).
// A subagent transcript that cannot be stored (the CLI rewrote it, a line too long) does
// not fail the turn: it is reported and the rest is stored.
import { readFile } from 'node:fs/promises';
import { listSubagentTranscripts, subagentFileId, subagentMetaPath, subpathOf } from '../claude/subagentPath.js';
import { SessionDivergedError, SessionLineTooLongError } from '../errors.js';
import type { StoreDb, StoreTx } from '../store/db.js';
import { hydrateSubagentTranscripts } from '../store/hydrate.js';
import { persistSession } from '../store/persist.js';
import { commitSessionLines, type SessionHead } from '../store/sessions.js';
import { putSidecar } from '../store/sidecars.js';

export interface SubagentPersistInput {
  conversationId: string;
  sessionId: string;
  sessionFile: string;
  attempt: number;
  maxLineBytes: number;
  /** Sidecar contents this attempt stored, by file id: an unchanged one is not written again. */
  storedSidecars: Map<string, string>;
  /** Runs `f` once the caller's transaction committed (the map changes wait for it). */
  afterCommit: (f: () => void) => void;
}

/** The transcript's `.meta.json`, when there is one and it changed since this attempt stored it. */
async function storeSidecar(tx: StoreTx, input: SubagentPersistInput, fileId: string, transcript: string): Promise<void> {
  let content: string;
  try {
    content = await readFile(subagentMetaPath(transcript), 'utf8');
  } catch {
    // None (yet), or unreadable: the transcript is what a continued agent needs.
    return;
  }
  if (input.storedSidecars.get(fileId) === content) return;
  await putSidecar(tx, input.conversationId, fileId, content);
  input.afterCommit(() => input.storedSidecars.set(fileId, content));
}

export interface SubagentPersistResult {
  /** Stored ids of the transcripts on disk (stored now or already). */
  stored: string[];
  /** Transcripts that could not be stored, with why. */
  failed: { fileId: string; message: string }[];
}

/** Stores the new lines of every subagent transcript of the session (uncommitted). */
export async function persistSubagentTranscripts(tx: StoreTx, input: SubagentPersistInput): Promise<SubagentPersistResult> {
  const result: SubagentPersistResult = { stored: [], failed: [] };
  for (const t of await listSubagentTranscripts(input.sessionFile, input.sessionId)) {
    const fileId = subagentFileId(input.sessionId, t.subpath);
    try {
      // In a savepoint (persistSession's default): a line too long may come after chunks
      // were inserted; refusing the file rolls back just those.
      await persistSession(tx, {
        conversationId: input.conversationId,
        sessionId: fileId,
        filePath: t.file,
        attempt: input.attempt,
        forkedFrom: null,
        maxLineBytes: input.maxLineBytes,
      });
      result.stored.push(fileId);
      await storeSidecar(tx, input, fileId, t.file);
    } catch (err) {
      // The file's own refusals; anything else (Postgres away) fails the caller as usual.
      if (!(err instanceof SessionDivergedError || err instanceof SessionLineTooLongError)) throw err;
      result.failed.push({ fileId, message: err.message });
    }
  }
  return result;
}

/** Commits the stored lines of these subagent transcripts, in the caller's commit transaction. */
export async function commitSubagentTranscripts(tx: StoreTx, conversationId: string, fileIds: Iterable<string>, attempt: number): Promise<void> {
  for (const fileId of fileIds) await commitSessionLines(tx, { conversationId, sessionId: fileId, attempt, pointConversation: false });
}

/**
 * Writes the stored subagent transcripts of a session next to its file. `heads` are the
 * subagent heads read with the session's (getSessionHeads); empty ones are skipped.
 * Returns the subpaths that could not be written (not safe as a path on disk).
 */
export async function hydrateSubagents(
  db: StoreDb,
  input: { conversationId: string; sessionId: string; sessionFile: string; heads: readonly SessionHead[] },
): Promise<string[]> {
  const subpaths = input.heads
    .filter((h) => h.lineCount > 0)
    .map((h) => subpathOf(input.sessionId, h.sessionId))
    .filter((s): s is string => s !== undefined);
  if (subpaths.length === 0) return [];
  const { skipped } = await hydrateSubagentTranscripts(db, {
    conversationId: input.conversationId,
    sessionId: input.sessionId,
    sessionFile: input.sessionFile,
    subpaths,
    includeUncommitted: true,
  });
  return skipped;
}
