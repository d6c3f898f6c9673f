// A turn's subagent transcripts, kept like its session file: stored with the same
// checkpoints (uncommitted) and the same commit transaction, hydrated next to the session
// file before the next run, on whatever worker (src/claude/subagentPath.ts says where).
// Each one's `.meta.json` sidecar goes with it (session_sidecars). The agent can write all
// of them: they are read only through src/agentFiles/agentTree.ts.
// A subagent transcript that cannot be stored (the CLI rewrote it, a line too long) does
// not fail the turn: it is reported and the rest is stored.
import path from 'node:path';
import { readAgentFile } from '../agentFiles/agentTree.js';
import { listSubagentTranscripts, subagentFileId, subagentMetaPath, subpathOf } from '../claude/subagentPath.js';
import { AgentFileRefusedError, SessionDivergedError, SessionLineTooLongError } from '../errors.js';
import type { StoreDb, StoreTx } from '../store/db.js';
import { hydrateSubagentTranscripts } from '../store/hydrate.js';
import { persistSession } from '../store/persist.js';
import { commitSessionLines, type SessionHead } from '../store/sessions.js';
import { putSidecar } from '../store/sidecars.js';
import { isDataRefusal } from '../store/pgSafe.js';

/** Largest `.meta.json` sidecar stored (the CLI writes a few hundred bytes). */
export const SIDECAR_MAX_BYTES = 64 * 1024;

export interface SubagentPersistInput {
  conversationId: string;
  sessionId: string;
  /** The run's config dir: the agent can write beneath it, so nothing there is read through a link. */
  configDir: string;
  /** The session file's path beneath `configDir` (posix). */
  sessionRel: string;
  attempt: number;
  maxLineBytes: number;
  /** AGENTQ_SESSION_MAX_BYTES: the cap per transcript, and on all of them together. */
  maxFileBytes: number;
  /** AGENTQ_WORKSPACE_MAX_ENTRIES: the cap on the entries of the subagents folder. */
  maxEntries: number;
  /** Sidecar contents this attempt stored, by file id: an unchanged one is not written again. */
  storedSidecars: Map<string, string>;
  /** Runs `f` once the caller's transaction committed (the map changes wait for it). */
  afterCommit: (f: () => void) => void;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The sidecar as text Postgres can store, or why not (not UTF-8, a NUL). */
function sidecarText(bytes: Buffer, rel: string): string {
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw new AgentFileRefusedError(rel, 'not_regular', 'not UTF-8 text');
  }
  if (text.includes('\0')) throw new AgentFileRefusedError(rel, 'not_regular', 'it holds a NUL character');
  return text;
}

/** The transcript's `.meta.json`, when there is one and it changed since this attempt stored it. */
async function storeSidecar(tx: StoreTx, input: SubagentPersistInput, fileId: string, transcriptRel: string): Promise<void> {
  const rel = subagentMetaPath(transcriptRel);
  const bytes = await readAgentFile({ root: input.configDir, rel }, SIDECAR_MAX_BYTES);
  // None (yet): the transcript is what a continued agent needs.
  if (bytes === undefined) return;
  const content = sidecarText(bytes, rel);
  if (input.storedSidecars.get(fileId) === content) return;
  await putSidecar(tx, input.conversationId, fileId, content);
  input.afterCommit(() => input.storedSidecars.set(fileId, content));
}

export interface SubagentPersistResult {
  /** Stored ids of the transcripts on disk (stored now or already). */
  stored: string[];
  /** Transcripts (or their sidecars) that could not be stored, with why. */
  failed: { fileId: string; message: string }[];
}

/** What the agent's own files can make the store refuse; anything else (Postgres away) fails the caller as usual. */
function isFileRefusal(err: unknown): err is Error {
  return err instanceof SessionDivergedError || err instanceof SessionLineTooLongError || err instanceof AgentFileRefusedError || isDataRefusal(err);
}

/** Stores the new lines of every subagent transcript of the session (uncommitted). */
export async function persistSubagentTranscripts(tx: StoreTx, input: SubagentPersistInput): Promise<SubagentPersistResult> {
  const result: SubagentPersistResult = { stored: [], failed: [] };
  let transcripts;
  try {
    transcripts = await listSubagentTranscripts(input.configDir, input.sessionRel, input.sessionId, {
      maxEntries: input.maxEntries,
      maxBytes: input.maxFileBytes,
    });
  } catch (err) {
    if (!(err instanceof AgentFileRefusedError)) throw err;
    result.failed.push({ fileId: subagentFileId(input.sessionId, 'subagents'), message: err.message });
    return result;
  }
  for (const t of transcripts) {
    const fileId = subagentFileId(input.sessionId, t.subpath);
    try {
      // In a savepoint (persistSession's default): a line too long may come after chunks
      // were inserted; refusing the file rolls back just those.
      await persistSession(tx, {
        conversationId: input.conversationId,
        sessionId: fileId,
        filePath: path.join(input.configDir, t.rel),
        root: input.configDir,
        maxFileBytes: input.maxFileBytes,
        attempt: input.attempt,
        forkedFrom: null,
        maxLineBytes: input.maxLineBytes,
      });
      result.stored.push(fileId);
    } catch (err) {
      if (!isFileRefusal(err)) throw err;
      result.failed.push({ fileId, message: err.message });
      continue;
    }
    try {
      await storeSidecar(tx, input, fileId, t.rel);
    } catch (err) {
      // Refused before anything was sent; a Postgres error (no savepoint here) fails the caller.
      if (!(err instanceof AgentFileRefusedError)) throw err;
      result.failed.push({ fileId: `${fileId}.meta.json`, message: err.message });
    }
  }
  return result;
}

/**
 * Commits the stored lines of these subagent transcripts, in the caller's commit transaction
 * (the worker's commit does it inside agentq_commit_turn, src/store/turns.ts CommitSession).
 */
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
