// Persist: append the new complete lines of a local session file to Postgres.
//
// O(delta): the stored head says how many bytes are stored; the file is read from there
// to the end, and a digest of the last 4 KiB before the head checks that the file
// continues the stored bytes. Nothing before that is read or hashed again.
//
// The "no gap, no duplicate" invariant is held by the database: each chunk is inserted by
// one statement that first moves the session head by the chunk's size, on the condition
// that the head is exactly where the chunk starts; with no such head, nothing is inserted.
// The primary key (conversation_id, session_id, first_line) forbids two chunks at a line.
// Concurrent persists of one session queue on the head's row lock; the later one reads
// the head the earlier left and stores only what is still new, often nothing.
import { createHash } from 'node:crypto';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { openAgentFile } from '../agentFiles/agentTree.js';
import { SessionConflictError, SessionDivergedError } from '../errors.js';
import { DEFAULT_CHUNK_BYTES, DEFAULT_CODEC, encodeChunk, LineChunker, type PendingChunk } from './chunks.js';
import type { Executor } from './db.js';
import { parseSessionFileId, parseSessionId } from './ids.js';
import type { ChunkCodec } from './schema.js';
import { commitSessionLines, lockOrCreateSessionHead } from './sessions.js';

/** How many stored bytes before the head the tail digest covers. */
export const TAIL_DIGEST_BYTES = 4096;

/** The last TAIL_DIGEST_BYTES of the stream once `raw` follows `tail` (what the next head's digest covers). */
export function rollTail(tail: Buffer, raw: Buffer): Buffer {
  const joined = Buffer.concat([tail, raw.subarray(Math.max(0, raw.length - TAIL_DIGEST_BYTES))]);
  return joined.subarray(Math.max(0, joined.length - TAIL_DIGEST_BYTES));
}
const READ_BLOCK_BYTES = 1024 * 1024;
/** Chunks encoded ahead of the insert in flight (bounds memory, overlaps zlib with the round trip). */
const ENCODE_AHEAD = 4;

export interface PersistInput {
  /** conversations.id (uuid). */
  conversationId: string;
  /** The session id the CLI reported. */
  sessionId: string;
  /** The local session file (`sessionFilePath(configDir, cwd, sessionId)`). */
  filePath: string;
  /**
   * The directory above `filePath` whose contents the agent could have written (the run's
   * config dir): no link beneath it is followed (src/agentFiles/agentTree.ts). Default:
   * the file's own directory (the file itself is still never a link).
   */
  root?: string;
  /** AGENTQ_SESSION_MAX_BYTES: a larger file is refused (AgentFileRefusedError) unread. Default: no cap. */
  maxFileBytes?: number;
  /** The attempt writing these lines, as the worker names it (opaque; stored as text). */
  attempt: string | number;
  /** Also commit every stored line of the session, in the same transaction. */
  commit?: boolean;
  /** For a session first stored by this call: the session it was forked from. */
  forkedFrom?: string | null;
  /** AGENTQ_SESSION_MAX_LINE_BYTES. */
  maxLineBytes: number;
  /** Encoding of new chunks; default DEFAULT_CODEC. */
  codec?: ChunkCodec;
  /** Raw bytes per chunk; default 1 MiB. */
  chunkBytes?: number;
  /**
   * Default true: inside a caller's transaction the call runs in a savepoint, so an error
   * leaves the caller's other writes. False when the caller rolls back its whole
   * transaction on any error anyway (the worker): two statements fewer per call.
   */
  savepoint?: boolean;
}

export interface PersistResult {
  linesAdded: number;
  bytesAdded: number;
  chunksAdded: number;
  /** The stored head after the call. */
  lineCount: number;
  byteCount: number;
  /** The digest of the stored head's last bytes after the call (null: nothing stored). */
  tailSha256: string | null;
  /** Bytes of an incomplete last line left in the file for a later call. */
  partialBytes: number;
}

const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');

export interface Encoded {
  chunk: PendingChunk;
  data: Buffer;
  tailSha256: string;
}

/**
 * Appends the file's complete lines after the stored head, tagged with `attempt`, in one
 * transaction (a savepoint when `db` is a transaction). Idempotent: calling it again with
 * an unchanged file stores nothing. Errors store nothing of the call:
 * SessionLineTooLongError, SessionDivergedError (the file is shorter than what is stored,
 * or differs before the head), SessionConflictError. A caller's transaction must be READ
 * COMMITTED (the default): the head lock then reads the head a concurrent writer left.
 * A missing file with nothing stored yet is not an error (a checkpoint before the CLI
 * wrote anything); `forkedFrom` is recorded only when this call creates the session.
 */
