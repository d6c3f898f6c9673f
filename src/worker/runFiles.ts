// What a run wrote that its attempt stores: the session file, its subagent transcripts
// (with their sidecars) and the rest of its session folder, all beneath the attempt's
// config dir. The agent can write every byte of it, so it is read only through
// src/agentFiles/agentTree.ts, and a refusal has a fixed consequence:
// - a subagent transcript, sidecar or folder that cannot be stored is left out and
//   recorded on the turn once (`subagent_transcript_not_saved`, `session_folder_not_saved`);
//   the turn goes on;
// - a session file that cannot be stored (a link, not a regular file, over
//   AGENTQ_SESSION_MAX_BYTES, rewritten, a line over the cap, refused by Postgres) is
//   recorded once (`session_not_saved`); the attempt stores none of it from then on and
//   drops its checkpoints of it, and the turn does not succeed on it: the attempt counts
//   as failed, retried up to AGENTQ_MAX_ATTEMPTS like any other failure.
import path from 'node:path';
import { agentPathKind } from '../agentFiles/agentTree.js';
import { sessionFileRelPath, sessionFolderPath } from '../claude/sessionPath.js';
import { subpathOf } from '../claude/subagentPath.js';
import { AgentFileRefusedError, safeErrorMessage, SessionDivergedError, SessionLineTooLongError } from '../errors.js';
import type { StoreTx } from '../store/db.js';
import { persistSession, readSessionDelta, type NewLines, type StoredEnd } from '../store/persist.js';
import { DEFAULT_CODEC } from '../store/chunks.js';
import type { CommitSession } from '../store/turns.js';
import { isDataRefusal } from '../store/pgSafe.js';
import { discardSessionTails } from '../store/sessions.js';
import { saveSessionFolder, type FolderState } from './sessionFolder.js';
import { persistSubagentTranscripts } from './subagentTranscripts.js';

export interface RunFilesOptions {
  conversationId: string;
  attempt: number;
  /** The attempt's CLAUDE_CONFIG_DIR on the host. */
  configDir: string;
  /** The conversation's workspace on the host. */
  cwd: string;
  /** The cwd as the CLI sees it when not `cwd` (the sandbox's mount point). */
  cliCwd: string | undefined;
  limits: {
    /** AGENTQ_SESSION_MAX_LINE_BYTES */
    maxLineBytes: number;
    /** AGENTQ_SESSION_MAX_BYTES */
    sessionMaxBytes: number;
    /** AGENTQ_WORKSPACE_MAX_BYTES (the session folder's cap) */
    folderMaxBytes: number;
    /** AGENTQ_WORKSPACE_MAX_ENTRIES */
    maxEntries: number;
  };
  /** Records an `agentq` event on the turn. */
  record: (payload: Record<string, unknown>) => void;
  warn: (fields: Record<string, unknown>, message: string) => void;
}

/** A session file the run wrote. */
export interface SessionOnDisk {
  sessionId: string;
  /** Beneath the config dir (posix). */
  rel: string;
  /** The host path (only ever opened through src/agentFiles). */
  file: string;
  /** The session the run started from, when the CLI forked a new one from it. */
  forkedFrom: string | undefined;
}

/**
 * Thrown inside a fenced transaction when the session file itself was refused. The
 * transaction is rolled back (Postgres may have refused a statement of it); the caller
 * records the refusal (RunFiles.refuse) and runs it again, without the session.
 */
export class SessionFileRefused extends Error {
  override readonly name = 'SessionFileRefused';
  constructor(
    readonly sessionId: string,
    readonly reason: string,
  ) {
    super(`the session file ${sessionId} was not stored: ${reason}`);
  }
}

/**
 * The most new session bytes the commit sends in its one call (agentq_commit_turn); more
 * are stored first, streamed under the head's lock, as a checkpoint stores them.
 */
export const COMMIT_CALL_MAX_BYTES = 4 * 1024 * 1024;

/** The commit's session work (RunFiles.prepareCommit). */
export interface PreparedCommit {
  /** For agentq_commit_turn; undefined: nothing to commit (no session, or it was refused). */
  session: CommitSession | undefined;
  /** The session the conversation points at once committed. */
  sessionId: string | undefined;
}

/** What the agent's own session file can make the store refuse, every time it tries. */
function isSessionRefusal(err: unknown): boolean {
  return err instanceof AgentFileRefusedError || err instanceof SessionLineTooLongError || err instanceof SessionDivergedError || isDataRefusal(err);
}

