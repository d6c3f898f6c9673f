// Hydrate: write a stored session back to the path the CLI reads, byte for byte.
//
// Streamed: chunks are read a page at a time (the next page is requested while the
// current one is decoded and written), so memory stays bounded by a few chunks whatever
// the session's size. Every chunk is checked against the head (first line and byte offset
// continue the previous chunk, decoded length, final newline) before its bytes are
// written, and the file appears at its final path only complete (written to a temporary
// name in the same folder, then renamed).
import { randomUUID } from 'node:crypto';
import { mkdir, open, rename, rm, writeFile, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { sessionFilePath } from '../claude/sessionPath.js';
import { subagentFileId, subagentMetaPath, subagentTranscriptPath } from '../claude/subagentPath.js';
import { SessionCorruptError, SessionNotFoundError, StoreInputError } from '../errors.js';
import { decodeChunk } from './chunks.js';
import type { StoreDb } from './db.js';
import { parseSessionId } from './ids.js';
import { chunkCodecs, type ChunkCodec } from './schema.js';

/** Chunks fetched per query: about this many MiB of raw session per page. */
const PAGE_CHUNKS = 4;

export interface HydrateInput {
  /** conversations.id (uuid). */
  conversationId: string;
  sessionId: string;
  /** The directory the CLI will run in; must exist (its real path names the project folder). */
  cwd: string;
  /** The CLAUDE_CONFIG_DIR the CLI will use. */
  configDir: string;
  /** The cwd as the CLI will see it, when not `cwd` itself (a sandbox mounts it at a fixed path). */
  cliCwd?: string | undefined;
  /**
   * Also write the checkpointed lines after the committed ones: for a retry that
   * continues an interrupted attempt (see src/store/sessions.ts). Default false.
   */
  includeUncommitted?: boolean;
}

export interface HydrateResult {
  /** The session file written. */
  path: string;
  lines: number;
  bytes: number;
  /** Of `lines`, how many were uncommitted checkpoints. */
  uncommittedLines: number;
}

type Queryable = pg.Pool | pg.PoolClient | pg.Client;

/** instanceof fails when two copies of pg are installed; drizzle checks the same way. */
function isPool(client: Queryable): client is pg.Pool {
  return client instanceof pg.Pool || 'totalCount' in client;
}

interface ChunkRow {
  firstLine: number;
  lineCount: number;
  byteOffset: number;
  byteLen: number;
  codec: ChunkCodec;
  data: Buffer;
}

/**
 * One page of chunks. bytea arrives hex-encoded (pg 8 parses every result field as
 * text, so its binary result format cannot carry raw bytes) and pg-types decodes it
 * natively. Index: session_chunks_pk range scan, in key order.
 */
async function fetchPage(client: pg.ClientBase, conversationId: string, sessionId: string, fromLine: number, toLine: number): Promise<ChunkRow[]> {
  const res = await client.query<[string, number, string, number, string, Buffer]>({
    text: `select first_line, line_count, byte_offset, byte_len, codec, data from session_chunks
            where conversation_id = $1 and session_id = $2 and first_line >= $3 and first_line < $4
            order by first_line limit ${PAGE_CHUNKS}`,
    values: [conversationId, sessionId, fromLine, toLine],
    rowMode: 'array',
  });
  return res.rows.map(([firstLine, lineCount, byteOffset, byteLen, codec, data]) => ({
    firstLine: Number(firstLine),
    lineCount,
    byteOffset: Number(byteOffset),
    byteLen,
    codec: codec as ChunkCodec,
    data,
  }));
}

async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let done = 0;
  while (done < buf.length) {
    const { bytesWritten } = await fh.write(buf, done, buf.length - done);
    done += bytesWritten;
  }
}

/**
 * Writes the session's committed lines (plus the uncommitted ones if asked) to
 * `<configDir>/projects/<encoded realpath(cwd)>/<sessionId>.jsonl`, replacing any file
 * there. Reads one consistent snapshot. Throws SessionNotFoundError when nothing is
 * stored under that id, SessionCorruptError when the stored chunks do not add up.
 */
export async function hydrateSession(db: StoreDb, input: HydrateInput): Promise<HydrateResult> {
  const sessionId = parseSessionId(input.sessionId);
  const target = sessionFilePath(input.configDir, input.cwd, sessionId, input.cliCwd);
  return inSnapshot(db, (client) => hydrateInSnapshot(client, input.conversationId, sessionId, target, input.includeUncommitted ?? false));
}

export interface HydrateSubagentsInput {
  conversationId: string;
  /** The session whose subagent transcripts these are. */
  sessionId: string;
  /** Where that session's file is (or goes) on disk: the transcripts go next to it. */
  sessionFile: string;
  /** The stored subpaths to write (`subagents/agent-a1b2`), from the session heads. */
  subpaths: readonly string[];
  includeUncommitted?: boolean;
}

/**
 * Writes stored subagent transcripts of a session where the CLI looks for them
 * (src/claude/subagentPath.ts), each with its stored sidecar, in one snapshot. A subpath
 * that is not a safe relative path is not written: it is returned in `skipped`.
 */