export async function persistSession(db: Executor, input: PersistInput): Promise<PersistResult> {
  const sessionId = parseSessionFileId(input.sessionId);
  const forkedFrom = input.forkedFrom == null ? null : parseSessionId(input.forkedFrom, 'forkedFrom');
  const attempt = String(input.attempt);
  const codec = input.codec ?? DEFAULT_CODEC;
  const { conversationId } = input;

  const inTransaction = <T>(fn: (tx: Executor) => Promise<T>): Promise<T> => (input.savepoint === false ? fn(db) : db.transaction(fn));
  return inTransaction(async (tx) => {
    const head = await lockOrCreateSessionHead(tx, conversationId, sessionId, forkedFrom);
    const queue: Promise<Encoded>[] = [];
    let added = { lines: 0, bytes: 0, chunks: 0 };
    const insertNext = async () => {
      const e = await queue.shift()!;
      await appendChunk(tx, conversationId, sessionId, attempt, codec, e);
      added = { lines: added.lines + e.chunk.lineCount, bytes: added.bytes + e.chunk.raw.length, chunks: added.chunks + 1 };
    };
    const read = await readNewLines(input, sessionId, head, Number.MAX_SAFE_INTEGER, async (p) => {
      queue.push(p);
      while (queue.length > ENCODE_AHEAD) await insertNext();
    });
    while (queue.length > 0) await insertNext();
    if (input.commit) await commitSessionLines(tx, { conversationId, sessionId, attempt });
    return {
      linesAdded: added.lines,
      bytesAdded: added.bytes,
      chunksAdded: added.chunks,
      lineCount: head.lineCount + added.lines,
      byteCount: head.byteCount + added.bytes,
      tailSha256: read.tailSha256,
      partialBytes: read.partialBytes,
    };
  });
}

/** Where a session's stored bytes end: the head row's counts and the digest of its last bytes. */
export interface StoredEnd {
  lineCount: number;
  byteCount: number;
  /** Null while nothing is stored. */
  tailSha256: string | null;
}

/** The new complete lines of a session file after a head the caller knows, encoded, not stored. */
export interface NewLines {
  /** The head they go after. */
  from: StoredEnd;
  chunks: Encoded[];
  /** The head's digest once they are stored. */
  tailSha256: string | null;
  partialBytes: number;
}

/**
 * Reads and encodes the file's complete lines after `head` (a head the caller read
 * earlier, not locked), for a caller that stores them itself in one call with an
 * expectation on the head (agentq_commit_turn, which refuses them if the head moved).
 * Undefined when they come to more than `maxBytes`: store them with persistSession.
 * Throws what persistSession throws for the file (refused, diverged, a line too long).
 */
export async function readSessionDelta(
  input: Pick<PersistInput, 'sessionId' | 'filePath' | 'root' | 'maxFileBytes' | 'maxLineBytes' | 'codec' | 'chunkBytes'>,
  head: StoredEnd,
  maxBytes: number,
): Promise<NewLines | undefined> {
  const sessionId = parseSessionFileId(input.sessionId);
  const pending: Promise<Encoded>[] = [];
  const read = await readNewLines(input, sessionId, head, maxBytes, (p) => {
    pending.push(p);
    return Promise.resolve();
  });
  if (read.tooMany) return undefined;
  return { from: head, chunks: await Promise.all(pending), tailSha256: read.tailSha256, partialBytes: read.partialBytes };
}

/**
 * The file's complete lines after `head`, as chunks encoded ahead (each promise handed to
 * `onChunk` in order). Checks that the file continues the stored bytes: no shorter than
 * the head, and the same last bytes before it. Reads nothing after the head (`tooMany`)
 * when the file holds more than `maxNewBytes` beyond it.
 */
