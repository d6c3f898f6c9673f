// The rest of a session's folder (src/claude/sessionPath.ts#sessionFolderPath) without its
// subagent transcripts: files the CLI names by absolute path in the transcript, such as a
// large tool output's full text. Stored with the checkpoints and the commit when it
// changed (a cheap listing of names, sizes and mtimes decides before anything is packed),
// restored before the next run. Inside the sandbox the config directory is at a fixed
// path, so the paths in the transcript are valid again on any worker. The agent can write
// the folder: it is walked and packed only through src/agentFiles/agentTree.ts.
import { createHash } from 'node:crypto';
import { walkAgentTree } from '../agentFiles/agentTree.js';
import { sessionFolderPath } from '../claude/sessionPath.js';
import { AgentFileRefusedError, WorkspaceTooLargeError } from '../errors.js';
import type { StoreTx } from '../store/db.js';
import { storeSessionFolder } from '../store/sessionFolders.js';
import { excludeMatcher, packTree } from '../store/workspaceArchive.js';

/** Left out of the archive: stored line by line as transcripts (./subagentTranscripts.ts). */
export const SUBAGENTS_DIR = 'subagents';

/** What was stored last, as far as this attempt knows (updated only after a commit). */
export interface FolderState {
  signature: string | undefined;
  sha256: string | null;
}

export interface SaveFolderInput {
  conversationId: string;
  sessionId: string;
  /** The run's config dir: the agent can write beneath it, so nothing there is read through a link. */
  configDir: string;
  /** The session file's path beneath `configDir` (posix). */
  sessionRel: string;
  /** AGENTQ_WORKSPACE_MAX_BYTES */
  maxBytes: number;
  /** AGENTQ_WORKSPACE_MAX_ENTRIES */
  maxEntries: number;
  state: FolderState;
  /** Runs `f` once the caller's transaction committed (state changes wait for it). */
  afterCommit: (f: () => void) => void;
}

/** A digest of the folder's listing (names, kinds, sizes, mtimes); undefined when there is no folder. */
async function folderSignature(input: SaveFolderInput, rel: string): Promise<string | undefined> {
  const hash = createHash('sha256');
  let any = false;
  for await (const e of walkAgentTree({ root: input.configDir, rel }, { maxEntries: input.maxEntries, maxBytes: input.maxBytes }, excludeMatcher([SUBAGENTS_DIR]))) {
    any = true;
    hash.update(`${e.path}\0${e.kind}\0${e.size}\0${e.mtimeMs}\n`);
  }
  return any ? hash.digest('hex') : undefined;
}

/** Stores the folder if it changed; `notSaved` says why it could not be (too large, a link where the folder is). */
export async function saveSessionFolder(tx: StoreTx, input: SaveFolderInput): Promise<{ notSaved?: string }> {
  const rel = sessionFolderPath(input.sessionRel, input.sessionId);
  let signature: string | undefined;
  let packed;
  try {
    signature = await folderSignature(input, rel);
    if (signature === undefined || signature === input.state.signature) return {};
    packed = await packTree({ root: input.configDir, rel }, { maxBytes: input.maxBytes, maxEntries: input.maxEntries, exclude: [SUBAGENTS_DIR] });
  } catch (err) {
    if (!(err instanceof WorkspaceTooLargeError || err instanceof AgentFileRefusedError)) throw err;
    if (signature !== undefined) {
      const unchanged = signature;
      input.afterCommit(() => (input.state.signature = unchanged));
    }
    return { notSaved: err.message };
  }
  const settle = (sha256: string | null) =>
    input.afterCommit(() => {
      input.state.signature = signature;
      input.state.sha256 = sha256;
    });
  if (packed.fileCount > 0 && packed.sha256 !== input.state.sha256) {
    await storeSessionFolder(tx, input.conversationId, input.sessionId, packed);
  }
  settle(packed.fileCount > 0 ? packed.sha256 : input.state.sha256);
  return {};
}
