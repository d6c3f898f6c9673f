// Reading a stored session's chunks inside the caller's transaction, decoded and checked
// (each chunk continues the previous one, its decoded length is the recorded one, it ends
// in a newline). The worker hydrates through its own streaming reader
// (src/store/hydrate.ts); the adapter returns entries, not a file.
import { sql } from 'drizzle-orm';
import { SessionCorruptError } from '../errors.js';
import { decodeChunk } from '../store/chunks.js';
import type { Executor } from '../store/db.js';
import { chunkCodecs, type ChunkCodec } from '../store/schema.js';

/** Chunks fetched per query. */
const PAGE_CHUNKS = 16;
/** Chunks decoded ahead of the one the caller works on (each at most 1 MiB decoded). */
const DECODE_AHEAD = 4;

export interface StoredChunk {
  firstLine: number;
  lineCount: number;
  byteOffset: number;
  raw: Buffer;
}

interface ChunkRow extends Record<string, unknown> {
  first_line: string;
  line_count: number;
  byte_offset: string;
  byte_len: number;
  codec: string;
  data: Buffer;
}

async function decodeRow(fileId: string, row: ChunkRow): Promise<StoredChunk> {
  const codec = row.codec as ChunkCodec;
  if (!chunkCodecs.includes(codec)) throw new SessionCorruptError(fileId, `unknown codec ${row.codec}`);
  let raw: Buffer;
  try {
    raw = await decodeChunk(row.data, codec, row.byte_len);
  } catch (err) {
    throw new SessionCorruptError(fileId, `chunk at line ${row.first_line} does not decode`, { cause: err });
  }
  if (raw.length !== row.byte_len || raw[raw.length - 1] !== 0x0a) {
    throw new SessionCorruptError(fileId, `chunk at line ${row.first_line} has ${raw.length} bytes, ${row.byte_len} recorded, or no final newline`);
  }
  return { firstLine: Number(row.first_line), lineCount: row.line_count, byteOffset: Number(row.byte_offset), raw };
}

/** Settles with the result; a rejection is observed at once (it is thrown where the result is awaited). */
function observed<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

/**
 * The chunks holding lines [fromLine, toLine), in order; `fromLine` must be a chunk
 * boundary. Index: session_chunks_pk range. Chunks are decoded DECODE_AHEAD ahead (gzip on
 * the thread pool while the caller works on the current one), and the next page is asked
 * for as soon as a page arrives.
 */
export async function* readChunks(tx: Executor, conversationId: string, fileId: string, fromLine: number, toLine: number): AsyncGenerator<StoredChunk> {
  const page = (from: number) =>
    observed(
      tx.execute<ChunkRow>(sql`
      select first_line, line_count, byte_offset, byte_len, codec, data from session_chunks
       where conversation_id = ${conversationId}::uuid and session_id = ${fileId}
         and first_line >= ${from}::bigint and first_line < ${toLine}::bigint
       order by first_line limit ${PAGE_CHUNKS}`),
    );
  let line = fromLine;
  let offset: number | undefined;
  let next = line < toLine ? page(line) : undefined;
  while (next) {
    const r = await next;
    if (r.rows.length === 0) break;
    const last = r.rows[r.rows.length - 1]!;
    const after = Number(last.first_line) + last.line_count;
    next = r.rows.length === PAGE_CHUNKS && after < toLine ? page(after) : undefined;
    const decoded: Promise<StoredChunk>[] = [];
    const decode = (i: number) => {
      const row = r.rows[i];
      if (row) decoded[i] = observed(decodeRow(fileId, row));
    };
    for (let i = 0; i < DECODE_AHEAD; i++) decode(i);
    for (let i = 0; i < r.rows.length; i++) {
      const chunk = await decoded[i]!;
      decode(i + DECODE_AHEAD);
      if (chunk.firstLine !== line || (offset !== undefined && chunk.byteOffset !== offset)) {
        throw new SessionCorruptError(fileId, `chunk at line ${chunk.firstLine} follows line ${line}`);
      }
      line += chunk.lineCount;
      offset = chunk.byteOffset + chunk.raw.length;
      yield chunk;
    }
  }
  if (fromLine < toLine && line !== toLine) throw new SessionCorruptError(fileId, `chunks end at line ${line}, expected ${toLine}`);
}

/**
 * The last min(n, byteCount) stored bytes before `byteCount` (for the head's tail digest).
 * Index: session_chunks_pk range (the chunks of one session).
 */
export async function readTailBytes(tx: Executor, conversationId: string, fileId: string, byteCount: number, n: number): Promise<Buffer> {
  const from = Math.max(0, byteCount - n);
  const r = await tx.execute<ChunkRow>(sql`
    select first_line, line_count, byte_offset, byte_len, codec, data from session_chunks
     where conversation_id = ${conversationId}::uuid and session_id = ${fileId}
       and byte_offset + byte_len > ${from}::bigint and byte_offset < ${byteCount}::bigint
     order by first_line`);
  const parts: Buffer[] = [];
  for (const row of r.rows) parts.push((await decodeRow(fileId, row)).raw);
  const first = r.rows[0];
  const all = Buffer.concat(parts);
  const start = first === undefined ? 0 : from - Number(first.byte_offset);
  return all.subarray(start, start + (byteCount - from));
}
