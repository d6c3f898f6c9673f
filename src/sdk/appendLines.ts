// Appends complete lines to a stored session through the store's own chunk statement
// (src/store/persist.ts#appendChunk): the same "no gap, no duplicate" rule, the same tail
// digest chain the worker's persist checks, the same codec.
import { createHash } from 'node:crypto';
import { SessionCorruptError } from '../errors.js';
import { DEFAULT_CODEC, encodeChunk, LineChunker } from '../store/chunks.js';
import type { Executor } from '../store/db.js';
import { appendChunk, TAIL_DIGEST_BYTES } from '../store/persist.js';
import type { SessionHead } from '../store/sessions.js';
import { readTailBytes } from './storedChunks.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

export interface AppendLinesResult {
  lineCount: number;
  byteCount: number;
}

/**
 * Appends `raw` (complete lines, each ending in a newline) after the locked `head`, tagged
 * with `attempt`. The caller holds the head's row lock (lockOrCreateSessionHead).
 */
export async function appendLines(tx: Executor, head: SessionHead, raw: Buffer, attempt: string, maxLineBytes: number): Promise<AppendLinesResult> {
  const { conversationId, sessionId: fileId } = head;
  let tail: Buffer = Buffer.alloc(0);
  if (head.byteCount > 0) {
    tail = await readTailBytes(tx, conversationId, fileId, head.byteCount, TAIL_DIGEST_BYTES);
    if (sha256(tail) !== head.tailSha256) throw new SessionCorruptError(fileId, `its stored bytes before offset ${head.byteCount} do not match the head's digest`);
  }
  const chunker = new LineChunker({ sessionId: fileId, firstLine: head.lineCount, byteOffset: head.byteCount, maxLineBytes });
  const chunks = [...chunker.push(raw), ...chunker.finish()];
  let { lineCount, byteCount } = head;
  for (const chunk of chunks) {
    tail = Buffer.concat([tail, chunk.raw.subarray(Math.max(0, chunk.raw.length - TAIL_DIGEST_BYTES))]);
    tail = tail.subarray(Math.max(0, tail.length - TAIL_DIGEST_BYTES));
    const data = await encodeChunk(chunk.raw, DEFAULT_CODEC);
    await appendChunk(tx, conversationId, fileId, attempt, DEFAULT_CODEC, { chunk, data, tailSha256: sha256(tail) });
    lineCount += chunk.lineCount;
    byteCount += chunk.raw.length;
  }
  return { lineCount, byteCount };
}
