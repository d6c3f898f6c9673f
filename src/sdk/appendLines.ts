// Appends complete lines to a stored session through the store's own chunk statement
// (src/store/persist.ts#appendChunk): the same "no gap, no duplicate" rule, the same tail
// digest chain the worker's persist checks, the same codec. The lines are cut into chunks
// and their compression started before the head they go after is known (LineBatch), so
// zlib runs on the thread pool while the batch is serialized and the append's first
// round trips are made.
import { createHash } from 'node:crypto';
import { SessionCorruptError } from '../errors.js';
import { DEFAULT_CODEC, encodeChunk } from '../store/chunks.js';
import type { Executor } from '../store/db.js';
import { appendChunk, rollTail, TAIL_DIGEST_BYTES } from '../store/persist.js';
import type { SessionHead } from '../store/sessions.js';
import { joinLines, type SerializedEntry } from './entries.js';
import { readTailBytes } from './storedChunks.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/** A chunk of a batch's lines, being encoded (DEFAULT_CODEC). */
export interface PreparedChunk {
  lineCount: number;
  raw: Buffer;
  data: Promise<Buffer>;
}

/** A batch of lines cut into chunks, each being encoded, before the head they go after is known. */
export interface PreparedLines {
  chunks: PreparedChunk[];
}

/**
 * How many bytes of lines the adapter puts in one chunk. Smaller than the worker's
 * (DEFAULT_CHUNK_BYTES), so that a batch's first chunks are compressed on the thread pool
 * while its later entries are still being serialized, and a load inflates several at once.
 */
export const SDK_CHUNK_BYTES = 256 * 1024;

/**
 * Collects a batch's serialized entries into chunks, starting each chunk's encoding as soon
 * as it is full. An encode that is never awaited (the batch was dropped, say on bad input
 * further on) is not reported as unhandled; one that is awaited rejects as usual.
 */
export class LineBatch {
  private readonly chunks: PreparedChunk[] = [];
  private pending: SerializedEntry[] = [];
  private pendingBytes = 0;

  constructor(private readonly chunkBytes = SDK_CHUNK_BYTES) {}

  add(entry: SerializedEntry): void {
    if (this.pending.length > 0 && this.pendingBytes + entry.bytes > this.chunkBytes) this.cut();
    this.pending.push(entry);
    this.pendingBytes += entry.bytes;
  }

  finish(): PreparedLines {
    if (this.pending.length > 0) this.cut();
    return { chunks: this.chunks };
  }

  private cut(): void {
    const raw = joinLines(this.pending);
    const data = encodeChunk(raw, DEFAULT_CODEC);
    data.catch(() => undefined);
    this.chunks.push({ lineCount: this.pending.length, raw, data });
    this.pending = [];
    this.pendingBytes = 0;
  }
}

/** The entries' lines, chunked and being encoded. */
export function prepareLines(entries: readonly SerializedEntry[]): PreparedLines {
  const batch = new LineBatch();
  for (const e of entries) batch.add(e);
  return batch.finish();
}

export interface AppendLinesResult {
  lineCount: number;
  byteCount: number;
  /** The last TAIL_DIGEST_BYTES stored bytes after the append (the new head's digest covers them). */
  tail: Buffer;
}

/**
 * Appends the prepared lines after the locked `head`, tagged with `attempt`. The caller
 * holds the head's row lock (lockOrCreateSessionHead). The stored bytes before the head
 * must match its digest: `knownTail`, when given and it matches, stands for them (bytes
 * this process stored there itself); otherwise they are read from the store.
 */
export async function appendLines(tx: Executor, head: SessionHead, lines: PreparedLines, attempt: string, knownTail?: Buffer): Promise<AppendLinesResult> {
  const { conversationId, sessionId: fileId } = head;
  let tail: Buffer = Buffer.alloc(0);
  if (head.byteCount > 0) {
    const expected = Math.min(TAIL_DIGEST_BYTES, head.byteCount);
    const known = knownTail !== undefined && knownTail.length === expected && sha256(knownTail) === head.tailSha256 ? knownTail : undefined;
    tail = known ?? (await readTailBytes(tx, conversationId, fileId, head.byteCount, TAIL_DIGEST_BYTES));
    if (known === undefined && sha256(tail) !== head.tailSha256) {
      throw new SessionCorruptError(fileId, `its stored bytes before offset ${head.byteCount} do not match the head's digest`);
    }
  }
  let { lineCount, byteCount } = head;
  for (const { lineCount: n, raw, data } of lines.chunks) {
    tail = rollTail(tail, raw);
    const chunk = { firstLine: lineCount, lineCount: n, byteOffset: byteCount, raw };
    await appendChunk(tx, conversationId, fileId, attempt, DEFAULT_CODEC, { chunk, data: await data, tailSha256: sha256(tail) });
    lineCount += n;
    byteCount += raw.length;
  }
  return { lineCount, byteCount, tail: Buffer.from(tail) };
}
