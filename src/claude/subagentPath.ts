// Where the CLI keeps a session's subagent transcripts, as measured with 2.1.197: next to
// the session file `<project>/<sessionId>.jsonl`, a folder `<project>/<sessionId>/` whose
// `subagents/` holds `agent-<agentId>.jsonl` (and a small `agent-<agentId>.meta.json`).
// A later turn that continues such an agent (the SendMessage tool) reads its transcript
// from there: without it the CLI answers "No transcript found for agent ID".
//
// In the store a subagent transcript is the session `<sessionId>/<subpath>` of the same
// conversation, `subpath` being its path under the session folder without `.jsonl`
// (`subagents/agent-a1b2`): the key the Agent SDK's SessionStore uses for the same file.
import path from 'node:path';
import { walkAgentTree, type WalkLimits } from '../agentFiles/agentTree.js';
import { sessionFolderPath } from './sessionPath.js';

/** One path segment that is safe on disk: no separators, no leading dot (so never `.` or `..`). */
const SAFE_SEGMENT = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const TRANSCRIPT_SUFFIX = '.jsonl';

export interface SubagentTranscript {
  /** e.g. `subagents/agent-a1b2` */
  subpath: string;
  /** The file, beneath the config dir the session file is in (posix). */
  rel: string;
}

/** The stored session id of a subagent transcript. */
export function subagentFileId(sessionId: string, subpath: string): string {
  return `${sessionId}/${subpath}`;
}

/** `<sessionId>/` + what follows, when `fileId` names a subagent transcript of `sessionId`. */
export function subpathOf(sessionId: string, fileId: string): string | undefined {
  const prefix = `${sessionId}/`;
  return fileId.startsWith(prefix) ? fileId.slice(prefix.length) : undefined;
}

/**
 * Where a subagent transcript goes on disk for the CLI, next to `sessionFile`; undefined
 * when `subpath` is not a relative path of safe segments (a key an SDK app chose, say),
 * which is then never written.
 */
export function subagentTranscriptPath(sessionFile: string, sessionId: string, subpath: string): string | undefined {
  const segments = subpath.split('/');
  if (!segments.every((s) => SAFE_SEGMENT.test(s))) return undefined;
  return path.posix.join(sessionFolderPath(sessionFile, sessionId), ...segments) + TRANSCRIPT_SUFFIX;
}

/** The sidecar the CLI keeps next to a subagent transcript (`agent-<id>.meta.json`). */
export function subagentMetaPath(transcriptFile: string): string {
  return transcriptFile.slice(0, -TRANSCRIPT_SUFFIX.length) + '.meta.json';
}

/**
 * The subagent transcripts the CLI wrote for `sessionId` (none when it ran no subagent).
 * `sessionRel` is the session file's path beneath `configDir`, which the agent can write:
 * the folder is walked without following links, within `limits` (AgentFileRefusedError past them).
 */
export async function listSubagentTranscripts(configDir: string, sessionRel: string, sessionId: string, limits: WalkLimits): Promise<SubagentTranscript[]> {
  const dir = path.posix.join(sessionFolderPath(sessionRel, sessionId), 'subagents');
  const found: SubagentTranscript[] = [];
  for await (const e of walkAgentTree({ root: configDir, rel: dir }, limits)) {
    // Only regular files: a link or FIFO named like a transcript is not one.
    if (e.kind !== 'file' || !e.path.endsWith(TRANSCRIPT_SUFFIX)) continue;
    const subpath = `subagents/${e.path.slice(0, -TRANSCRIPT_SUFFIX.length)}`;
    // A name the store could not hand back to the CLI is not stored either.
    if (subagentTranscriptPath(sessionRel, sessionId, subpath) === undefined) continue;
    found.push({ subpath, rel: `${dir}/${e.path}` });
  }
  return found;
}
