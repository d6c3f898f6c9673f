// agentq as the Agent SDK's sessionStore, against the simplest Postgres store of that
// interface (the design of the SDK's reference adapter, as ANCHORS.md describes it: one
// jsonb row per entry, one multi-row INSERT per append, `SELECT ... ORDER BY id` to load),
// written here for the baseline, on the same throwaway database in the same run.
// - sdk_append_entries_per_s: a ~10 MiB session of CLI-shaped entries appended in
//   batches of 500 (the SDK's mirror batches), into a fresh key each repetition.
// - sdk_load_10mb_ms / sdk_load_10mb_rss_mb: load() of that session (peak RSS growth).
// - sdk_load_byte_exact: 1 when loading agentq's copy gives entries whose JSON text is the
//   appended text (key order kept); the jsonb baseline reorders keys (0).
import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { loadConfig } from '../config.js';
import { createStoreDb } from '../store/db.js';
import { migrate } from '../store/migrate.js';
import { createSessionStore } from '../sdk/sessionStore.js';
import type { SdkSessionEntry } from '../sdk/entries.js';
import { adminQuery, databaseUrl } from './database.js';
import { against, measured, median, round, type Benchmark, type Figure } from './harness.js';
import { syntheticSessionLines } from './syntheticSession.js';

const SESSION_BYTES = 10 * 1024 * 1024;
const BATCH = 500;
const REPS = 5;

/** CLI-shaped entries adding up to about `bytes` of JSON. */
function entries(bytes: number): SdkSessionEntry[] {
  const out: SdkSessionEntry[] = [];
  let total = 0;
  for (const line of syntheticSessionLines({ sessionId: randomUUID(), seed: 7 })) {
    out.push(JSON.parse(line.toString('utf8')) as SdkSessionEntry);
    total += line.length;
    if (total >= bytes) break;
  }
  return out;
}

/** The baseline store: one jsonb row per entry. */
class JsonbRowStore {
  constructor(private readonly pool: pg.Pool) {}
  async append(key: string, batch: readonly SdkSessionEntry[]): Promise<void> {
    const values = batch.map((_, i) => `($1, $${i + 2}::jsonb)`).join(',');
    await this.pool.query(`insert into bench_sdk_entries (session_key, entry) values ${values}`, [key, ...batch.map((e) => JSON.stringify(e))]);
  }
  async load(key: string): Promise<SdkSessionEntry[] | null> {
    const r = await this.pool.query<{ entry: SdkSessionEntry }>('select entry from bench_sdk_entries where session_key = $1 order by id', [key]);
    return r.rows.length === 0 ? null : r.rows.map((x) => x.entry);
  }
}

export const sdkStoreBench: Benchmark = {
  name: 'sdk',
  description: "agentq as the Agent SDK's sessionStore: append and load of a ~10 MiB session vs one jsonb row per entry (the reference adapter's design)",
  async run(ctx) {
    const base = loadConfig(process.env).databaseUrl;
    const dbName = `agentq_bench_${randomBytes(5).toString('hex')}`;
    await adminQuery(base, `create database ${dbName}`);
    const pool = new pg.Pool({ connectionString: databaseUrl(base, dbName), max: 4 });
    try {
      await migrate(pool);
      await pool.query('create table bench_sdk_entries (id bigserial primary key, session_key text not null, entry jsonb not null)');
      await pool.query('create index on bench_sdk_entries (session_key, id)');
      const store = createSessionStore({ db: createStoreDb(pool) });
      const baseline = new JsonbRowStore(pool);
      const all = entries(SESSION_BYTES);
      const bytes = all.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)) + 1, 0);
      ctx.log(`sdk: ${all.length} entries, ${(bytes / 1048576).toFixed(1)} MiB, batches of ${BATCH}`);
      const batches: SdkSessionEntry[][] = [];
      for (let i = 0; i < all.length; i += BATCH) batches.push(all.slice(i, i + BATCH));

      const appendOurs: number[] = [];
      const appendBase: number[] = [];
      const loadOurs: number[] = [];
      const loadBase: number[] = [];
      const rssOurs: number[] = [];
      const rssBase: number[] = [];
      let exactOurs = 1;
      let exactBase = 1;
      // One unmeasured round each first: the first repetition otherwise also times the JIT
      // compiling either side's code (it was the slowest of five for the adapter every time).
      const warmKey = { projectKey: '-bench-warm-up', sessionId: randomUUID() };
      for (const b of batches) await store.append(warmKey, b);
      await store.load(warmKey);
      for (const b of batches) await baseline.append('warm-up', b);
      await baseline.load('warm-up');
      for (let rep = 0; rep < REPS; rep++) {
        // Alternate which goes first, so a drifting machine load hits both.
        const key = { projectKey: `-bench-${rep}`, sessionId: randomUUID() };
        const baseKey = `${key.projectKey}/${key.sessionId}`;
        const ours = async () => {
          const a = await measured(async () => {
            for (const b of batches) await store.append(key, b);
          });
          appendOurs.push(all.length / (a.ms / 1000));
          const l = await measured(() => store.load(key));
          loadOurs.push(l.ms);
          rssOurs.push(l.rssMb);
          if (!l.value || l.value.length !== all.length || l.value.some((e, i) => JSON.stringify(e) !== JSON.stringify(all[i]))) exactOurs = 0;
        };
        const theirs = async () => {
          const a = await measured(async () => {
            for (const b of batches) await baseline.append(baseKey, b);
          });
          appendBase.push(all.length / (a.ms / 1000));
          const l = await measured(() => baseline.load(baseKey));
          loadBase.push(l.ms);
          rssBase.push(l.rssMb);
          if (!l.value || l.value.length !== all.length || l.value.some((e, i) => JSON.stringify(e) !== JSON.stringify(all[i]))) exactBase = 0;
        };
        if (rep % 2 === 0) {
          await ours();
          await theirs();
        } else {
          await theirs();
          await ours();
        }
        ctx.log(
          `sdk rep ${rep + 1}: append ${Math.round(appendOurs.at(-1)!)} vs ${Math.round(appendBase.at(-1)!)} entries/s; load ${loadOurs.at(-1)!.toFixed(0)} vs ${loadBase.at(-1)!.toFixed(0)} ms`,
        );
      }
      const figures: Figure[] = [
        {
          bench: 'sdk_append_entries_per_s',
          value: round(median(appendOurs), 0),
          unit: 'entries/s',
          baseline: round(median(appendBase), 0),
          target: against('≥ 2 × baseline', 2 * median(appendBase), 'entries/s', median(appendOurs) >= 2 * median(appendBase)),
        },
        {
          bench: 'sdk_load_10mb_ms',
          value: round(median(loadOurs), 1),
          unit: 'ms',
          baseline: round(median(loadBase), 1),
          target: against('≤ baseline', median(loadBase), 'ms', median(loadOurs) <= median(loadBase)),
        },
        { bench: 'sdk_load_10mb_rss_mb', value: round(median(rssOurs), 1), unit: 'MB', baseline: round(median(rssBase), 1), target: 'informational' },
        { bench: 'sdk_load_byte_exact', value: exactOurs, unit: 'bool', baseline: exactBase, target: '1 (key order kept)' },
      ];
      return figures;
    } finally {
      await pool.end();
      await adminQuery(base, `drop database if exists ${dbName} with (force)`);
    }
  },
};
