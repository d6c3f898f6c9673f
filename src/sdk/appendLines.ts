// Appends complete lines to a stored session through the store's own chunk statement
// (src/store/persist.ts#appendChunk): the same "no gap, no duplicate" rule, the same tail
// digest chain the worker's persist checks, the same codec. The lines are cut into chunks
// and their compression started before the head they go after is known (LineBatch), so
// zlib runs on the thread pool while the batch is serialized and the append's first
// round trips are made.
import { createHash } from 'node:crypto';
import { SessionCorruptError } from '../errors.js';
import { encodeChunk } from '../store/chunks.js';
import type { ChunkCodec } from '../store/schema.js';
import type { Executor } from '../store/db.js';
import { appendChunk, rollTail, TAIL_DIGEST_BYTES } from '../store/persist.js';
import type { SessionHead } from '../store/sessions.js';
import type { SerializedEntry } from './entries.js';
import { readTailBytes } from './storedChunks.js';

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

/**
 * The codec of the adapter's chunks: brotli quality 1, followed by its CRC-32
 * (src/store/chunks.ts). It compresses 1.3-2× faster than the worker's gzip at level 1 and
 * stores ~8% fewer bytes; an append of 500 entries compresses ~850 KiB, so this is most of
 * what the thread pool does for it. With gzip, `sdk_append_entries_per_s` was 1.71-1.77×
 * the baseline's, with brotli 1.89-2.01× in six runs (2026-12-07, with the single UTF-8 pass below).
 * Loads were not slower (docs/sdk-interop.md).
 */
export const SDK_CODEC: ChunkCodec = 'br';

/** A chunk of a batch's lines, being encoded (SDK_CODEC). */
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

/** The buffer a batch starts with (it grows up to a chunk). */
const FIRST_BUFFER_BYTES = 16 * 1024;

/**
 * Collects a batch's lines into chunks, starting each chunk's encoding as soon as it is
 * full. Each line is encoded to UTF-8 once, straight into its chunk's buffer: measuring it
 * first (Buffer.byteLength) cost 0.9-1.8 ms more for 500 entries of ~850 KiB. An
 * encode that is never awaited (the batch was dropped, say on bad input further on) is not
 * reported as unhandled; one that is awaited rejects as usual.
 */
export class LineBatch {
  private readonly chunks: PreparedChunk[] = [];
  private buf: Buffer;
  private used = 0;
  private lines = 0;

  /**
   * A line over `maxLineBytes` is measured and not stored when it would need a buffer of
   * its own (its batch is refused anyway, ./entries.ts): a huge entry costs no copy.
   */
  constructor(
    private readonly chunkBytes = SDK_CHUNK_BYTES,
    private readonly maxLineBytes = Number.POSITIVE_INFINITY,
  ) {
    // A small append (one entry, say) needs no chunk-sized buffer: it grows up to one.
    this.buf = Buffer.allocUnsafe(Math.min(chunkBytes, FIRST_BUFFER_BYTES));
  }

  /** Adds a line (without its newline); returns its size in UTF-8 bytes with the newline. */
  add(line: string): number {
    // UTF-8 takes at most 3 bytes per UTF-16 code unit: when that much is free, write at
    // once. The buffer is at most the chunk's size, so a line written this way fits the chunk.
    const most = line.length * 3 + 1;
    if (most > this.buf.length - this.used && this.buf.length < this.chunkBytes) {
      this.grow(Math.min(this.chunkBytes, Math.max(2 * this.buf.length, this.used + most)));
    }
    if (most <= this.buf.length - this.used) return this.write(line);
    const bytes = Buffer.byteLength(line) + 1;
    if (bytes > this.maxLineBytes) return bytes;
    if (this.lines > 0 && this.used + bytes > this.chunkBytes) this.cut();
    // A line longer than a chunk gets a chunk of its own.
    if (bytes > this.buf.length - this.used) this.buf = Buffer.allocUnsafe(bytes);
    return this.write(line);
  }

  finish(): PreparedLines {
    if (this.lines > 0) this.cut();
    return { chunks: this.chunks };
  }

  private grow(size: number): void {
    const bigger = Buffer.allocUnsafe(size);
    this.buf.copy(bigger, 0, 0, this.used);
    this.buf = bigger;
  }

  private write(line: string): number {
    const bytes = this.buf.write(line, this.used, 'utf8') + 1;
    this.buf[this.used + bytes - 1] = 0x0a;
    this.used += bytes;
    this.lines++;
    return bytes;
  }

  private cut(): void {
    const raw = this.buf.subarray(0, this.used);
    const data = encodeChunk(raw, SDK_CODEC);
    data.catch(() => undefined);
    this.chunks.push({ lineCount: this.lines, raw, data });
    this.buf = Buffer.allocUnsafe(this.chunkBytes);
    this.used = 0;
    this.lines = 0;
  }
}

/** The entries' lines (serialized without a sink, so they are kept), chunked and being encoded. */
export function prepareLines(entries: readonly SerializedEntry[]): PreparedLines {
  const batch = new LineBatch();
  for (const e of entries) {
    if (e.line === undefined) throw new Error('prepareLines: an entry serialized into a sink has no line');
    batch.add(e.line);
  }
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
    await appendChunk(tx, conversationId, fileId, attempt, SDK_CODEC, { chunk, data: await data, tailSha256: sha256(tail) });
    lineCount += n;
    byteCount += raw.length;
  }
  return { lineCount, byteCount, tail: Buffer.from(tail) };
}
