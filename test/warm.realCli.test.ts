// Warm conversations with the REAL Claude Code CLI against the mock model: three turns on
// one kept process (turns 2 and 3 record `warm_turn`: they ran on the process turn 1 started), each turn's request
// carries the whole history, and after the worker stops (the process and lease let go) a
// cold turn on a fresh worker resumes the committed session with every warm turn in it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createStoreDb } from '../src/store/db.js';
import { getSessionHead } from '../src/store/sessions.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { realCliMachine } from './helpers/realCli.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;
let config: Config;

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  config = realCliMachine(t.env, t.root, 'worker', mock.url, { AGENTQ_WARM_IDLE_MS: '60000' });
  client = createClient(t.config);
});
afterAll(async () => {
  await stopWorkers();
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

/** Whether the turn ran on a kept process (the attempt records a `warm_turn` event), not on a CLI it started. */
async function ranWarm(turnId: string): Promise<boolean> {
  const r = await t.database.pool.query<{ n: string }>(`select count(*) as n from turn_events where turn_id = $1 and type = 'agentq' and payload::jsonb->>'subtype' = 'warm_turn'`, [turnId]);
  return Number(r.rows[0]!.n) > 0;
}
const lastMain = () => JSON.stringify(mock.mainRequests().at(-1)?.body?.messages ?? []);

describe('warm conversations with the real CLI', () => {
  it('three turns run on one CLI process, and the committed session resumes cold with all of them', async () => {
    expect(config.claudePath).toMatch(/claude-code/);
    const w = await startWorker(config, { concurrency: 1 });
    const prompts = ['warm one: remember pelican', 'warm two: remember walrus', 'warm three: and heron'];
    const sessionIds = new Set<string | null>();
    const db = createStoreDb(t.database.pool);
    const committed: number[] = [];
    const turnIds: string[] = [];
    for (const prompt of prompts) {
      const { turnId } = await client.enqueueTurn({ conversationId: 'real-warm', prompt });
      turnIds.push(turnId);
      const done = await client.waitForTurn(turnId, 60_000);
      expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
      const turn = (await client.getTurn(turnId))!;
      sessionIds.add(turn.sessionId);
      // The CLI writes a turn's lines after its result: the commit waited for them, so each
      // commit holds the whole session so far (nothing left uncommitted for the next turn).
      const conv = await t.database.pool.query<{ id: string }>('select id from conversations where external_id = $1', ['real-warm']);
      const head = (await getSessionHead(db, conv.rows[0]!.id, turn.sessionId!))!;
      expect(head.committedLineCount).toBe(head.lineCount);
      committed.push(head.committedLineCount);
    }
    expect(committed[1]).toBeGreaterThan(committed[0]!);
    expect(committed[2]).toBeGreaterThan(committed[1]!);
    // One CLI start for three turns.
    expect(await Promise.all(turnIds.map(ranWarm))).toEqual([false, true, true]);
    expect([...sessionIds]).toHaveLength(1);
    for (const p of prompts) expect(lastMain()).toContain(p);
    const turns = (await client.getConversation('real-warm'))!.turns;
    // One result per turn, each turn's own (the CLI's running cost is split per turn).
    for (const turn of turns) expect(turn.result).toMatch(/mock reply/);

    await w.stop();
    await startWorker(config, { concurrency: 1 });
    const { turnId } = await client.enqueueTurn({ conversationId: 'real-warm', prompt: 'cold four: list the birds', options: { warm: false } });
    expect((await client.waitForTurn(turnId, 60_000)).status).toBe('succeeded');
    expect(await ranWarm(turnId)).toBe(false);
    for (const p of [...prompts, 'cold four']) expect(lastMain()).toContain(p);
  }, 120_000);
});
