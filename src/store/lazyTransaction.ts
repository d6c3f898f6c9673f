// A transaction that costs one round trip when it turns out to be one statement. Its
// BEGIN is held back until its first statement; if the caller declared that statement
// its last (`lastStatementNext`), it is sent alone, without BEGIN and COMMIT, and
// Postgres commits it by itself (a statement is atomic on its own). Otherwise BEGIN goes
// first and the rest is an ordinary transaction. The worker's commit is such a transaction:
// usually only its one call (agentq_commit_turn), sometimes a workspace or approval write
// before it. Measured here: BEGIN and COMMIT were ~0.8 and ~1.2 ms of a 7 ms commit.
import pg from 'pg';
import { createStoreDb, type StoreDb, type StoreTx } from './db.js';

type QueryConfig = string | { text: string };
type State = 'before' | 'held' | 'open' | 'alone';

const EMPTY_RESULT = { command: '', rowCount: 0, oid: 0, rows: [], fields: [] };
const textOf = (config: QueryConfig) => (typeof config === 'string' ? config : config.text).trim().toLowerCase();

/** The connection drizzle sees: holds its BEGIN back (see the top of this file). */
class HeldBegin {
  private state: State = 'before';
  private lastNext = false;

  constructor(private readonly client: pg.PoolClient) {}

  /** For the connection's next transaction. */
  reset(): void {
    this.state = 'before';
    this.lastNext = false;
  }

  lastStatementNext(): void {
    this.lastNext = true;
  }

  async query(config: QueryConfig, values?: unknown[]): Promise<unknown> {
    const text = textOf(config);
    switch (this.state) {
      case 'before':
        if (text !== 'begin') throw new Error(`lazyTransaction: expected BEGIN first, got ${text.slice(0, 40)}`);
        this.state = 'held';
        return EMPTY_RESULT;
      case 'held':
        // Nothing was sent: nothing to commit or roll back.
        if (text === 'commit' || text === 'rollback') return EMPTY_RESULT;
        if (this.lastNext) {
          this.state = 'alone';
          return this.client.query(config, values);
        }
        this.state = 'open';
        await this.client.query('BEGIN');
        return this.client.query(config, values);
      case 'alone':
        // The statement committed (or failed and rolled back) by itself.
        if (text === 'commit' || text === 'rollback') return EMPTY_RESULT;
        throw new Error('lazyTransaction: a statement after the one declared last');
      case 'open':
        return this.client.query(config, values);
    }
  }
}

/**
 * Runs `work` in a transaction (see the top of this file); `lastStatementNext()` declares
 * that the next statement `work` sends is its last. On a database that is not over a pool,
 * an ordinary transaction (the declaration then changes nothing).
 */
export async function lazyTransaction<T>(db: StoreDb, work: (tx: StoreTx, lastStatementNext: () => void) => Promise<T>): Promise<T> {
  const pool = db.$client;
  if (!(pool instanceof pg.Pool)) return db.transaction((tx) => work(tx, () => undefined));
  const client = await pool.connect();
  try {
    let held = heldOf.get(client);
    if (!held) {
      const conn = new HeldBegin(client);
      held = { conn, db: createStoreDb(conn as unknown as pg.PoolClient) };
      heldOf.set(client, held);
    }
    const { conn, db: heldDb } = held;
    conn.reset();
    return await heldDb.transaction((tx) => work(tx, () => conn.lastStatementNext()));
  } finally {
    client.release();
  }
}

/**
 * Each pooled connection's wrapper and drizzle database, made once: making a drizzle
 * database reads the whole schema (~60 µs here), which every commit and checkpoint would
 * otherwise pay. A connection runs one transaction at a time.
 */
const heldOf = new WeakMap<pg.PoolClient, { conn: HeldBegin; db: StoreDb }>();