export async function hydrateSubagentTranscripts(db: StoreDb, input: HydrateSubagentsInput): Promise<{ written: HydrateResult[]; skipped: string[] }> {
  const sessionId = parseSessionId(input.sessionId);
  const targets = input.subpaths.map((subpath) => ({ subpath, target: subagentTranscriptPath(input.sessionFile, sessionId, subpath) }));
  const skipped = targets.filter((t) => t.target === undefined).map((t) => t.subpath);
  const todo = targets.filter((t): t is { subpath: string; target: string } => t.target !== undefined);
  if (todo.length === 0) return { written: [], skipped };
  const written = await inSnapshot(db, async (client) => {
    const out: HydrateResult[] = [];
    const fileIds = todo.map((t) => subagentFileId(sessionId, t.subpath));
    // Index: session_sidecars_pk.
    const sidecars = await client.query<{ session_id: string; content: string }>(
      'select session_id, content from session_sidecars where conversation_id = $1 and session_id = any($2::text[])',
      [input.conversationId, fileIds],
    );
    const sidecarOf = new Map(sidecars.rows.map((r) => [r.session_id, r.content]));
    for (const [i, { target }] of todo.entries()) {
      out.push(await hydrateInSnapshot(client, input.conversationId, fileIds[i]!, target, input.includeUncommitted ?? false));
      const sidecar = sidecarOf.get(fileIds[i]!);
      if (sidecar !== undefined) await writeFile(subagentMetaPath(target), sidecar, { mode: 0o600 });
    }
    return out;
  });
  return { written, skipped };
}

/** Runs `fn` on one pooled connection inside a read-only repeatable-read transaction. */
async function inSnapshot<T>(db: StoreDb, fn: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  const pool: Queryable = db.$client;
  // It reads in a snapshot transaction of its own: on a caller's single connection that
  // would commit whatever transaction the caller has open there.
  if (!isPool(pool)) throw new StoreInputError('db', 'hydrateSession needs a database backed by a pg Pool');
  const client = await pool.connect();
  let broken = false;
  try {
    // One snapshot: a concurrent append or discard cannot show a half-changed session.
    await client.query('begin isolation level repeatable read read only');
    try {
      const result = await fn(client);
      await client.query('commit');
      return result;
    } catch (err) {
      // A failed rollback means a broken connection: the pool must not hand it out again.
      await client.query('rollback').catch(() => (broken = true));
      throw err;
    }
  } finally {
    client.release(broken);
  }
}

async function hydrateInSnapshot(
  client: pg.ClientBase,
  conversationId: string,
  sessionId: string,
  target: string,
  includeUncommitted: boolean,
): Promise<HydrateResult> {
  // Index: sessions_pk.
  const headRes = await client.query<{ line_count: string; byte_count: string; committed_line_count: string; committed_byte_count: string }>(
    `select line_count, byte_count, committed_line_count, committed_byte_count from sessions
      where conversation_id = $1 and session_id = $2`,
    [conversationId, sessionId],
  );
  const head = headRes.rows[0];
  if (!head) throw new SessionNotFoundError(conversationId, sessionId);
  const committedLines = Number(head.committed_line_count);
  const limitLine = includeUncommitted ? Number(head.line_count) : committedLines;
  const limitBytes = includeUncommitted ? Number(head.byte_count) : Number(head.committed_byte_count);

  await mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.${randomUUID()}.tmp`;
  const fh = await open(tmp, 'wx');
  let line = 0;
  let offset = 0;
  try {
    let page = line < limitLine ? fetchPage(client, conversationId, sessionId, 0, limitLine) : Promise.resolve([]);
    for (;;) {
      const rows = await page;
      if (rows.length === 0) break;
      const last = rows[rows.length - 1]!;
      const nextLine = last.firstLine + last.lineCount;
      page = nextLine < limitLine ? fetchPage(client, conversationId, sessionId, nextLine, limitLine) : Promise.resolve([]);
      page.catch(() => undefined); // awaited on the next turn of the loop
      // Decode the page's chunks on the thread pool at once; write them in order.
      const decoded = rows.map((row) => {
        if (!chunkCodecs.includes(row.codec)) return Promise.reject(new SessionCorruptError(sessionId, `unknown codec ${row.codec}`));
        return decodeChunk(row.data, row.codec, row.byteLen);
      });
      for (const p of decoded) p.catch(() => undefined);
      for (const [i, row] of rows.entries()) {
        if (row.firstLine !== line || row.byteOffset !== offset) {
          throw new SessionCorruptError(sessionId, `chunk at line ${row.firstLine} (byte ${row.byteOffset}) follows line ${line} (byte ${offset})`);
        }
        let bytes: Buffer;
        try {
          bytes = await decoded[i]!;
        } catch (err) {
          throw new SessionCorruptError(sessionId, `chunk at line ${row.firstLine} does not decode`, { cause: err });
        }
        if (bytes.length !== row.byteLen || bytes[bytes.length - 1] !== 0x0a) {
          throw new SessionCorruptError(sessionId, `chunk at line ${row.firstLine} has ${bytes.length} bytes, ${row.byteLen} recorded, or no final newline`);
        }
        await writeAll(fh, bytes);
        line += row.lineCount;
        offset += row.byteLen;
      }
    }
    if (line !== limitLine || offset !== limitBytes) {
      throw new SessionCorruptError(sessionId, `chunks end at line ${line} (byte ${offset}), the head says ${limitLine} (byte ${limitBytes})`);
    }
    await fh.close();
    await rename(tmp, target);
  } catch (err) {
    await fh.close().catch(() => undefined);
    await rm(tmp, { force: true });
    throw err;
  }
  return { path: target, lines: line, bytes: offset, uncommittedLines: line - committedLines };
}
