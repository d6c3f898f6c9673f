// Applies the drizzle-kit SQL migrations in migrations/. The history lives in drizzle's
// own table (drizzle.__drizzle_migrations: hash, created_at), so `drizzle-kit migrate`
// and this code agree on what ran. Unlike drizzle-orm's migrator this one takes an
// advisory lock (two `agentq migrate` at once are safe), refuses a database migrated by
// a newer agentq, and says what it applied.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { MigrationHistoryError, SchemaTooNewError } from '../errors.js';

/** One SQL file of migrations/, as listed in meta/_journal.json. */
export interface MigrationFile {
  tag: string;
  /** The journal's `when`: drizzle orders and identifies migrations by it. */
  createdAtMs: number;
  /** sha256 of the file, as drizzle records it. */
  hash: string;
  statements: string[];
}

export interface MigrateOptions {
  /** Default: the migrations/ folder shipped with this package. */
  migrationsFolder?: string;
}

export interface SchemaStatus {
  /** True when every known migration is applied and nothing unknown is. */
  current: boolean;
  /** Tags of known migrations not applied yet. */
  pending: string[];
  /** Applied migrations (created_at) this build does not know: the schema is newer. */
  unknown: number[];
  appliedCount: number;
}

/** Serializes migrators across processes; an arbitrary constant ("agentq" in ASCII). */
const MIGRATION_LOCK_KEY = 0x616765_6e7471;
const HISTORY_SCHEMA = 'drizzle';
const HISTORY_TABLE = '__drizzle_migrations';

/**
 * The migrations/ folder of the agentq package: found by walking up from this module to
 * the package root, so it works from src/ (vitest, tsx) and from dist/ (the build).
 */
export function defaultMigrationsFolder(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = path.join(dir, 'package.json');
    if (existsSync(pkg)) {
      const name = (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: unknown }).name;
      if (name === 'agentq') return path.join(dir, 'migrations');
    }
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('Cannot find the agentq package root (package.json) above the store module');
    dir = parent;
  }
}

/** Reads migrations/meta/_journal.json and the SQL files it lists, in journal order. */
export function readMigrations(folder: string): MigrationFile[] {
  const journalPath = path.join(folder, 'meta', '_journal.json');
  if (!existsSync(journalPath)) throw new Error(`No migration journal at ${journalPath}`);
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: { tag: string; when: number }[] };
  return journal.entries.map((entry) => {
    const content = readFileSync(path.join(folder, `${entry.tag}.sql`), 'utf8');
    return {
      tag: entry.tag,
      createdAtMs: entry.when,
      hash: createHash('sha256').update(content).digest('hex'),
      statements: content.split('--> statement-breakpoint').filter((s) => s.trim() !== ''),
    };
  });
}

interface AppliedRow {
  hash: string;
  created_at: string;
}

type Target = pg.Pool | string;

async function withClient<T>(target: Target, fn: (client: pg.ClientBase) => Promise<T>): Promise<T> {
  if (typeof target === 'string') {
    const client = new pg.Client({ connectionString: target });
    await client.connect();
    try {
      return await fn(client);
    } finally {
      await client.end();
    }
  }
  const client = await target.connect();
  try {
    return await fn(client);
  } finally {
    client.release();
  }
}

async function readApplied(client: pg.ClientBase): Promise<AppliedRow[]> {
  const exists = await client.query<{ t: string | null }>('select to_regclass($1) as t', [`${HISTORY_SCHEMA}.${HISTORY_TABLE}`]);
  if (!exists.rows[0]?.t) return [];
  // A handful of rows; no index needed.
  const res = await client.query<AppliedRow>(
    `select hash, created_at::text as created_at from "${HISTORY_SCHEMA}"."${HISTORY_TABLE}" order by created_at`,
  );
  return res.rows;
}

/** Compares the history with the files: returns what is pending, throws on a history this build cannot continue. */
function plan(known: MigrationFile[], applied: AppliedRow[]): { pending: MigrationFile[]; unknown: number[] } {
  const byTime = new Map(known.map((m) => [m.createdAtMs, m]));
  const latestKnown = known.reduce<number | null>((max, m) => (max === null || m.createdAtMs > max ? m.createdAtMs : max), null);
  const unknown: number[] = [];
  let latestApplied = -1;
  for (const row of applied) {
    const at = Number(row.created_at);
    latestApplied = Math.max(latestApplied, at);
    const file = byTime.get(at);
    if (!file) unknown.push(at);
    else if (file.hash !== row.hash) throw new MigrationHistoryError(`Migration ${file.tag} was changed after it was applied`);
  }
  if (unknown.some((at) => latestKnown === null || at > latestKnown)) throw new SchemaTooNewError(unknown, latestKnown);
  if (unknown.length > 0) {
    throw new MigrationHistoryError(`Applied migrations created at ${unknown.join(', ')} are not among the migration files`);
  }
  const appliedTimes = new Set(applied.map((r) => Number(r.created_at)));
  const skipped = known.filter((m) => !appliedTimes.has(m.createdAtMs) && m.createdAtMs < latestApplied);
  if (skipped.length > 0) {
    throw new MigrationHistoryError(
      `Migrations ${skipped.map((m) => m.tag).join(', ')} are older than the newest applied one but never ran`,
    );
  }
  return { pending: known.filter((m) => m.createdAtMs > latestApplied), unknown };
}

/**
 * Applies every pending migration in one transaction under an advisory lock; a second
 * migrator waits for the lock, then finds nothing to do. Running it again is a no-op.
 * Throws SchemaTooNewError when the database has migrations this build does not know.
 * Returns the tags it applied, in order.
 */
export async function migrate(target: Target, options: MigrateOptions = {}): Promise<{ applied: string[] }> {
  const known = readMigrations(options.migrationsFolder ?? defaultMigrationsFolder());
  return withClient(target, async (client) => {
    await client.query('begin');
    try {
      // Held until commit or rollback; everything below runs with no other migrator active.
      await client.query('select pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
      await client.query(`create schema if not exists "${HISTORY_SCHEMA}"`);
      await client.query(
        `create table if not exists "${HISTORY_SCHEMA}"."${HISTORY_TABLE}" (id serial primary key, hash text not null, created_at bigint)`,
      );
      const { pending } = plan(known, await readApplied(client));
      for (const migration of pending) {
        for (const statement of migration.statements) await client.query(statement);
        await client.query(`insert into "${HISTORY_SCHEMA}"."${HISTORY_TABLE}" (hash, created_at) values ($1, $2)`, [
          migration.hash,
          migration.createdAtMs,
        ]);
      }
      await client.query('commit');
      return { applied: pending.map((m) => m.tag) };
    } catch (err) {
      await client.query('rollback').catch(() => undefined);
      throw err;
    }
  });
}

/**
 * Whether the database schema matches this build, without changing anything (for
 * readiness checks). A newer schema is reported in `unknown`, not thrown.
 */
export async function schemaStatus(target: Target, options: MigrateOptions = {}): Promise<SchemaStatus> {
  const known = readMigrations(options.migrationsFolder ?? defaultMigrationsFolder());
  const applied = await withClient(target, readApplied);
  try {
    const { pending, unknown } = plan(known, applied);
    return { current: pending.length === 0 && unknown.length === 0, pending: pending.map((m) => m.tag), unknown, appliedCount: applied.length };
  } catch (err) {
    if (err instanceof SchemaTooNewError) {
      return { current: false, pending: [], unknown: [...err.unknownMigrations], appliedCount: applied.length };
    }
    throw err;
  }
}
