// lazyTransaction (src/store/lazyTransaction.ts): a transaction of one declared-last
// statement is that statement alone, one round trip; anything more is an ordinary
// transaction, atomic as before. Real Postgres.
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted } from '../src/bench/roundTrips.js';
import { lazyTransaction } from '../src/store/lazyTransaction.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
  await t.pool.query('create table lazy_t (k text primary key, v int not null)');
});
afterAll(async () => {
  await t.drop();
});

/** What `p` failed with, under drizzle's "Failed query" wrapper. */
async function failure(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    const e = err as Error & { cause?: Error };
    return e.cause?.message ?? e.message;
  }
  throw new Error('it did not fail');
}

const value = async (k: string) => (await t.pool.query<{ v: number }>('select v from lazy_t where k = $1', [k])).rows[0]?.v;
/** Connections of this database left inside a transaction. */
const idleInTransaction = async () =>
  Number((await t.pool.query<{ n: string }>("select count(*) n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%'")).rows[0]!.n);

describe('lazyTransaction', () => {
  it('a declared-last first statement is sent alone: one round trip, committed by itself', async () => {
    const { value: r, counts } = await counted(() =>
      lazyTransaction(t.db, async (tx, last) => {
        last();
        return (await tx.execute<{ v: number }>(sql`insert into lazy_t values ('alone', 1) returning v`)).rows[0]!.v;
      }),
    );
    expect(r).toBe(1);
    expect(counts.pg).toBe(1);
    expect(await value('alone')).toBe(1);
    expect(await idleInTransaction()).toBe(0);
  });

  it('with statements before the last: BEGIN, the statements, COMMIT, and a failure of the last undoes the first', async () => {
    const { counts } = await counted(() =>
      lazyTransaction(t.db, async (tx, last) => {
        await tx.execute(sql`insert into lazy_t values ('before', 1)`);
        last();
        await tx.execute(sql`update lazy_t set v = 2 where k = 'before'`);
      }),
    );
    expect(counts.pg).toBe(4);
    expect(await value('before')).toBe(2);
    expect(
      await failure(
        lazyTransaction(t.db, async (tx, last) => {
          await tx.execute(sql`insert into lazy_t values ('undone', 1)`);
          last();
          await tx.execute(sql`insert into lazy_t values ('before', 3)`);
        }),
      ),
    ).toMatch(/duplicate key/);
    expect(await value('undone')).toBeUndefined();
    expect(await idleInTransaction()).toBe(0);
  });

  it('a failing statement sent alone keeps nothing, and its connection is usable after', async () => {
    expect(
      await failure(
        lazyTransaction(t.db, async (tx, last) => {
          last();
          await tx.execute(sql`insert into lazy_t select 'partial-' || i, case when i < 3 then i else null end from generate_series(1, 5) i`);
        }),
      ),
    ).toMatch(/null value/);
    expect(Number((await t.pool.query<{ n: string }>("select count(*) n from lazy_t where k like 'partial-%'")).rows[0]!.n)).toBe(0);
    expect(await idleInTransaction()).toBe(0);
    const rounds = await Promise.all(Array.from({ length: 12 }, (_, i) => lazyTransaction(t.db, async (tx, last) => (last(), tx.execute(sql`select ${i}::int as i`)))));
    expect(rounds.map((r) => (r.rows[0] as { i: number }).i)).toEqual(Array.from({ length: 12 }, (_, i) => i));
  });

  it('without statements it sends nothing; without the declaration it is an ordinary transaction', async () => {
    expect((await counted(() => lazyTransaction(t.db, async () => 7))).counts.pg).toBe(0);
    const { counts } = await counted(() => lazyTransaction(t.db, (tx) => tx.execute(sql`insert into lazy_t values ('plain', 1)`)));
    expect(counts.pg).toBe(3);
    expect(await value('plain')).toBe(1);
  });

  it('a statement after the one declared last is refused', async () => {
    expect(
      await failure(
        lazyTransaction(t.db, async (tx, last) => {
          last();
          await tx.execute(sql`select 1`);
          await tx.execute(sql`select 2`);
        }),
      ),
    ).toMatch(/after the one declared last/);
    expect(await idleInTransaction()).toBe(0);
  });
});
