// Waiting for a kept CLI's session write. In stream-json input mode the real CLI writes a
// turn's session lines shortly after it prints the turn's result (a write buffer; see
// docs/warm-conversations.md), so a warm turn's commit first waits until the line of the
// last message the CLI printed is in the file: stdout and session lines share its `uuid`.
// The agent can write the file: it is opened only through src/agentFiles/agentTree.ts, and
// read a block at a time.
import { openAgentFile, type AgentPath } from '../agentFiles/agentTree.js';

/** How long a kept CLI may take to write a turn's session lines after its result. */
export const SESSION_FLUSH_TIMEOUT_MS = 5000;
const BLOCK_BYTES = 1024 * 1024;

/** The file's size now; 0 when it does not exist (yet) or is not a regular file. */
export async function fileSize(file: AgentPath | undefined): Promise<number> {
  if (!file) return 0;
  try {
    const fh = await openAgentFile(file, Number.MAX_SAFE_INTEGER);
    if (!fh) return 0;
    fh.close();
    return fh.size;
  } catch {
    return 0;
  }
}

/** True when the bytes of the file between `offset` and its end hold `needle`; reads one block at a time. */
async function appendedHolds(file: AgentPath, offset: number, needle: Buffer, maxBytes: number): Promise<boolean> {
  const fh = await openAgentFile(file, maxBytes);
  if (!fh) return false;
  try {
    const { size } = fh;
    // Blocks overlap by the needle's length, so a match across a boundary is found.
    for (let pos = offset; pos < size; pos += BLOCK_BYTES) {
      const start = Math.max(offset, pos - needle.length);
      const block = await fh.read(start, Math.min(size, pos + BLOCK_BYTES) - start);
      if (block.includes(needle)) return true;
    }
    return false;
  } finally {
    fh.close();
  }
}

/**
 * Resolves true once the bytes appended to `file()` after `offset` hold the session line
 * of message `uuid` (at once when there is no uuid to wait for); false after `timeoutMs`
 * or when `signal` fires. `file` is asked again each time: the CLI may report its session
 * (and so its file) late. Reads only what was appended, up to `maxBytes` of file.
 */
export async function waitForSessionLine(
  file: () => AgentPath | undefined,
  offset: number,
  uuid: string | undefined,
  signal: AbortSignal,
  timeoutMs = SESSION_FLUSH_TIMEOUT_MS,
  maxBytes = Number.MAX_SAFE_INTEGER,
): Promise<boolean> {
  if (!uuid) return true;
  const needle = Buffer.from(`"uuid":"${uuid}"`);
  const deadline = performance.now() + timeoutMs;
  let delay = 2;
  while (!signal.aborted) {
    const p = file();
    if (p) {
      try {
        if (await appendedHolds(p, offset, needle, maxBytes)) return true;
      } catch {
        // Not there yet, or refused: the commit's own read says which.
      }
    }
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(20, delay * 2);
  }
  return false;
}
