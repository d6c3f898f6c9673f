// Waiting for a kept CLI's session write. In stream-json input mode the real CLI writes a
// turn's session lines shortly after it prints the turn's result (a write buffer; see
// README "Warm conversations"), so a warm turn's commit first waits until the line of the
// last message the CLI printed is in the file: stdout and session lines share its `uuid`.
import { open } from 'node:fs/promises';

/** How long a kept CLI may take to write a turn's session lines after its result. */
export const SESSION_FLUSH_TIMEOUT_MS = 5000;

/** The file's size now; 0 when it does not exist (yet). */
export async function fileSize(file: string | undefined): Promise<number> {
  if (!file) return 0;
  try {
    const fh = await open(file, 'r');
    try {
      return (await fh.stat()).size;
    } finally {
      await fh.close();
    }
  } catch {
    return 0;
  }
}

/**
 * Resolves true once the bytes appended to `file()` after `offset` hold the session line
 * of message `uuid` (at once when there is no uuid to wait for); false after `timeoutMs`
 * or when `signal` fires. `file` is asked again each time: the CLI may report its session
 * (and so its file) late. Reads only what was appended.
 */
export async function waitForSessionLine(
  file: () => string | undefined,
  offset: number,
  uuid: string | undefined,
  signal: AbortSignal,
  timeoutMs = SESSION_FLUSH_TIMEOUT_MS,
): Promise<boolean> {
  if (!uuid) return true;
  const needle = `"uuid":"${uuid}"`;
  const deadline = performance.now() + timeoutMs;
  let delay = 2;
  while (!signal.aborted) {
    const path = file();
    if (path) {
      try {
        const fh = await open(path, 'r');
        try {
          const { size } = await fh.stat();
          if (size > offset) {
            const buf = Buffer.alloc(size - offset);
            await fh.read(buf, 0, buf.length, offset);
            if (buf.includes(needle)) return true;
          }
        } finally {
          await fh.close();
        }
      } catch {
        // Not there yet.
      }
    }
    if (performance.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, delay));
    delay = Math.min(20, delay * 2);
  }
  return false;
}