const WARNINGS = {
  subagent_transcript_not_saved: 'a subagent transcript could not be stored',
  session_folder_not_saved: 'the session folder could not be stored',
  session_not_saved: 'the session file could not be stored: the turn will not succeed on it',
} as const;

export class RunFiles {
  /** Stored ids of the subagent transcripts this attempt stored (committed with the session). */
  private readonly subagentFileIds = new Set<string>();
  /** The subagent sidecars this attempt stored, by file id. */
  private readonly storedSidecars = new Map<string, string>();
  /** Files already reported as not stored (`<subtype>:<file id>`). */
  private readonly reported = new Set<string>();
  /** The session folder as last stored (./sessionFolder.ts). */
  readonly folder: FolderState = { signature: undefined, sha256: null };
  /** Why the session file was refused, once it was. */
  private refusal: { sessionId: string; reason: string } | undefined;
  /**
   * Where the stored lines of the session end, as this attempt last read or wrote them
   * under its lease: the commit reads the file from there without locking the head first.
   */
  private known: { sessionId: string; end: StoredEnd } | undefined;

  constructor(private readonly o: RunFilesOptions) {}

  /** The stored head of `sessionId` is `end` (read under this attempt's lease, or written by it). */
  knowHead(sessionId: string, end: StoredEnd): void {
    this.known = { sessionId, end: { lineCount: end.lineCount, byteCount: end.byteCount, tailSha256: end.tailSha256 } };
  }

  /** The known head may be wrong (a commit found it moved): the next write locks and reads it. */
  forgetHead(): void {
    this.known = undefined;
  }

  /** Why the session file was not stored, if it was refused in this attempt. */
  get sessionRefusal(): string | undefined {
    return this.refusal?.reason;
  }

  /** Where the CLI keeps session `sessionId`: beneath the config dir, and on the host. */
  sessionPaths(sessionId: string): { rel: string; file: string } {
    const rel = sessionFileRelPath(this.o.cwd, sessionId, this.o.cliCwd);
    return { rel, file: path.join(this.o.configDir, ...rel.split('/')) };
  }

  /**
   * The session file the CLI is writing (`sessionId`, started from `baseSessionId`), when
   * there is anything at its path; whether it is a regular file is for the reads to say.
   */
  async find(sessionId: string, baseSessionId: string): Promise<SessionOnDisk | undefined> {
    const { rel, file } = this.sessionPaths(sessionId);
    if ((await agentPathKind({ root: this.o.configDir, rel })) === undefined) return undefined;
    return { sessionId, rel, file, forkedFrom: sessionId !== baseSessionId ? baseSessionId : undefined };
  }

  /**
   * Stores the new lines of the session file, of its subagent transcripts (with their
   * sidecars) and its folder if it changed, all uncommitted. Throws SessionFileRefused
   * when the session file itself cannot be stored.
   */
  async save(tx: StoreTx, current: SessionOnDisk, afterCommit: (f: () => void) => void): Promise<void> {
    if (this.refusal?.sessionId === current.sessionId) return;
    await this.saveSession(tx, current, afterCommit);
    await this.saveExtras(tx, current, afterCommit);
  }

  /**
   * In the commit transaction: stores what does not go in the commit's one call (the
   * subagent transcripts and folder; the session's new lines too when the head is not
   * known or they are many), and returns what does (src/store/turns.ts CommitSession). A
   * refused session is not committed: its uncommitted lines are dropped and the
   * conversation keeps its session. Throws SessionFileRefused as save does.
   */
  async prepareCommit(tx: StoreTx, current: SessionOnDisk, afterCommit: (f: () => void) => void): Promise<PreparedCommit> {
    if (this.refusal?.sessionId === current.sessionId) {
      await discardSessionTails(tx, this.o.conversationId, current.sessionId);
      return { session: undefined, sessionId: undefined };
    }
    const lines = (await this.folderNeedsHeadRow(current)) ? undefined : await this.readFromKnownHead(current);
    if (!lines) await this.saveSession(tx, current, afterCommit);
    await this.saveExtras(tx, current, afterCommit);
    const subagentIds = [...this.subagentFileIds].filter((id) => subpathOf(current.sessionId, id) !== undefined);
    return {
      session: { sessionId: current.sessionId, forkedFrom: current.forkedFrom ?? null, lines, codec: DEFAULT_CODEC, subagentIds },
      sessionId: current.sessionId,
    };
  }

