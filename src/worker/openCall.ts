// Before a turn that waited for a person resumes with no prompt: does the session the
// worker hydrated still end at the call the turn stopped at? The CLI, resumed that way,
// answers its open call first; a session without one (the CLI reported a deferral but its
// line never reached the file, e.g. a full disk) leaves a locked run waiting for input
// until its idle timeout (docs/approvals.md). The worker reads only the session's tail:
// the deferred call is the last thing the CLI wrote before it stopped.
import { openAgentFile, type AgentPath } from '../agentFiles/agentTree.js';
import { AgentFileRefusedError } from '../errors.js';

/** The event stored when the session does not hold the call (`{"type":"agentq","subtype":"deferred_call_missing"}`). */
export const DEFERRED_CALL_MISSING = 'deferred_call_missing';

/** One line of the session, as far as this check reads it. */
interface SessionLine {
  type?: unknown;
  message?: { content?: unknown };
}

/**
 * True when `tail` (the end of a session file, JSON lines) holds an assistant `tool_use`
 * block with `toolUseId` and no later `tool_result` for it. Only lines that contain the id
 * are parsed; a line cut off at the tail's start does not parse and is skipped.
 */
export function holdsOpenCall(tail: Buffer, toolUseId: string): boolean {
  const needle = Buffer.from(JSON.stringify(toolUseId));
  let open = false;
  let from = 0;
  for (let at = tail.indexOf(needle, from); at !== -1; at = tail.indexOf(needle, from)) {
    const start = tail.lastIndexOf(0x0a, at) + 1;
    const newline = tail.indexOf(0x0a, at);
    const end = newline === -1 ? tail.length : newline;
    from = end + 1;
    let line: SessionLine;
    try {
      line = JSON.parse(tail.toString('utf8', start, end)) as SessionLine;
    } catch {
      continue;
    }
    const blocks = Array.isArray(line.message?.content) ? (line.message.content as Record<string, unknown>[]) : [];
    for (const b of blocks) {
      if (typeof b !== 'object' || b === null) continue;
      if (line.type === 'assistant' && b.type === 'tool_use' && b.id === toolUseId) open = true;
      if (line.type === 'user' && b.type === 'tool_result' && b.tool_use_id === toolUseId) open = false;
    }
  }
  return open;
}

/**
 * Whether the session file at `file` holds the call `toolUseId` unanswered, reading at most
 * its last `tailBytes`. A file that is missing, or refused as the agent's (not a regular
 * file), holds none.
 */
export async function sessionHoldsOpenCall(file: AgentPath, toolUseId: string, tailBytes: number): Promise<boolean> {
  let f;
  try {
    f = await openAgentFile(file, Number.MAX_SAFE_INTEGER);
  } catch (err) {
    if (err instanceof AgentFileRefusedError) return false;
    throw err;
  }
  if (!f) return false;
  try {
    const length = Math.min(f.size, tailBytes);
    return holdsOpenCall(await f.read(f.size - length, length), toolUseId);
  } finally {
    f.close();
  }
}
