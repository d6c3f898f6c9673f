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
import { sessionFileRelPath } from '../claude/sessionPath.js';
import { subpathOf } from '../claude/subagentPath.js';
import { AgentFileRefusedError, safeErrorMessage, SessionDivergedError, SessionLineTooLongError } from '../errors.js';
import type { StoreTx } from '../store/db.js';
import { persistSession } from '../store/persist.js';
import { isDataRefusal } from '../store/pgSafe.js';
import { commitSessionLines, discardSessionTails } from '../store/sessions.js';
import { saveSessionFolder, type FolderState } from './sessionFolder.js';
import { commitSubagentTranscripts, persistSubagentTranscripts } from './subagentTranscripts.js';

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

  constructor(private readonly o: RunFilesOptions) {}

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
    const { o } = this;
    if (this.refusal?.sessionId === current.sessionId) return;
    try {
      await persistSession(tx, {
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
    } catch (err) {
      if (isSessionRefusal(err)) throw new SessionFileRefused(current.sessionId, safeErrorMessage(err));
      throw err;
    }
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

  /**
   * In the commit transaction: commits every stored line of the session and of this
   * attempt's subagent transcripts, and returns the session id the conversation now
   * points at. A refused session is not committed: its uncommitted lines are dropped and
   * undefined is returned (the conversation keeps its session).
   */
  async commit(tx: StoreTx, current: SessionOnDisk): Promise<string | undefined> {
    if (this.refusal?.sessionId === current.sessionId) {
      await discardSessionTails(tx, this.o.conversationId, current.sessionId);
      return undefined;
    }
    await commitSessionLines(tx, { conversationId: this.o.conversationId, sessionId: current.sessionId, attempt: this.o.attempt, pointConversation: false });
    const ofThisSession = [...this.subagentFileIds].filter((id) => subpathOf(current.sessionId, id) !== undefined);
    await commitSubagentTranscripts(tx, this.o.conversationId, ofThisSession, this.o.attempt);
    return current.sessionId;
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
