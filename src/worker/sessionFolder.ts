// The rest of a session's folder (src/claude/sessionPath.ts#sessionFolderPath) without its
// subagent transcripts: files the CLI names by absolute path in the transcript, such as a
// large tool output's full text. Stored with the checkpoints and the commit when it
// changed (a cheap listing of names, sizes and mtimes decides before anything is packed),
// restored before the next run. Inside the sandbox the config directory is at a fixed
// path, so the paths in the transcript are valid again on any worker.
import { createHash } from 'node:crypto';
import { lstat, readdir } from 'node:fs/promises';
import path from 'node:path';
import { sessionFolderPath } from '../claude/sessionPath.js';
import { WorkspaceTooLargeError } from '../errors.js';
import type { StoreTx } from '../store/db.js';
import { storeSessionFolder } from '../store/sessionFolders.js';
import { packWorkspace } from '../store/workspaceArchive.js';

/** Left out of the archive: stored line by line as transcripts (./subagentTranscripts.ts). */
const SUBAGENTS = 'subagents';

/** What was stored last, as far as this attempt knows (updated only after a commit). */
export interface FolderState {
  signature: string | undefined;
  sha256: string | null;
}

/** A digest of the folder's listing (names, sizes, mtimes); undefined when there is no folder. */
async function folderSignature(dir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(dir, { recursive: true });
  } catch {
    return undefined;
  }
  const hash = createHash('sha256');
  for (const name of names.sort()) {
    if (name.split(path.sep).includes(SUBAGENTS)) continue;
    try {
      const st = await lstat(path.join(dir, name));
      hash.update(`${name}\0${st.size}\0${st.mtimeMs}\n`);
    } catch {
      // Gone meanwhile.
    }
  }
  return hash.digest('hex');
}

export interface SaveFolderInput {
  conversationId: string;
  sessionId: string;
  sessionFile: string;
  maxBytes: number;
  state: FolderState;
  /** Runs `f` once the caller's transaction committed (state changes wait for it). */
  afterCommit: (f: () => void) => void;
}

/** Stores the folder if it changed; `notSaved` says why it could not be (too large). */
export async function saveSessionFolder(tx: StoreTx, input: SaveFolderInput): Promise<{ notSaved?: string }> {
  const dir = sessionFolderPath(input.sessionFile, input.sessionId);
  const signature = await folderSignature(dir);
  if (signature === undefined || signature === input.state.signature) return {};
  const settle = (sha256: string | null) =>
    input.afterCommit(() => {
      input.state.signature = signature;
      input.state.sha256 = sha256;
    });
  let packed;
  try {
    packed = await packWorkspace(dir, { maxBytes: input.maxBytes, exclude: [SUBAGENTS] });
  } catch (err) {
    if (!(err instanceof WorkspaceTooLargeError)) throw err;
    settle(input.state.sha256);
    return { notSaved: err.message };
  }
  if (packed.fileCount > 0 && packed.sha256 !== input.state.sha256) {
    await storeSessionFolder(tx, input.conversationId, input.sessionId, packed);
  }
  settle(packed.fileCount > 0 ? packed.sha256 : input.state.sha256);
  return {};
}
