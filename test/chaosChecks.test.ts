// The chaos suite's checks must be able to fail: each property is violated on purpose
// here and must be reported.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AUDIT_SQL, checkGatedCalls, checkRun, duplicateUuids, promptsOutOfOrder, type CliRun } from '../src/chaos/checks.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

let t: TestDatabase;
let client: pg.Client;
let convId: string;
const turnIds: string[] = [];

const prompt = (turn: number) => `#fake {}\nchaos c1 turn ${turn}`;
const run = (turn: number, startedAt: number, history: number[]): CliRun => ({
  event: 'start',
  pid: 1,
  prompt: prompt(turn),
  startedAt,
  history: history.map(prompt),
});
const goodLog = (): CliRun[] => [run(1, 1, []), run(2, 2, [1]), run(3, 3, [1, 2])];

beforeEach(async () => {
  t = await createTestDatabase();
  client = new pg.Client({ connectionString: t.url });
  await client.connect();
  await client.query(AUDIT_SQL);
  convId = randomUUID();
  await client.query("insert into conversations (id, external_id) values ($1, 'chaos-1')", [convId]);
  turnIds.length = 0;
  for (let seq = 1; seq <= 3; seq++) {
    const id = randomUUID();
    turnIds.push(id);
    await client.query("insert into turns (id, conversation_id, seq, prompt, status) values ($1, $2, $3, $4, 'running')", [id, convId, seq, prompt(seq)]);
    await client.query("update turns set status = 'succeeded', finished_at = now() where id = $1", [id]);
  }
});
afterEach(async () => {
  await client.end();
  await t.drop();
});

describe('chaos checks', () => {
  it('a clean run has no violation', async () => {
    const r = await checkRun(client, goodLog());
    expect(r.violations).toEqual([]);
    expect(r.succeeded).toBe(3);
  });

  it('reports a lost turn', async () => {
    await client.query("update turns set status = 'queued' where id = $1", [turnIds[2]]);
    const r = await checkRun(client, goodLog());
    expect(r.lost).toBe(1);
    expect(r.violations.find((v) => v.property === 'lost')?.turnIds).toEqual([turnIds[2]]);
  });

  it('reports a turn committed twice', async () => {
    await client.query("update turns set status = 'running' where id = $1", [turnIds[0]]);
    await client.query("update turns set status = 'succeeded' where id = $1", [turnIds[0]]);
    expect((await checkRun(client, goodLog())).doubleCommitted).toBe(1);
  });

  it('reports a turn that ran before an earlier one, or saw a later one', async () => {
    expect((await checkRun(client, [run(2, 1, []), run(1, 2, []), run(3, 3, [1, 2])])).outOfOrder).toBeGreaterThan(0);
    expect((await checkRun(client, [run(1, 1, [2]), run(2, 2, [1]), run(3, 3, [1, 2])])).outOfOrder).toBe(1);
  });

  it('reports a run that did not receive an earlier committed turn', async () => {
    expect((await checkRun(client, [run(1, 1, []), run(2, 2, [1]), run(3, 3, [2])])).historyGaps).toBe(1);
  });

  it('reports a gap in stored session chunks and a lease still held', async () => {
    await client.query("insert into sessions (conversation_id, session_id, line_count, byte_count) values ($1, 's1', 4, 40)", [convId]);
    const chunk = "insert into session_chunks (conversation_id, session_id, first_line, line_count, byte_offset, byte_len, attempt, codec, data) values ($1, 's1', $2, 2, $3, 20, '1', 'identity', '\\x00'::bytea)";
    await client.query(chunk, [convId, 0, 0]);
    await client.query(chunk, [convId, 3, 20]);
    await client.query("update conversations set lease_owner = 'w' where id = $1", [convId]);
    const r = await checkRun(client, goodLog());
    expect(r.sessionGaps).toBe(1);
    expect(r.leasesHeld).toBe(1);
  });

  it('reports a gated call that ran twice, one that ran without an allow (with how its gate ended), and an approval left pending', async () => {
    const approve = (toolUseId: string, status: string) =>
      client.query("insert into approvals (tenant_id, conversation_id, turn_id, tool_use_id, tool_name, input, status) values ('default', $1, $2, $3, 'Bash', '{}', $4)", [convId, turnIds[0], toolUseId, status]);
    await approve('toolu_allowed', 'allowed');
    await approve('toolu_twice', 'allowed');
    await approve('toolu_denied', 'denied');
    await approve('toolu_waiting', 'pending');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'agentq-chaoschecks-'));
    try {
      const log = path.join(dir, 'gated.log');
      writeFileSync(log, ['toolu_allowed', 'toolu_twice', 'toolu_twice', 'toolu_denied', 'toolu_unasked'].join('\n') + '\n');
      const gate: CliRun = { event: 'gate', pid: 42, toolUseId: 'toolu_unasked', decision: 'none', hook: { status: null, signal: 'SIGKILL' } };
      const r = await checkGatedCalls(client, log, [gate]);
      expect(r.ran).toBe(5);
      expect(r.approvals).toEqual({ allowed: 2, denied: 1, pending: 1 });
      const by = (p: string) => r.violations.find((v) => v.property === p);
      expect(by('gatedRanTwice')?.detail).toContain('toolu_twice');
      const unallowed = by('gatedRanUnallowed')?.detail ?? '';
      expect(unallowed).toContain('toolu_denied [gate: no record; approval: denied]');
      expect(unallowed).toContain('toolu_unasked [gate: none {"status":null,"signal":"SIGKILL"} (pid 42); approval: none]');
      expect(unallowed).not.toContain('toolu_allowed');
      expect(by('approvalsPending')?.turnIds).toEqual([turnIds[0]]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('counts session entries stored twice', () => {
    expect(duplicateUuids('{"uuid":"a"}\n{"uuid":"b"}\n{"uuid":"a"}\n')).toBe(1);
    expect(duplicateUuids('{"uuid":"a"}\n{"type":"x"}\n')).toBe(0);
  });

  it("counts a stored prompt of an earlier turn after a later turn's (a stale run wrote it), not a retry repeating its own", () => {
    const user = (turn: number, prefix = '') => JSON.stringify({ type: 'user', message: { role: 'user', content: `${prefix}#fake {}\nchaos c2 turn ${turn}` } });
    const reply = (turn: number) => JSON.stringify({ type: 'assistant', message: { content: [{ type: 'text', text: `chaos c2 turn ${turn - 3}` }] } });
    const inOrder = [user(1), reply(1), user(2), user(2, 'Continue from where you left off.\n\n'), reply(2), user(3), reply(3)].join('\n');
    expect(promptsOutOfOrder(inOrder)).toBe(0);
    expect(promptsOutOfOrder([inOrder, user(2), reply(2)].join('\n'))).toBe(1);
  });
});