  /**
   * A session with nothing stored yet may have no head row, which the rows of its folder
   * (subagent transcripts, saved tool outputs) refer to: when it has a folder, its lines
   * are stored before those rows, by the streamed path, which creates the head row.
   */
  private async folderNeedsHeadRow(current: SessionOnDisk): Promise<boolean> {
    if (this.known === undefined || this.known.end.byteCount > 0) return false;
    return (await agentPathKind({ root: this.o.configDir, rel: sessionFolderPath(current.rel, current.sessionId) })) !== undefined;
  }

  /** The session's new lines read from the known head, when it is known and they are few. */
  private async readFromKnownHead(current: SessionOnDisk): Promise<NewLines | undefined> {
    const { o } = this;
    if (this.known?.sessionId !== current.sessionId) return undefined;
    try {
      return await readSessionDelta(
        { sessionId: current.sessionId, filePath: current.file, root: o.configDir, maxFileBytes: o.limits.sessionMaxBytes, maxLineBytes: o.limits.maxLineBytes },
        this.known.end,
        COMMIT_CALL_MAX_BYTES,
      );
    } catch (err) {
      if (isSessionRefusal(err)) throw new SessionFileRefused(current.sessionId, safeErrorMessage(err));
      throw err;
    }
  }

  /** The session file's new lines, uncommitted, streamed under the head's lock. */
  private async saveSession(tx: StoreTx, current: SessionOnDisk, afterCommit: (f: () => void) => void): Promise<void> {
    const { o } = this;
    try {
      const r = await persistSession(tx, {
        conversationId: o.conversationId,
        sessionId: current.sessionId,
        filePath: current.file,
        root: o.configDir,
        maxFileBytes: o.limits.sessionMaxBytes,
        attempt: o.attempt,
        forkedFrom: current.forkedFrom ?? null,
        maxLineBytes: o.limits.maxLineBytes,
        // Any error rolls the whole fenced transaction back.
        savepoint: false,
      });
      afterCommit(() => this.knowHead(current.sessionId, r));
    } catch (err) {
      if (isSessionRefusal(err)) throw new SessionFileRefused(current.sessionId, safeErrorMessage(err));
      throw err;
    }
  }

  /** The session's subagent transcripts (with their sidecars) and its folder if it changed, uncommitted. */
  private async saveExtras(tx: StoreTx, current: SessionOnDisk, afterCommit: (f: () => void) => void): Promise<void> {
    const { o } = this;
    const subagents = await persistSubagentTranscripts(tx, {
      conversationId: o.conversationId,
      sessionId: current.sessionId,
      configDir: o.configDir,
      sessionRel: current.rel,
      attempt: o.attempt,
      maxLineBytes: o.limits.maxLineBytes,
      maxFileBytes: o.limits.sessionMaxBytes,
      maxEntries: o.limits.maxEntries,
      storedSidecars: this.storedSidecars,
      afterCommit,
    });
    for (const id of subagents.stored) this.subagentFileIds.add(id);
    for (const f of subagents.failed) this.report('subagent_transcript_not_saved', f.fileId, f.message);
    const folder = await saveSessionFolder(tx, {
      conversationId: o.conversationId,
      sessionId: current.sessionId,
      configDir: o.configDir,
      sessionRel: current.rel,
      maxBytes: o.limits.folderMaxBytes,
      maxEntries: o.limits.maxEntries,
      state: this.folder,
      afterCommit,
    });
    if (folder.notSaved) this.report('session_folder_not_saved', current.sessionId, folder.notSaved);
  }

  /** The session file was refused (see SessionFileRefused): recorded once, and nothing more of it is stored. */
  refuse(err: SessionFileRefused): void {
    this.refusal ??= { sessionId: err.sessionId, reason: err.reason };
    this.report('session_not_saved', err.sessionId, err.reason);
  }

  /** In a requeue's transaction: a refused session's checkpoints are dropped, so the retry starts from what was committed. */
  async dropRefused(tx: StoreTx): Promise<void> {
    if (this.refusal) await discardSessionTails(tx, this.o.conversationId, this.refusal.sessionId);
  }

  /** Once per file and attempt: an event on the turn and a warning. */
  private report(subtype: 'subagent_transcript_not_saved' | 'session_folder_not_saved' | 'session_not_saved', fileId: string, message: string): void {
    if (this.reported.has(`${subtype}:${fileId}`)) return;
    this.reported.add(`${subtype}:${fileId}`);
    this.o.warn({ fileId, message }, WARNINGS[subtype]);
    this.o.record({ type: 'agentq', subtype, sessionId: fileId, message });
  }
}