async function readNewLines(
  input: Pick<PersistInput, 'filePath' | 'root' | 'maxFileBytes' | 'maxLineBytes' | 'codec' | 'chunkBytes'>,
  sessionId: string,
  head: StoredEnd,
  maxNewBytes: number,
  onChunk: (encoded: Promise<Encoded>) => Promise<void>,
): Promise<{ tailSha256: string | null; partialBytes: number; tooMany: boolean }> {
  const { filePath } = input;
  const codec = input.codec ?? DEFAULT_CODEC;
  const fh = await openAgentFile(agentPathOf(filePath, input.root), input.maxFileBytes ?? Number.MAX_SAFE_INTEGER);
  if (!fh) {
    if (head.byteCount > 0) throw new SessionDivergedError(sessionId, filePath, 'it does not exist');
    // Nothing stored and no file yet (a checkpoint before the CLI wrote anything).
    return { tailSha256: head.tailSha256, partialBytes: 0, tooMany: false };
  }
  try {
    const { size } = fh;
    if (size < head.byteCount) {
      throw new SessionDivergedError(sessionId, filePath, `it has ${size} bytes, ${head.byteCount} are stored`);
    }
    let tail: Buffer = Buffer.alloc(0);
    let tailSha256 = head.tailSha256;
    if (head.byteCount > 0) {
      const n = Math.min(TAIL_DIGEST_BYTES, head.byteCount);
      tail = await fh.read(head.byteCount - n, n);
      if (sha256(tail) !== head.tailSha256) {
        throw new SessionDivergedError(sessionId, filePath, `its bytes before offset ${head.byteCount} differ from the stored ones`);
      }
    }
    if (size - head.byteCount > maxNewBytes) return { tailSha256, partialBytes: 0, tooMany: true };
    const chunker = new LineChunker({
      sessionId,
      firstLine: head.lineCount,
      byteOffset: head.byteCount,
      maxLineBytes: input.maxLineBytes,
      chunkBytes: input.chunkBytes ?? DEFAULT_CHUNK_BYTES,
    });
    const emit = (chunk: PendingChunk): Promise<void> => {
      // The digest chain is computed in order here; only the zlib work runs ahead.
      tail = rollTail(tail, chunk.raw);
      const digest = sha256(tail);
      tailSha256 = digest;
      const p = encodeChunk(chunk.raw, codec).then((data) => ({ chunk, data, tailSha256: digest }));
      p.catch(() => undefined); // awaited by the caller; this only avoids an unhandled rejection meanwhile
      return onChunk(p);
    };
    for (let pos = head.byteCount; pos < size; ) {
      const block = await fh.read(pos, Math.min(READ_BLOCK_BYTES, size - pos));
      if (block.length === 0) break;
      pos += block.length;
      for (const chunk of chunker.push(block)) await emit(chunk);
    }
    for (const chunk of chunker.finish()) await emit(chunk);
    return { tailSha256, partialBytes: chunker.partialBytes, tooMany: false };
  } finally {
    fh.close();
  }
}

/** `filePath` as a path beneath `root` (default: its own directory). */
function agentPathOf(filePath: string, root: string | undefined): { root: string; rel: string } {
  const base = path.resolve(root ?? path.dirname(filePath));
  const rel = path.relative(base, path.resolve(filePath));
  return { root: base, rel: rel.split(path.sep).join('/') };
}

/**
 * One chunk, one statement: advance the head from exactly (first_line, byte_offset) and
 * insert the chunk only if that update happened. Index: sessions_pk, session_chunks_pk.
 * Also used by the Agent SDK adapter (src/sdk/appendLines.ts).
 */
export async function appendChunk(
  tx: Executor,
  conversationId: string,
  sessionId: string,
  attempt: string,
  codec: ChunkCodec,
  { chunk, data, tailSha256 }: Encoded,
): Promise<void> {
  const result = await tx.execute(sql`
    with head as (
      update sessions
         set line_count = line_count + ${chunk.lineCount}::int,
             byte_count = byte_count + ${chunk.raw.length}::int,
             tail_sha256 = ${tailSha256},
             updated_at = now()
       where conversation_id = ${conversationId}::uuid
         and session_id = ${sessionId}
         and line_count = ${chunk.firstLine}::bigint
         and byte_count = ${chunk.byteOffset}::bigint
      returning conversation_id, session_id, line_count - ${chunk.lineCount}::int as first_line,
                byte_count - ${chunk.raw.length}::int as byte_offset
    )
    insert into session_chunks
      (conversation_id, session_id, first_line, line_count, byte_offset, byte_len, attempt, committed, codec, data)
    select conversation_id, session_id, first_line, ${chunk.lineCount}::int, byte_offset, ${chunk.raw.length}::int,
           ${attempt}, false, ${codec}, ${data}::bytea
      from head`);
  if (result.rowCount !== 1) throw new SessionConflictError(sessionId, chunk.firstLine);
}
