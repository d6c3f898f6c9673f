// The benchmark's protocol floor (src/bench/protocolFloor.ts) does the durable steps it is
// said to do: each turn recorded before dispatch, claimed once with a new fencing token,
// run, and committed only under that token, before its job completes.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { Completions } from '../src/bench/completions.js';
import { ProtocolFloor } from '../src/bench/protocolFloor.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { REDIS_URL } from './helpers/agentq.js';

describe('protocol floor (benchmark)', () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });

  async function open(run: (conversation: string, prompt: string) => Promise<void>, concurrency = 2) {
    const t: TestDatabase = await createTestDatabase();
    cleanups.push(() => t.drop());
    const queueName = `floor-test-${randomBytes(6).toString('hex')}`;
    const completions = await Completions.open(queueName, REDIS_URL);
    cleanups.push(() => completions.close());
    const floor = await ProtocolFloor.open({ databaseUrl: t.url, redisUrl: REDIS_URL, queueName, concurrency, run });
    cleanups.push(() => floor.close());
    return { t, floor, completions };
  }

  it('records, claims, runs and commits every turn before its job completes', async () => {
    const ran: string[] = [];
    let statusSeenByRun: string | undefined;
    const db: { t?: TestDatabase } = {};
    const opened = await open(async (conversation, prompt) => {
      ran.push(`${conversation}:${prompt}`);
      const r = await db.t!.pool.query<{ status: string }>('select status from floor_turns where prompt = $1', [prompt]);
      statusSeenByRun = r.rows[0]?.status;
    });
    const t = (db.t = opened.t);
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push(await opened.floor.enqueue(`c${i % 2}`, `p${i}`));
    for (const id of ids) await opened.completions.wait(id, 20_000);
    expect(ran.sort()).toEqual(['c0:p0', 'c0:p2', 'c1:p1', 'c1:p3']);
    expect(statusSeenByRun).toBe('running');
    const rows = await t.pool.query<{ id: string; status: string; fencing: string }>('select id, status, fencing from floor_turns order by prompt');
    expect(rows.rows.map((r) => [r.id, r.status, r.fencing])).toEqual(ids.map((id) => [id, 'succeeded', '1']));
  });

  it('commits nothing when the fencing token moved on during the run', async () => {
    const db: { t?: TestDatabase } = {};
    const opened = await open(async (_conversation, prompt) => {
      // Another claimant took the turn meanwhile.
      await db.t!.pool.query(`update floor_turns set fencing = fencing + 1, owner = 'other' where prompt = $1`, [prompt]);
    });
    const t = (db.t = opened.t);
    const id = await opened.floor.enqueue('c', 'stolen');
    await expect(opened.completions.wait(id, 20_000)).rejects.toThrow(/ended stale/);
    const r = await t.pool.query<{ status: string }>('select status from floor_turns where id = $1', [id]);
    expect(r.rows[0]?.status).toBe('running');
  });
});
