import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { afterEach, describe, expect, it } from 'vitest';
import { MigrationHistoryError, SchemaTooNewError } from '../src/errors.js';
import { main } from '../src/cli/main.js';
import { defaultMigrationsFolder, migrate, readMigrations, schemaStatus } from '../src/store/migrate.js';
import { createDatabase, databaseUrl, dropDatabase, randomDatabaseName } from './helpers/db.js';
import { tempDirs } from './helpers/files.js';

const created: string[] = [];
const dirs = tempDirs();

/** An empty database (not the migrated template): these tests run the migrations themselves. */
async function emptyDatabase(): Promise<string> {
  const name = randomDatabaseName('agentq_t_migrate');
  await createDatabase(name);
  created.push(name);
  return databaseUrl(name);
}

afterEach(async () => {
  dirs.cleanup();
  for (const name of created.splice(0)) await dropDatabase(name);
});

async function tables(url: string): Promise<string[]> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    const res = await c.query<{ t: string }>("select tablename as t from pg_tables where schemaname = 'public' order by 1");
    return res.rows.map((r) => r.t);
  } finally {
    await c.end();
  }
}

describe('migrate', () => {
  it('finds the migrations folder from the package root', () => {
    const folder = defaultMigrationsFolder();
    expect(existsSync(path.join(folder, 'meta', '_journal.json'))).toBe(true);
    const tags = readMigrations(folder).map((m) => m.tag);
    // Append-only: the landed files stay first, in journal order.
    expect(tags.slice(0, 3)).toEqual(['0000_session_store', '0001_store_compressed_columns_external', '0002_turn_protocol']);
    expect(tags).toEqual([...tags].sort());
  });

  it('applies every migration once; running it again applies nothing', async () => {
    const url = await emptyDatabase();
    const all = readMigrations(defaultMigrationsFolder()).map((m) => m.tag);
    expect(await schemaStatus(url)).toMatchObject({ current: false, pending: all });
    expect(await migrate(url)).toEqual({ applied: all });
    expect(await tables(url)).toEqual([
      'approvals',
      'conversations',
      'schedules',
      'sdk_sessions',
      'session_chunks',
      'session_entry_uuids',
      'session_folders',
      'session_sidecars',
      'session_uuid_scans',
      'sessions',
      'turn_events',
      'turns',
      'workspaces',
    ]);
    expect(await migrate(url)).toEqual({ applied: [] });
    expect(await schemaStatus(url)).toEqual({ current: true, pending: [], unknown: [], appliedCount: all.length });
  });

  it('stores chunk data and archives with STORAGE EXTERNAL (no second compression)', async () => {
    const url = await emptyDatabase();
    await migrate(url);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const res = await c.query<{ rel: string; att: string; storage: string }>(
        `select c.relname as rel, a.attname as att, a.attstorage as storage from pg_attribute a join pg_class c on c.oid = a.attrelid
          where (c.relname, a.attname) in (('session_chunks', 'data'), ('session_folders', 'archive'), ('workspaces', 'archive')) order by 1`,
      );
      expect(res.rows).toEqual([
        { rel: 'session_chunks', att: 'data', storage: 'e' },
        { rel: 'session_folders', att: 'archive', storage: 'e' },
        { rel: 'workspaces', att: 'archive', storage: 'e' },
      ]);
    } finally {
      await c.end();
    }
  });

  it('two migrators at once: one applies, the other waits and applies nothing', async () => {
    const url = await emptyDatabase();
    const pools = [new pg.Pool({ connectionString: url }), new pg.Pool({ connectionString: url })];
    // pool.end() resolves before its clients have closed; the database dropped after the test
    // may terminate one still closing, which the pool reports as an error of its own.
    for (const p of pools) p.on('error', () => undefined);
    try {
      const results = await Promise.all(pools.map((p) => migrate(p)));
      const known = readMigrations(defaultMigrationsFolder()).length;
      expect(results.map((r) => r.applied.length).sort()).toEqual([0, known]);
      expect((await schemaStatus(url)).current).toBe(true);
    } finally {
      await Promise.all(pools.map((p) => p.end()));
    }
  });

  it('refuses a database migrated by a newer agentq, saying to upgrade', async () => {
    const url = await emptyDatabase();
    const newer = dirs.make('migrations-newer');
    cpSync(defaultMigrationsFolder(), newer, { recursive: true });
    const journalPath = path.join(newer, 'meta', '_journal.json');
    const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: { idx: number; when: number; tag: string }[] };
    const last = journal.entries[journal.entries.length - 1]!;
    journal.entries.push({ ...last, idx: last.idx + 1, when: last.when + 1000, tag: '9999_from_the_future' });
    writeFileSync(journalPath, JSON.stringify(journal));
    writeFileSync(path.join(newer, '9999_from_the_future.sql'), 'create table from_the_future (id int);');
    expect((await migrate(url, { migrationsFolder: newer })).applied).toHaveLength(journal.entries.length);

    const err = await migrate(url).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SchemaTooNewError);
    expect((err as Error).name).toBe('SchemaTooNewError');
    expect((err as Error).message).toMatch(/upgrade agentq/i);
    expect(await schemaStatus(url)).toMatchObject({ current: false, unknown: [last.when + 1000] });
  });

  it('refuses to continue when an applied migration file was edited', async () => {
    const url = await emptyDatabase();
    const folder = dirs.make('migrations-edited');
    cpSync(defaultMigrationsFolder(), folder, { recursive: true });
    await migrate(url, { migrationsFolder: folder });
    const file = path.join(folder, '0001_store_compressed_columns_external.sql');
    writeFileSync(file, `${readFileSync(file, 'utf8')}\n-- edited\n`);
    await expect(migrate(url, { migrationsFolder: folder })).rejects.toBeInstanceOf(MigrationHistoryError);
  });

  it('a command run against a database that was never migrated says to run `agentq migrate` (exit 2), not a raw query error', async () => {
    const url = await emptyDatabase();
    const out: string[] = [];
    const err: string[] = [];
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', DATABASE_URL: url, AGENTQ_QUEUE: `t-migrate-${Date.now()}` };
    const io = { env, out: (s: string) => out.push(s), err: (s: string) => err.push(s) };
    expect(await main(['node', 'agentq', 'show', 'ticket-1'], io)).toBe(2);
    expect(err.join('\n')).toMatch(/^The database schema is not current \(.*(relation|column) .* does not exist.*\): run `agentq migrate`/);
    expect(await main(['node', 'agentq', 'enqueue', 'ticket-1', 'hello'], io)).toBe(2);
    expect(err.at(-1)).toMatch(/run `agentq migrate`/);
  });
});
