// The session store against plain pg, on a throwaway database (created, migrated,
// dropped), with a 50 MB synthetic session shaped like the CLI's:
// - hydrate_50mb_ms: hydrateSession vs reading the same lines (one text row per line,
//   keyset pages) with plain pg and writing them to a file.
// - hydrate_50mb_rss_mb: peak RSS growth during hydrate (sampled), vs the baseline's.
// - persist_10kb_on_50mb_ms: persist (and commit) a 10 KB turn onto the stored 50 MB
//   session vs one plain INSERT of those 10 KB.
// - ingest_lines_per_s: persist of the whole file vs multi-row INSERTs of one row per line.
// - per codec (identity, gzip, br): stored MB and hydrate time, to justify DEFAULT_CODEC.
import { randomBytes, randomUUID } from 'node:crypto';
import { appendFileSync, closeSync, createReadStream, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import pg from 'pg';
import { sessionFilePath } from '../claude/sessionPath.js';
import { loadConfig } from '../config.js';
import { DEFAULT_CODEC } from '../store/chunks.js';
import { ensureConversation } from '../store/conversations.js';
import { createStoreDb } from '../store/db.js';
import { hydrateSession } from '../store/hydrate.js';
import { migrate } from '../store/migrate.js';
import { persistSession } from '../store/persist.js';
import { chunkCodecs, type ChunkCodec } from '../store/schema.js';
import { adminQuery, databaseUrl } from './database.js';
import { measured, median, round, type Benchmark, type Figure } from './harness.js';
import { syntheticSessionLines, writeSyntheticSession } from './syntheticSession.js';

const SESSION_BYTES = 50 * 1024 * 1024;
const HYDRATE_REPS = 5;
const INGEST_REPS = 3;
const PERSIST_REPS = 25;
const TURN_BYTES = 10 * 1024;
const MAX_LINE = 16 * 1024 * 1024;

async function* fileLines(file: string): AsyncGenerator<string> {
  const rl = readline.createInterface({ input: createReadStream(file), crlfDelay: Infinity });
  for await (const line of rl) yield line;
}

/** Baseline write: one text row per line, multi-row INSERTs of 1000 rows in one transaction. */
async function baselineIngest(pool: pg.Pool, key: string, file: string): Promise<number> {
  const client = await pool.connect();
  try {
    await client.query('begin');
    let batch: string[] = [];
    let n = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      // ($1 key, line_no = first line number + i, the line)
      const placeholders = batch.map((_, i) => `($1, $2::bigint + ${i}, $${i + 3})`);
      await client.query(`insert into bench_lines (session_key, line_no, line) values ${placeholders.join(',')}`, [key, n - batch.length, ...batch]);
      batch = [];
    };
    for await (const line of fileLines(file)) {
      batch.push(`${line}\n`);
      n++;
      if (batch.length === 1000) await flush();
    }
    await flush();
    await client.query('commit');
    return n;
  } finally {
    client.release();
  }
}

/** Baseline read: the same lines by keyset pages of 2000 rows, written to a file in order. */
async function baselineHydrate(pool: pg.Pool, key: string, target: string): Promise<number> {
  const client = await pool.connect();
  const fd = openSync(target, 'w');
  let bytes = 0;
  try {
    let from = -1;
    for (;;) {
      const res = await client.query<{ line_no: string; line: string }>(
        'select line_no, line from bench_lines where session_key = $1 and line_no > $2 order by line_no limit 2000',
        [key, from],
      );
      if (res.rows.length === 0) break;
      const buf = Buffer.from(res.rows.map((r) => r.line).join(''));
      writeSync(fd, buf);
      bytes += buf.length;
      from = Number(res.rows[res.rows.length - 1]!.line_no);
    }
  } finally {
    closeSync(fd);
    client.release();
  }
  return bytes;
}

