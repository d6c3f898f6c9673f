// The drizzle handles the store works with. Functions that only write take `Executor`
// (the database or a transaction inside it), so the worker can call them inside its own
// commit transaction; the store then nests a savepoint rather than a new transaction.
import { drizzle, type NodePgDatabase } from 'drizzle-orm/node-postgres';
import type pg from 'pg';
import * as schema from './schema.js';

export type StoreSchema = typeof schema;

/** The database: drizzle over a pg Pool (or a single client), with the raw client at `$client`. */
export type StoreDb = NodePgDatabase<StoreSchema> & { $client: pg.Pool | pg.PoolClient | pg.Client };

/** A transaction opened with `db.transaction(...)`. */
export type StoreTx = Parameters<Parameters<StoreDb['transaction']>[0]>[0];

/** Either; the store's writes run in a transaction of their own or a savepoint of the caller's. */
export type Executor = StoreDb | StoreTx;

/** Wraps a pg Pool (or client) as the store's drizzle database. */
export function createStoreDb(client: pg.Pool | pg.PoolClient | pg.Client): StoreDb {
  return drizzle({ client, schema });
}
