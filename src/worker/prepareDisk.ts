// What a cold attempt puts on the worker's disk before the CLI runs: the conversation's
// workspace, and its session with the session's folder and subagent transcripts. Both
// come from this worker's local cache when that is exactly what is stored, else from
// Postgres.
import { existsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { sessionFilePath, sessionFolderPath } from '../claude/sessionPath.js';
import type { StoreDb } from '../store/db.js';
import { hydrateSession } from '../store/hydrate.js';
import { restoreSessionFolder } from '../store/sessionFolders.js';
import { getSessionHeads, type SessionHead } from '../store/sessions.js';
import type { ClaimedSessionHeads } from '../store/turns.js';
import type { PackOptions } from '../store/workspaceArchive.js';
import { getWorkspaceSha, restoreWorkspace } from '../store/workspaces.js';
import type { LocalCache } from './localCache.js';
import { hydrateSubagents } from './subagentTranscripts.js';
import { SUBAGENTS_DIR } from './sessionFolder.js';

/** Where an attempt works, and what it reads from. */
export interface AttemptDisk {
  db: StoreDb;
  cache: LocalCache;
  /** conversations.id */
  conversationId: string;
  /** The conversation's workspace (the CLI's cwd on the host). */
  cwd: string;
  /** Its directory name under the workspace root (the local cache's key). */
  dirName: string;
  /** The attempt's CLAUDE_CONFIG_DIR on the host. */
  configDir: string;
  /** The cwd as the CLI sees it when not `cwd` (the sandbox's mount point). */
  cliCwd: string | undefined;
  log: Logger;
}

/** The workspace as prepared: the stored archive's digest (null: none stored), and the tree's stamp when the local mark noted it. */
export interface PreparedWorkspace {
  sha: string | null;
  stamp: string | undefined;
}

/**
 * The conversation's stable directory, emptied and filled from the stored archive,
 * unless this worker committed exactly the stored archive from it and nothing ran there
 * since (then it is left as it is, excluded paths such as node_modules included).
 * `storedSha`: the stored digest when the caller read it under the lease already (the
 * claim does).
 */
export async function prepareWorkspace(d: AttemptDisk, storedSha?: string | null): Promise<PreparedWorkspace> {
  let current: { stamp: string | undefined } | undefined;
  let sha: string | null = null;
  if (existsSync(d.cwd)) {
    sha = storedSha !== undefined ? storedSha : ((await getWorkspaceSha(d.db, d.conversationId)) ?? null);
    current = await d.cache.workspaceIsCurrent(d.dirName, sha ?? undefined);
  }
  // From here on the run may change the directory.
  await d.cache.unmarkWorkspace(d.dirName);
  if (current) return { sha, stamp: current.stamp };
  await rm(d.cwd, { recursive: true, force: true });
  await mkdir(d.cwd, { recursive: true });
  return { sha: (await restoreWorkspace(d.db, d.conversationId, d.cwd)).sha256, stamp: undefined };
}

/** How the conversation's workspace is packed (and stamped) under `config`. */
export function workspacePackOptions(config: Config): PackOptions {
  const { store } = config;
  return { maxBytes: store.workspaceMaxBytes, maxEntries: store.workspaceMaxEntries, exclude: store.workspaceExclude };
}

export interface HydratedSession {
  /** Lines of an interrupted attempt written after the committed ones. */
  uncommittedLines: number;
  /** The digest of the session folder restored (null: none stored). */
  folderSha256: string | null;
  /** The stored head the file was written from: the file is exactly its lines. */
  head: SessionHead;
}

/**
 * Writes the stored session `sessionId` where the CLI reads it, with its folder and its
 * subagent transcripts; undefined when nothing is stored under it. `discard`, when set
 * (a retry that starts over), is called first with the stored ids that hold uncommitted
 * lines, to drop them. `known`: the heads as the claim read them under the lease (used when
 * they are of `sessionId`), instead of reading them again.
 */
export async function hydrateConversationSession(
  d: AttemptDisk,
  sessionId: string,
  discard: ((fileIds: string[]) => Promise<void>) | undefined,
  known?: ClaimedSessionHeads,
): Promise<HydratedSession | undefined> {
  const { db, conversationId } = d;
  let { head, subagents, folderSha256 } = known?.sessionId === sessionId ? known : await getSessionHeads(db, conversationId, sessionId);
  if (!head) return undefined;
  const dirty = [head, ...subagents].filter((h) => h.lineCount > h.committedLineCount);
  if (dirty.length > 0 && discard) {
    await discard(dirty.map((h) => h.sessionId));
    ({ head, subagents, folderSha256 } = await getSessionHeads(db, conversationId, sessionId));
    if (!head) return undefined;
  }
  if (head.lineCount === 0) return undefined;
  // The file this worker kept when it committed the previous turn, if it is still exactly the committed session.
  const target = sessionFilePath(d.configDir, d.cwd, sessionId, d.cliCwd);
  let uncommittedLines = 0;
  if (head.lineCount > head.committedLineCount || !(await d.cache.takeSession(conversationId, sessionId, head, target))) {
    const h = await hydrateSession(db, { conversationId, sessionId, cwd: d.cwd, cliCwd: d.cliCwd, configDir: d.configDir, includeUncommitted: true });
    uncommittedLines = h.uncommittedLines;
  }
  // The session's subagent transcripts (a later turn may continue one of those agents),
  // then the rest of its folder (files the transcript names by path). In that order: the
  // folder holds what the agent wrote, and nothing is written after it where it could lead.
  const skipped = await hydrateSubagents(db, { conversationId, sessionId, sessionFile: target, heads: subagents });
  if (skipped.length > 0) d.log.warn({ skipped }, 'stored subagent transcripts with names unsafe on disk were not written');
  let restoredFolder: string | null = null;
  if (folderSha256 !== null) {
    const r = await restoreSessionFolder(db, conversationId, sessionId, sessionFolderPath(target, sessionId), [SUBAGENTS_DIR]);
    if (r.refused.length > 0) d.log.warn({ refused: r.refused }, 'stored session folder entries that could escape it were not restored');
    restoredFolder = r.sha256;
  }
  return { uncommittedLines, folderSha256: restoredFolder, head };
}