export const storeBench: Benchmark = {
  name: 'store',
  description: 'session store: hydrate / persist / ingest of a 50 MB session vs plain pg',
  async run(ctx) {
    const base = loadConfig(process.env).databaseUrl;
    const dbName = `agentq_bench_${randomBytes(5).toString('hex')}`;
    const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-store-'));
    await adminQuery(base, `create database ${dbName}`);
    const pool = new pg.Pool({ connectionString: databaseUrl(base, dbName), max: 4 });
    try {
      await migrate(pool);
      await pool.query(
        'create table bench_lines (session_key text not null, line_no bigint not null, line text not null, primary key (session_key, line_no))',
      );
      await pool.query('create table bench_blobs (id bigserial primary key, body text not null)');
      const db = createStoreDb(pool);
      const conversation = await ensureConversation(db, { externalId: 'bench-store' });
      const conversationId = conversation.id;

      const source = path.join(root, 'source.jsonl');
      const sourceSession = randomUUID();
      const { lines, bytes } = await writeSyntheticSession(source, SESSION_BYTES, { sessionId: sourceSession });
      ctx.log(`session: ${lines} lines, ${(bytes / 1e6).toFixed(1)} MB, ${Math.round(bytes / lines)} bytes/line on average`);

      // Ingest: persist a fresh copy of the file (a new session id each time).
      const ingest: Record<ChunkCodec, number[]> = { identity: [], gzip: [], br: [] };
      const sessionsByCodec: Partial<Record<ChunkCodec, string>> = {};
      for (let rep = 0; rep < INGEST_REPS; rep++) {
        for (const codec of chunkCodecs) {
          const sessionId = randomUUID();
          const t = performance.now();
          const r = await persistSession(db, { conversationId, sessionId, filePath: source, attempt: 1, commit: true, codec, maxLineBytes: MAX_LINE });
          ingest[codec].push(performance.now() - t);
          if (r.linesAdded !== lines) throw new Error(`ingest stored ${r.linesAdded} of ${lines} lines`);
          sessionsByCodec[codec] ??= sessionId;
        }
      }
      const baselineIngestMs: number[] = [];
      for (let rep = 0; rep < INGEST_REPS; rep++) {
        const t = performance.now();
        await baselineIngest(pool, `ingest-${rep}`, source);
        baselineIngestMs.push(performance.now() - t);
      }
      const storedMb: Partial<Record<ChunkCodec, number>> = {};
      for (const codec of chunkCodecs) {
        const res = await pool.query<{ mb: string }>(
          'select sum(octet_length(data))::float8 / 1e6 as mb from session_chunks where conversation_id = $1 and session_id = $2',
          [conversationId, sessionsByCodec[codec]],
        );
        storedMb[codec] = Number(res.rows[0]?.mb);
      }

      // Hydrate: each codec's session into a fresh config dir; the baseline reads bench_lines.
      const hydrateMs: Record<ChunkCodec, number[]> = { identity: [], gzip: [], br: [] };
      const rss: number[] = [];
      const baselineHydrateMs: number[] = [];
      const baselineRss: number[] = [];
      const cwd = path.join(root, 'ws');
      mkdirSync(cwd);
      for (let rep = 0; rep < HYDRATE_REPS; rep++) {
        for (const codec of chunkCodecs) {
          const configDir = path.join(root, `cfg-${codec}-${rep}`);
          const m = await measured(() => hydrateSession(db, { conversationId, sessionId: sessionsByCodec[codec]!, cwd, configDir }));
          if (m.value.bytes !== bytes) throw new Error(`hydrate wrote ${m.value.bytes} of ${bytes} bytes`);
          hydrateMs[codec].push(m.ms);
          if (codec === DEFAULT_CODEC) rss.push(m.rssMb);
          rmSync(configDir, { recursive: true, force: true });
        }
        const target = path.join(root, `baseline-${rep}.jsonl`);
        const b = await measured(() => baselineHydrate(pool, 'ingest-0', target));
        if (b.value !== bytes) throw new Error(`baseline hydrate wrote ${b.value} of ${bytes} bytes`);
        baselineHydrateMs.push(b.ms);
        baselineRss.push(b.rssMb);
        rmSync(target, { force: true });
      }
      // Verify once that what hydrate writes is the file, byte for byte.
      const check = await hydrateSession(db, { conversationId, sessionId: sessionsByCodec[DEFAULT_CODEC]!, cwd, configDir: path.join(root, 'cfg-check') });
      if (!readFileSync(check.path).equals(readFileSync(source))) throw new Error('hydrated bytes differ from the source file');

      // Persist one 10 KB turn onto the stored 50 MB session, committed, repeatedly.
      const turnFile = sessionFilePath(path.join(root, 'cfg-check'), cwd, sessionsByCodec[DEFAULT_CODEC]!);
      const gen = syntheticSessionLines({ sessionId: sessionsByCodec[DEFAULT_CODEC]!, seed: 99 });
      const turn = () => {
        const parts: Buffer[] = [];
        let n = 0;
        while (n < TURN_BYTES) {
          const line = gen.next().value as Buffer;
          parts.push(line);
          n += line.length;
        }
        return Buffer.concat(parts);
      };
      const persistMs: number[] = [];
      const insertMs: number[] = [];
      for (let rep = 0; rep < PERSIST_REPS; rep++) {
        const delta = turn();
        appendFileSync(turnFile, delta);
        let t = performance.now();
        const r = await persistSession(db, {
          conversationId,
          sessionId: sessionsByCodec[DEFAULT_CODEC]!,
          filePath: turnFile,
          attempt: `turn-${rep}`,
          commit: true,
          maxLineBytes: MAX_LINE,
        });
        persistMs.push(performance.now() - t);
        if (r.bytesAdded !== delta.length) throw new Error(`persist stored ${r.bytesAdded} of ${delta.length} bytes`);
        t = performance.now();
        await pool.query('insert into bench_blobs (body) values ($1)', [delta.toString('utf8')]);
        insertMs.push(performance.now() - t);
      }

      const ingestRate = lines / (median(ingest[DEFAULT_CODEC]) / 1000);
      const baselineRate = lines / (median(baselineIngestMs) / 1000);
      for (const codec of chunkCodecs) {
        ctx.log(
          `codec ${codec}: stored ${storedMb[codec]!.toFixed(1)} MB, ingest median ${median(ingest[codec]).toFixed(0)} ms, hydrate median ${median(hydrateMs[codec]).toFixed(0)} ms`,
        );
      }
      const figures: Figure[] = [
        { bench: 'hydrate_50mb_ms', value: round(median(hydrateMs[DEFAULT_CODEC]), 1), unit: 'ms', baseline: round(median(baselineHydrateMs), 1), target: '<= 500' },
        { bench: 'hydrate_50mb_rss_mb', value: round(median(rss), 1), unit: 'MB', baseline: round(median(baselineRss), 1), target: 'O(1): far below the session size' },
        { bench: 'persist_10kb_on_50mb_ms', value: round(median(persistMs), 2), unit: 'ms', baseline: round(median(insertMs), 2), target: '<= 20' },
        { bench: 'ingest_lines_per_s', value: Math.round(ingestRate), unit: 'lines/s', baseline: Math.round(baselineRate), target: '>= 50000' },
      ];
      for (const codec of chunkCodecs) {
        figures.push({
          bench: `hydrate_50mb_ms_${codec}`,
          value: round(median(hydrateMs[codec]), 1),
          unit: 'ms',
          baseline: round(median(baselineHydrateMs), 1),
          target: `informational (stored ${storedMb[codec]!.toFixed(1)} MB, ingest ${Math.round(lines / (median(ingest[codec]) / 1000))} lines/s)`,
        });
      }
      return figures;
    } finally {
      await pool.end();
      await adminQuery(base, `drop database if exists ${dbName} with (force)`);
      rmSync(root, { recursive: true, force: true });
    }
  },
};
