// Real Postgres for tests, one database per test file: globalSetup (test/globalSetup.ts)
// migrates a template database once per run; createTestDatabase() clones it, which is
// fast and isolates files that run in parallel. (drizzle-kit's SQL names the "public"
// schema, so a schema per test would not isolate.)
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import { createStoreDb, type StoreDb } from '../../src/store/db.js';
import { migrate } from '../../src/store/migrate.js';
import { createPool } from '../../src/store/pool.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Name of the migrated template database created by globalSetup. */
    agentqTemplateDatabase: string;
  }
}

export const DEFAULT_TEST_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres';

/** The server tests use: TEST_DATABASE_URL, else the local default. */
export function baseDatabaseUrl(): string {
  return process.env.TEST_DATABASE_URL || DEFAULT_TEST_DATABASE_URL;
}

/** The URL of another database on the same server. */
export function databaseUrl(name: string): string {
  const url = new URL(baseDatabaseUrl());
  url.pathname = `/${name}`;
  return url.toString();
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** Runs `fn` with a short-lived connection to the server's maintenance database. */
export async function withAdminClient<T>(fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: baseDatabaseUrl() });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

export function randomDatabaseName(prefix: string): string {
  return `${prefix}_${randomBytes(6).toString('hex')}`;
}

export async function createDatabase(name: string, template?: string): Promise<void> {
  await withAdminClient((c) => c.query(`create database ${quote(name)}${template ? ` template ${quote(template)}` : ''}`));
}

/** Ends every connection to the database, then drops it. */
export async function dropDatabase(name: string): Promise<void> {
  await withAdminClient(async (c) => {
    await c.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [name]);
    await c.query(`drop database if exists ${quote(name)} with (force)`);
  });
}

/** globalSetup's part: a migrated template database; returns its name. */
export async function createTemplateDatabase(): Promise<string> {
  const name = randomDatabaseName('agentq_template');
  await createDatabase(name);
  try {
    await migrate(databaseUrl(name));
  } catch (err) {
    await dropDatabase(name);
    throw err;
  }
  return name;
}

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  db: StoreDb;
  /** Closes the pool, ends other connections, drops the database. */
  drop(): Promise<void>;
}

/** A fresh, migrated database cloned from the run's template. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const template = inject('agentqTemplateDatabase');
  if (!template) throw new Error('No template database: add test/globalSetup.ts to globalSetup in vitest.config.ts');
  const name = randomDatabaseName('agentq_t');
  await createDatabase(name, template);
  const url = databaseUrl(name);
  const pool = createPool(url, 8);
  let dropped = false;
  return {
    name,
    url,
    pool,
    db: createStoreDb(pool),
    async drop() {
      if (dropped) return;
      dropped = true;
      await pool.end();
      await dropDatabase(name);
    },
  };
}
