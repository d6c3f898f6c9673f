// The turn protocol's steps as PL/pgSQL functions (migrations/0012_protocol_functions.sql):
// called directly in SQL, and raced the way producers and workers race them: enqueues on a
// conversation whose turns commit meanwhile (no turn may wait for the reconciler), and a
// commit racing a lease takeover (exactly one wins).
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted } from '../src/bench/roundTrips.js';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import { SessionAttemptConflictError, SessionConflictError, StaleLeaseError } from '../src/errors.js';
import { DEFAULT_CODEC } from '../src/store/chunks.js';
import { createStoreDb } from '../src/store/db.js';
import { hydrateSession } from '../src/store/hydrate.js';
import { persistSession, readSessionDelta } from '../src/store/persist.js';
import { unfinishedTurnStatuses } from '../src/store/schema.js';
import { lazyTransaction } from '../src/store/lazyTransaction.js';
import { getSessionHeads } from '../src/store/sessions.js';
import { listConversations } from '../src/store/queries.js';
import { claimTurn, finishTurn, headTurn, insertTurn, pendingHeads, type CommitSession, type FinishInput } from '../src/store/turns.js';
import { turnBacklog } from '../src/queue/stats.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

interface EnqueueRow {
  created: boolean;
  is_head: boolean;
  turn: { id: string; seq: number; status: string; idempotency_key: string | null; cost_usd: string | null };
}

/** agentq_enqueue_turn in SQL: halt, set approvals, approvals, prompt, key. */
async function enqueueSql(external: string, o: { halt?: boolean; setApprovals?: boolean; approvals?: unknown; key?: string; delayMs?: number } = {}): Promise<EnqueueRow> {
  const r = await t.pool.query<EnqueueRow>('select * from agentq_enqueue_turn($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)', [
    'default',
    external,
    o.halt ?? null,
    o.setApprovals ?? false,
    o.approvals === undefined ? null : JSON.stringify(o.approvals),
    'a prompt',
    '{}',
    o.key ?? null,
    0,
    'api',
    o.delayMs ?? 0,
  ]);
  return r.rows[0]!;
}

async function conversation(external: string) {
  const r = await t.pool.query<{ id: string; next_seq: number; halt_on_failure: boolean; default_options: Record<string, unknown>; fencing_token: string }>(
    'select id, next_seq, halt_on_failure, default_options, fencing_token from conversations where external_id = $1',
    [external],
  );
  return r.rows[0]!;
}

async function claimSql(turnId: string, worker: string, leaseMs = 30_000, stealFrom: string | null = null) {
  const r = await t.pool.query<{ kind: string; reason: string | null; owner: string | null; takeover: boolean | null; turn: { attempts: number; status: string } | null; conversation: { fencing_token: number } | null }>(
    'select * from agentq_claim_turn($1, $2, $3, $4)',
    [turnId, worker, leaseMs, stealFrom],
  );
  return r.rows[0]!;
}

function finishInput(turnId: string, conversationId: string, fencingToken: number, workerId: string): FinishInput {
  return {
    turnId,
    conversationId,
    fence: { conversationId, fencingToken, workerId },
    status: 'succeeded',
    result: 'done',
    error: null,
    costUsd: 0.001,
    usage: null,
    numTurns: 1,
    toolCalls: 0,
    permissionDenials: [],
    sessionIdAfter: null,
    inputTokens: 1,
    outputTokens: 1,
  };
}

/**
 * How much `call`, made on `client`, moved a counter of `table` in the cumulative
 * statistics (pg_stat_user_tables): a backend sends its counts when idle, and at once
 * after pg_stat_force_next_flush().
 */
async function statDelta(client: pg.PoolClient, table: string, counter: 'reads' | 'updates', call: () => Promise<unknown>): Promise<number> {
  const column = counter === 'reads' ? 'coalesce(idx_tup_fetch, 0) + seq_tup_read' : 'n_tup_upd';
  const read = async () => {
    await client.query('select pg_stat_force_next_flush()');
    const r = await client.query<{ n: string }>(`select ${column} as n from pg_stat_user_tables where relname = $1`, [table]);
    return Number(r.rows[0]!.n);
  };
  await client.query("set stats_fetch_consistency = 'none'");
  const before = await read();
  await call();
  return (await read()) - before;
}

describe('agentq_enqueue_turn, in SQL', () => {
  it('creates the conversation, numbers its turns and says which is the head', async () => {
    const first = await enqueueSql('sql-a');
    const second = await enqueueSql('sql-a');
    expect([first.created, first.is_head, first.turn.seq, first.turn.status]).toEqual([true, true, 1, 'queued']);
    expect([second.created, second.is_head, second.turn.seq]).toEqual([true, false, 2]);
    expect((await conversation('sql-a')).next_seq).toBe(3);
  });

  it('an idempotency key returns the same turn and changes nothing, even with other settings', async () => {
    const first = await enqueueSql('sql-b', { key: 'k', halt: false });
    const before = await conversation('sql-b');
    const again = await enqueueSql('sql-b', { key: 'k', halt: true, setApprovals: true, approvals: { tools: ['Bash'] } });
    expect(again.created).toBe(false);
    expect(again.turn.id).toBe(first.turn.id);
    expect(await conversation('sql-b')).toEqual(before);
  });

  it('sets and removes the approval policy and halt-on-failure only when told', async () => {
    await enqueueSql('sql-c', { setApprovals: true, approvals: { tools: ['Bash'] }, halt: true });
    expect(await conversation('sql-c')).toMatchObject({ default_options: { approvals: { tools: ['Bash'] } }, halt_on_failure: true });
    await enqueueSql('sql-c');
    expect(await conversation('sql-c')).toMatchObject({ default_options: { approvals: { tools: ['Bash'] } }, halt_on_failure: true });
    await enqueueSql('sql-c', { setApprovals: true, approvals: undefined, halt: false });
    expect(await conversation('sql-c')).toMatchObject({ default_options: {}, halt_on_failure: false });
  });

  it('racing enqueues on a new conversation with one key make one turn; without keys, one seq each', async () => {
    const keyed = await Promise.all(Array.from({ length: 8 }, () => enqueueSql('sql-d', { key: 'same' })));
    expect(new Set(keyed.map((r) => r.turn.id)).size).toBe(1);
    expect(keyed.filter((r) => r.created)).toHaveLength(1);
    const plain = await Promise.all(Array.from({ length: 8 }, () => enqueueSql('sql-e')));
    expect(plain.map((r) => r.turn.seq).sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(plain.filter((r) => r.is_head)).toHaveLength(1);
  });

  it('knows the same unfinished statuses as the code', async () => {
    for (const fn of ['agentq_enqueue_turn', 'agentq_claim_turn']) {
      const def = (await t.pool.query<{ def: string }>('select pg_get_functiondef($1::regproc) as def', [fn])).rows[0]!.def;
      expect(def).toContain(`e.status IN (${unfinishedTurnStatuses.map((s) => `'${s}'`).join(', ')})`);
    }
  });
});

describe('agentq_claim_turn, in SQL', () => {
  it('claims the head, refuses the rest with the reason, takes an expired lease over', async () => {
    expect((await claimSql('00000000-0000-4000-8000-000000000000', 'w1')).kind).toBe('done');
    const head = await enqueueSql('sql-f');
    const next = await enqueueSql('sql-f');
    const later = await enqueueSql('sql-g', { delayMs: 60_000 });
    expect((await claimSql(next.turn.id, 'w1')).kind).toBe('not_head');
    expect(await claimSql(later.turn.id, 'w1')).toMatchObject({ kind: 'later', reason: 'not due yet' });
    const claimed = await claimSql(head.turn.id, 'w1', 50);
    expect(claimed).toMatchObject({ kind: 'claimed', takeover: false, turn: { attempts: 1, status: 'running' }, conversation: { fencing_token: 1 } });
    expect(await claimSql(head.turn.id, 'w2')).toMatchObject({ kind: 'later', reason: 'conversation leased by w1' });
    await t.pool.query("update conversations set lease_expires_at = now() - interval '1 second' where external_id = 'sql-f'");
    expect(await claimSql(head.turn.id, 'w2')).toMatchObject({ kind: 'claimed', takeover: true, turn: { attempts: 2 }, conversation: { fencing_token: 2 } });
  });

  it('a warm lease is taken by its owner or stolen from the owner named, by nobody else', async () => {
    const turn = await enqueueSql('sql-h');
    await t.pool.query("update conversations set lease_owner = 'w1', lease_warm = true, lease_expires_at = now() + interval '1 minute', fencing_token = 7 where external_id = 'sql-h'");
    expect(await claimSql(turn.turn.id, 'w2')).toMatchObject({ kind: 'warm', owner: 'w1' });
    expect(await claimSql(turn.turn.id, 'w2', 30_000, 'w3')).toMatchObject({ kind: 'warm', owner: 'w1' });
    const stolen = await claimSql(turn.turn.id, 'w2', 30_000, 'w1');
    expect(stolen).toMatchObject({ kind: 'claimed', conversation: { fencing_token: 8 } });
  });

  it('through claimTurn: the rows come back as drizzle gives them', async () => {
    const { turn } = await insertTurn(t.db, { externalId: 'ts-a', prompt: 'p', options: { a: 1 }, priority: 3, delayMs: 0, source: 'api' });
    expect(turn.runAt).toBeInstanceOf(Date);
    expect(turn.options).toEqual({ a: 1 });
    const claim = await claimTurn(t.db, { turnId: turn.id, workerId: 'w1', leaseMs: 30_000 });
    if (claim.kind !== 'claimed') throw new Error(claim.kind);
    expect(claim.turn.startedAt).toBeInstanceOf(Date);
    expect(claim.conversation.leaseExpiresAt!.getTime()).toBeGreaterThan(Date.now());
    expect(claim.conversation.costUsd).toBe('0.000000');
    expect(typeof claim.conversation.fencingToken).toBe('number');
    expect(claim.workspaceSha256).toBeNull();
    expect(claim.sessionHeads).toBeUndefined();
  });

  it('returns the heads of the session the attempt resumes first, as getSessionHeads reads them', async () => {
    const { turn } = await insertTurn(t.db, { externalId: 'ts-heads', prompt: 'p', options: {}, priority: 0, delayMs: 0, source: 'api' });
    const sid = '5b0c1a52-7d1e-4f7b-9a53-1c1d9b0e6f10';
    for (const id of [sid, `${sid}/subagents/agent-a1`, '0d7c2b9e-2f5e-4b8a-8c1e-6c0f3a7b9d21']) {
      await t.pool.query('insert into sessions (conversation_id, session_id, line_count, byte_count) values ($1, $2, 3, 300)', [turn.conversationId, id]);
    }
    await t.pool.query('update conversations set session_id = $1 where id = $2', [sid, turn.conversationId]);
    const claim = await claimTurn(t.db, { turnId: turn.id, workerId: 'w1', leaseMs: 30_000 });
    if (claim.kind !== 'claimed') throw new Error(claim.kind);
    const read = await getSessionHeads(t.db, turn.conversationId, sid);
    expect(claim.sessionHeads).toEqual({ sessionId: sid, ...read });
    expect(claim.sessionHeads?.subagents.map((h) => h.sessionId)).toEqual([`${sid}/subagents/agent-a1`]);
    expect(claim.sessionHeads?.head?.updatedAt).toBeInstanceOf(Date);
  });
});

describe('agentq_finish_turn, through finishTurn', () => {
  it('stores the events it is given with the turn, what jsonb refuses replaced, once even when called again', async () => {
    const { turn } = await insertTurn(t.db, { externalId: 'finish-events', prompt: 'p', options: {}, priority: 0, delayMs: 0, source: 'api' });
    const claim = await claimTurn(t.db, { turnId: turn.id, workerId: 'w', leaseMs: 30_000 });
    if (claim.kind !== 'claimed') throw new Error(claim.kind);
    const events = [
      { seq: 1, type: 'system', payload: '{"a":1}' },
      { seq: 2, type: 'odd\ud800', payload: 'nul\u0000here' },
    ];
    const input = { ...finishInput(turn.id, claim.conversation.id, claim.fencingToken, 'w'), events: { attempt: claim.attempt, list: events } };
    await t.db.transaction((tx) => finishTurn(tx, input));
    const stored = await t.pool.query<{ attempt: number; seq: number; type: string; payload: string }>('select attempt, seq, type, payload from turn_events where turn_id = $1 order by seq', [turn.id]);
    expect(stored.rows).toEqual([
      { attempt: 1, seq: 1, type: 'system', payload: '{"a":1}' },
      { attempt: 1, seq: 2, type: 'odd\uFFFD', payload: 'nul\uFFFDhere' },
    ]);
    // A stale fence stores none of them.
    const { turn: other } = await insertTurn(t.db, { externalId: 'finish-events-stale', prompt: 'p', options: {}, priority: 0, delayMs: 0, source: 'api' });
    const c2 = await claimTurn(t.db, { turnId: other.id, workerId: 'w', leaseMs: 30_000 });
    if (c2.kind !== 'claimed') throw new Error(c2.kind);
    const stale = { ...finishInput(other.id, c2.conversation.id, c2.fencingToken - 1, 'w'), events: { attempt: 1, list: events } };
    await expect(t.db.transaction((tx) => finishTurn(tx, stale))).rejects.toBeInstanceOf(StaleLeaseError);
    expect((await t.pool.query('select 1 from turn_events where turn_id = $1', [other.id])).rowCount).toBe(0);
  });
});

describe('agentq_commit_turn, through finishTurn with the session', () => {
  const line = (i: number) => `${JSON.stringify({ type: 'user', n: i, text: 'x'.repeat(40 + i) })}\n`;
  const sid = '9a1f6c2e-3b4d-4e5f-8a6b-7c8d9e0f1a2b';
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'agentq-commit-fn-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function claimed(external: string) {
    const { turn } = await insertTurn(t.db, { externalId: external, prompt: 'p', options: {}, priority: 0, delayMs: 0, source: 'api' });
    const claim = await claimTurn(t.db, { turnId: turn.id, workerId: 'w', leaseMs: 30_000 });
    if (claim.kind !== 'claimed') throw new Error(claim.kind);
    return { turn, claim };
  }
  function commitInput(c: Awaited<ReturnType<typeof claimed>>, session: CommitSession): FinishInput {
    const base = finishInput(c.turn.id, c.claim.conversation.id, c.claim.fencingToken, 'w');
    return { ...base, conversationSessionId: session.sessionId, sessionIdAfter: session.sessionId, events: { attempt: c.claim.attempt, list: [] }, session };
  }
  const headOf = async (conversationId: string, sessionId = sid) => (await getSessionHeads(t.db, conversationId, sessionId)).head!;
  const storedBytes = async (conversationId: string) => {
    const out = path.join(dir, `hydrated-${randomUUID()}`);
    await hydrateSession(t.db, { conversationId, sessionId: sid, cwd: dir, configDir: out });
    return readFile(sessionFilePath(out, dir, sid));
  };

  it('appends the last lines after the known head, commits every stored line and ends the turn: three round trips with BEGIN and COMMIT', async () => {
    const file = path.join(dir, 'a.jsonl');
    await writeFile(file, Array.from({ length: 30 }, (_, i) => line(i)).join('') + '{"partial":');
    const c = await claimed('commit-fn-a');
    // Small chunks: several in the one call, each sliced from the concatenated bytes.
    const lines = await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20, chunkBytes: 500 }, { lineCount: 0, byteCount: 0, tailSha256: null }, 1 << 20);
    expect(lines!.chunks.length).toBeGreaterThan(3);
    const { counts } = await counted(() =>
      t.db.transaction((tx) => finishTurn(tx, commitInput(c, { sessionId: sid, forkedFrom: null, lines, codec: DEFAULT_CODEC, subagentIds: [] }))),
    );
    expect(counts.pg).toBe(3);
    const head = await headOf(c.claim.conversation.id);
    expect([head.lineCount, head.committedLineCount, head.tailSha256, head.committedTailSha256]).toEqual([30, 30, lines!.tailSha256, lines!.tailSha256]);
    const whole = (await readFile(file)).subarray(0, head.byteCount);
    expect((await storedBytes(c.claim.conversation.id)).equals(whole)).toBe(true);
    const turnRow = await t.pool.query<{ status: string }>('select status from turns where id = $1', [c.turn.id]);
    expect(turnRow.rows[0]!.status).toBe('succeeded');
    const conv = await t.pool.query<{ session_id: string; lease_owner: string | null }>('select session_id, lease_owner from conversations where id = $1', [c.claim.conversation.id]);
    expect(conv.rows[0]).toEqual({ session_id: sid, lease_owner: null });

    // The next turn: lines after the committed head, read from it, through the same digest check.
    await writeFile(file, Array.from({ length: 35 }, (_, i) => line(i)).join(''));
    const next = await claimed('commit-fn-a');
    const more = await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20 }, head, 1 << 20);
    await t.db.transaction((tx) => finishTurn(tx, commitInput(next, { sessionId: sid, forkedFrom: null, lines: more, codec: DEFAULT_CODEC, subagentIds: [] })));
    expect((await storedBytes(c.claim.conversation.id)).equals(await readFile(file))).toBe(true);
    expect((await headOf(c.claim.conversation.id)).committedLineCount).toBe(35);
  });

  it('a head that is no longer where the caller read it from refuses the call: nothing is written, the turn and lease stay', async () => {
    const file = path.join(dir, 'b.jsonl');
    await writeFile(file, line(1) + line(2));
    const c = await claimed('commit-fn-b');
    const lines = await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20 }, { lineCount: 0, byteCount: 0, tailSha256: null }, 1 << 20);
    // A write this attempt never heard back from moved the head.
    await persistSession(t.db, { conversationId: c.claim.conversation.id, sessionId: sid, filePath: file, attempt: c.claim.attempt, maxLineBytes: 1 << 20 });
    const input = commitInput(c, { sessionId: sid, forkedFrom: null, lines, codec: DEFAULT_CODEC, subagentIds: [] });
    await expect(t.db.transaction((tx) => finishTurn(tx, input))).rejects.toBeInstanceOf(SessionConflictError);
    const head = await headOf(c.claim.conversation.id);
    expect([head.lineCount, head.committedLineCount]).toEqual([2, 0]);
    const rows = await t.pool.query<{ status: string; lease_owner: string | null }>(
      'select t.status, c.lease_owner from turns t join conversations c on c.id = t.conversation_id where t.id = $1',
      [c.turn.id],
    );
    expect(rows.rows[0]).toEqual({ status: 'running', lease_owner: 'w' });
    // Nothing new to append: the call commits what is stored.
    await t.db.transaction((tx) => finishTurn(tx, commitInput(c, { sessionId: sid, forkedFrom: null, lines: undefined, codec: DEFAULT_CODEC, subagentIds: [] })));
    expect((await headOf(c.claim.conversation.id)).committedLineCount).toBe(2);
  });

  it('alone, without a transaction around it, is one round trip; with the fence lost it fails and keeps none of its lines', async () => {
    const file = path.join(dir, 'alone.jsonl');
    await writeFile(file, line(1) + line(2));
    const from = { lineCount: 0, byteCount: 0, tailSha256: null };
    const c = await claimed('commit-fn-alone');
    const lines = await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20 }, from, 1 << 20);
    const { counts } = await counted(() => finishTurn(t.db, commitInput(c, { sessionId: sid, forkedFrom: null, lines, codec: DEFAULT_CODEC, subagentIds: [] })));
    expect(counts.pg).toBe(1);
    expect((await headOf(c.claim.conversation.id)).committedLineCount).toBe(2);
    // A worker whose lease was taken over: its call appends nothing, commits nothing, ends nothing.
    const stale = await claimed('commit-fn-alone-stale');
    await t.db.execute(sql`update conversations set lease_expires_at = now() - interval '1 millisecond' where id = ${stale.claim.conversation.id}::uuid`);
    const takeover = await claimTurn(t.db, { turnId: stale.turn.id, workerId: 'new', leaseMs: 30_000 });
    expect(takeover.kind).toBe('claimed');
    const input = commitInput(stale, { sessionId: sid, forkedFrom: null, lines, codec: DEFAULT_CODEC, subagentIds: [] });
    await expect(finishTurn(t.db, input)).rejects.toBeInstanceOf(StaleLeaseError);
    expect((await getSessionHeads(t.db, stale.claim.conversation.id, sid)).head).toBeUndefined();
    const rows = await t.pool.query<{ status: string; lease_owner: string | null }>(
      'select t.status, c.lease_owner from turns t join conversations c on c.id = t.conversation_id where t.id = $1',
      [stale.turn.id],
    );
    expect(rows.rows[0]).toEqual({ status: 'running', lease_owner: 'new' });
  });

  it("another attempt's lines after this attempt's refuse the commit (SessionAttemptConflictError), nothing changed", async () => {
    const file = path.join(dir, 'c.jsonl');
    await writeFile(file, line(1));
    const c = await claimed('commit-fn-c');
    const conversationId = c.claim.conversation.id;
    await persistSession(t.db, { conversationId, sessionId: sid, filePath: file, attempt: c.claim.attempt, maxLineBytes: 1 << 20 });
    await writeFile(file, line(1) + line(2));
    await persistSession(t.db, { conversationId, sessionId: sid, filePath: file, attempt: 'another', maxLineBytes: 1 << 20 });
    const input = commitInput(c, { sessionId: sid, forkedFrom: null, lines: undefined, codec: DEFAULT_CODEC, subagentIds: [] });
    await expect(t.db.transaction((tx) => finishTurn(tx, input))).rejects.toBeInstanceOf(SessionAttemptConflictError);
    const head = await headOf(conversationId);
    expect([head.lineCount, head.committedLineCount]).toEqual([2, 0]);
    expect((await t.pool.query<{ status: string }>('select status from turns where id = $1', [c.turn.id])).rows[0]!.status).toBe('running');
  });

  it('commits the subagent transcripts it names, with the session', async () => {
    const file = path.join(dir, 'd.jsonl');
    await writeFile(file, line(1));
    const c = await claimed('commit-fn-d');
    const conversationId = c.claim.conversation.id;
    const sub = `${sid}/subagents/agent-a1`;
    await persistSession(t.db, { conversationId, sessionId: sub, filePath: file, attempt: c.claim.attempt, maxLineBytes: 1 << 20 });
    const lines = await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20 }, { lineCount: 0, byteCount: 0, tailSha256: null }, 1 << 20);
    await t.db.transaction((tx) => finishTurn(tx, commitInput(c, { sessionId: sid, forkedFrom: null, lines, codec: DEFAULT_CODEC, subagentIds: [sub] })));
    expect((await headOf(conversationId, sub)).committedLineCount).toBe(1);
    expect((await headOf(conversationId)).committedLineCount).toBe(1);
  });

  it('writes new lines after a fully committed head committed, each chunk and the head once (migration 0019); after a checkpoint it commits every line as before', async () => {
    const client = await t.pool.connect();
    const updates = (table: string, call: () => Promise<unknown>) => statDelta(client, table, 'updates', call);
    const db = createStoreDb(client);
    try {
      const file = path.join(dir, 'direct.jsonl');
      await writeFile(file, Array.from({ length: 12 }, (_, i) => line(i)).join(''));
      const c = await claimed('commit-fn-direct');
      const conversationId = c.claim.conversation.id;
      const from = { lineCount: 0, byteCount: 0, tailSha256: null };
      const lines = await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20, chunkBytes: 300 }, from, 1 << 20);
      expect(lines!.chunks.length).toBeGreaterThan(2);
      const commit = () => finishTurn(db, commitInput(c, { sessionId: sid, forkedFrom: null, lines, codec: DEFAULT_CODEC, subagentIds: [] }));
      let sessionUpdates = 0;
      const chunkUpdates = await updates('session_chunks', async () => (sessionUpdates = await updates('sessions', commit)));
      // Before 0019: every chunk updated to committed, and the head a second time.
      expect(chunkUpdates, 'session_chunks rows updated').toBe(0);
      expect(sessionUpdates, 'sessions rows updated').toBe(1);
      const head = await headOf(conversationId);
      expect([head.lineCount, head.committedLineCount, head.committedTailSha256]).toEqual([12, 12, lines!.tailSha256]);
      expect((await t.pool.query('select 1 from session_chunks where conversation_id = $1 and not committed', [conversationId])).rowCount).toBe(0);
      expect((await storedBytes(conversationId)).equals(await readFile(file))).toBe(true);

      // The next turn checkpoints some lines (stored uncommitted), then commits the rest: all commit.
      const next = await claimed('commit-fn-direct');
      await writeFile(file, Array.from({ length: 15 }, (_, i) => line(i)).join(''));
      await persistSession(t.db, { conversationId, sessionId: sid, filePath: file, attempt: next.claim.attempt, maxLineBytes: 1 << 20 });
      expect((await headOf(conversationId)).committedLineCount).toBe(12);
      await writeFile(file, Array.from({ length: 18 }, (_, i) => line(i)).join(''));
      const more = await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20 }, await headOf(conversationId), 1 << 20);
      await finishTurn(db, commitInput(next, { sessionId: sid, forkedFrom: null, lines: more, codec: DEFAULT_CODEC, subagentIds: [] }));
      const after = await headOf(conversationId);
      expect([after.lineCount, after.committedLineCount]).toEqual([18, 18]);
      expect((await t.pool.query('select 1 from session_chunks where conversation_id = $1 and not committed', [conversationId])).rowCount).toBe(0);
      expect((await storedBytes(conversationId)).equals(await readFile(file))).toBe(true);
    } finally {
      client.release();
    }
  });

  it('reads nothing past its cap: the caller stores many new lines under the lock instead', async () => {
    const file = path.join(dir, 'e.jsonl');
    await writeFile(file, Array.from({ length: 50 }, (_, i) => line(i)).join(''));
    const from = { lineCount: 0, byteCount: 0, tailSha256: null };
    expect(await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20, chunkBytes: 256 }, from, 1000)).toBeUndefined();
    expect((await readSessionDelta({ sessionId: sid, filePath: file, maxLineBytes: 1 << 20, chunkBytes: 256 }, from, 1 << 20))!.chunks.length).toBeGreaterThan(4);
  });
});

describe('a long conversation', () => {
  it("enqueue and claim read its unfinished turns, not its 2,000 finished ones (the partial index of migration 0018)", async () => {
    const first = await enqueueSql('long');
    const conv = await conversation('long');
    await t.pool.query("update turns set status = 'succeeded', finished_at = now() where id = $1", [first.turn.id]);
    await t.pool.query("insert into turns (conversation_id, seq, prompt, status) select $1, g, 'p', 'succeeded' from generate_series($2::int, $2::int + 1999) g", [conv.id, conv.next_seq]);
    await t.pool.query('update conversations set next_seq = next_seq + 2000 where id = $1', [conv.id]);
    const client = await t.pool.connect();
    try {
      const turnsRead = (call: () => Promise<unknown>) => statDelta(client, 'turns', 'reads', call);
      let turnId = '';
      const enqueued = await turnsRead(async () => {
        const r = await client.query<EnqueueRow>('select * from agentq_enqueue_turn($1, $2, null, false, null, $3, $4, null, 0, $5, 0)', ['default', 'long', 'p', '{}', 'api']);
        expect(r.rows[0]!.is_head).toBe(true);
        turnId = r.rows[0]!.turn.id;
      });
      const claimed = await turnsRead(async () => {
        const r = await client.query<{ kind: string }>('select * from agentq_claim_turn($1, $2, $3, null)', [turnId, 'w', 30_000]);
        expect(r.rows[0]!.kind).toBe('claimed');
      });
      // A scan of the conversation's history reads ~2,000.
      expect(enqueued, 'turns read by the enqueue').toBeLessThan(50);
      expect(claimed, 'turns read by the claim').toBeLessThan(50);
    } finally {
      client.release();
    }
  });
  it('every index of turns that holds status holds unfinished turns only, and the reads by status still read few turns (migration 0019)', async () => {
    // A turn's three writes (enqueue, claim, end) each change status, so each adds an entry
    // to every index of turns whose predicate the new row meets: a full index on status
    // would take every finished turn too.
    const idx = await t.pool.query<{ name: string; def: string; partial: boolean }>(
      "select c.relname as name, pg_get_indexdef(i.indexrelid) as def, i.indpred is not null as partial from pg_index i join pg_class c on c.oid = i.indexrelid where i.indrelid = 'turns'::regclass order by 1",
    );
    expect(idx.rows.filter((r) => !r.partial).map((r) => r.name).sort()).toEqual(['turns_conversation_seq_uq', 'turns_pkey']);
    for (const r of idx.rows.filter((x) => x.partial && x.name !== 'turns_idempotency_key_uq')) {
      expect(r.def, r.name).toMatch(/WHERE \(status = ANY \(ARRAY\[('(queued|running|awaiting_approval)'::text(, )?)+\]\)\)$/);
    }
    // Tenant 'plans': a conversation of 2,000 finished turns, one with a key, then its
    // queued head; other conversations hold 1,000 queued turns. A read through the wrong
    // index reads one of those thousands.
    const enqueue = (external: string, key: string | null) =>
      t.pool.query<EnqueueRow>('select * from agentq_enqueue_turn($1, $2, null, false, null, $3, $4, $5, 0, $6, 0)', ['plans', external, 'p', '{}', key, 'api']);
    const first = (await enqueue('plans-long', 'the-key')).rows[0]!;
    const convId = (await t.pool.query<{ id: string }>("select id from conversations where tenant_id = 'plans' and external_id = 'plans-long'")).rows[0]!.id;
    await t.pool.query("update turns set status = 'succeeded', finished_at = now() where id = $1", [first.turn.id]);
    await t.pool.query("insert into turns (conversation_id, seq, prompt, status) select $1, g, 'p', 'succeeded' from generate_series(2, 2001) g", [convId]);
    await t.pool.query('update conversations set next_seq = 2002 where id = $1', [convId]);
    await enqueue('plans-long', null);
    for (let i = 0; i < 100; i++) await enqueue(`plans-other-${i}`, null);
    await t.pool.query(
      "insert into turns (conversation_id, seq, prompt) select c.id, g, 'p' from conversations c, generate_series(2, 10) g where c.tenant_id = 'plans' and c.external_id like 'plans-other-%'",
    );
    await t.pool.query("update conversations set next_seq = 11 where tenant_id = 'plans' and external_id like 'plans-other-%'");
    await t.pool.query('analyze turns');
    const client = await t.pool.connect();
    const db = createStoreDb(client);
    try {
      const turnsRead = (call: () => Promise<unknown>) => statDelta(client, 'turns', 'reads', call);
      expect(await turnsRead(async () => expect((await headTurn(db, convId))?.seq).toBe(2002)), 'headTurn').toBeLessThan(50);
      for (const status of ['running', 'awaiting_approval', 'queued', 'idle'] as const) {
        const listed = await turnsRead(async () => {
          const items = await listConversations(db, { tenantId: 'plans', limit: 1, status });
          expect(items.map((i) => i.externalId)).toEqual(status === 'queued' ? ['plans-long'] : []);
        });
        // 101 conversations in the tenant: one head read each.
        expect(listed, `listing ${status}`).toBeLessThan(250);
      }
      const again = await turnsRead(async () => expect((await enqueue('plans-long', 'the-key')).rows[0]!.created).toBe(false));
      expect(again, 'an enqueue with a known key').toBeLessThan(50);
      // The reconciler's scan and the backlog count walk the due index (turns in history are not in it).
      const seen: { text: string; values: unknown[] }[] = [];
      const record = async (q: { text?: string; values?: unknown[] } | string, v?: unknown[]) => {
        seen.push(typeof q === 'string' ? { text: q, values: v ?? [] } : { text: q.text!, values: q.values ?? v ?? [] });
        return { rows: [], rowCount: 0, fields: [] };
      };
      await pendingHeads(createStoreDb({ query: record } as unknown as Parameters<typeof createStoreDb>[0]), 1000);
      await turnBacklog({ query: record } as never);
      expect(seen).toHaveLength(2);
      await client.query('set enable_seqscan = off');
      for (const q of seen) {
        const plan = (await client.query<{ 'QUERY PLAN': string }>(`explain ${q.text}`, q.values)).rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(plan, plan).toMatch(/turns_due_run_at_idx/);
      }
    } finally {
      client.release();
    }
  });
});

describe('races', () => {
  it('producers enqueue on one conversation while its turns commit: every turn is dispatched at once, by its enqueue or by the commit before it', async () => {
    const TURNS = Number(process.env.AGENTQ_RACE_TURNS ?? 10_000);
    // The queue a worker takes turns from, in dispatch order, and when each got there.
    const dispatched: string[] = [];
    const dispatchedAt = new Map<string, number>();
    const enqueuedAt = new Map<string, number>();
    const committedAt: number[] = [];
    let wake: (() => void) | undefined;
    const dispatch = (id: string) => {
      dispatched.push(id);
      dispatchedAt.set(id, performance.now());
      wake?.();
    };
    // The adversarial schedule: the conversation holds only its running turn, and the next
    // enqueue starts as that turn's commit starts, so the two meet at the conversation's lock
    // (an enqueue that judged "not the head" before the commit, with a commit that did not see
    // it, would leave the turn to the reconciler). Two producers take turns.
    const commitStarts: (() => void)[] = [];
    const commitStarting = () => new Promise<void>((resolve) => commitStarts.push(resolve));
    let enqueued = 0;
    let byEnqueue = 0;
    const enqueue = async () => {
      enqueued++;
      const r = await insertTurn(t.db, { externalId: 'race', prompt: 'p', options: {}, priority: 0, delayMs: 0, source: 'api' });
      enqueuedAt.set(r.turn.id, performance.now());
      if (r.isHead) {
        byEnqueue++;
        dispatch(r.turn.id);
      }
    };
    const producer = async (first: boolean) => {
      if (first) await enqueue();
      while (enqueued < TURNS) {
        await commitStarting();
        if (enqueued < TURNS) await enqueue();
      }
    };
    const worker = (async () => {
      let taken = 0;
      while (committedAt.length < TURNS) {
        if (taken === dispatched.length) {
          const woken = await new Promise<boolean>((resolve) => {
            wake = () => resolve(true);
            setTimeout(() => resolve(false), 2000).unref();
          });
          wake = undefined;
          // Nothing dispatched for 2 s: a turn waits for the reconciler.
          if (!woken && taken === dispatched.length) break;
          continue;
        }
        const id = dispatched[taken++]!;
        const claim = await claimTurn(t.db, { turnId: id, workerId: 'w', leaseMs: 30_000 });
        if (claim.kind !== 'claimed') throw new Error(`turn ${id} was dispatched but its claim said ${claim.kind}`);
        commitStarts.shift()?.();
        const next = await t.db.transaction((tx) => finishTurn(tx, finishInput(id, claim.conversation.id, claim.fencingToken, 'w')));
        committedAt.push(performance.now());
        if (next) dispatch(next.id);
      }
      // Let the producers end.
      enqueued = TURNS;
      for (const start of commitStarts.splice(0)) start();
    })();
    await Promise.all([producer(true), producer(false), worker]);
    const unfinished = await t.pool.query<{ n: string }>("select count(*) as n from turns t join conversations c on c.id = t.conversation_id where c.external_id = 'race' and t.status <> 'succeeded'");
    expect(Number(unfinished.rows[0]!.n)).toBe(0);
    expect(committedAt).toHaveLength(TURNS);
    expect(new Set(dispatched).size).toBe(TURNS);
    // The k-th turn could be dispatched once the turn before it committed and its own enqueue returned.
    const delays = dispatched.slice(1).map((id, k) => dispatchedAt.get(id)! - Math.max(committedAt[k]!, enqueuedAt.get(id)!));
    const worst = Math.max(...delays);
    console.log(`race: ${TURNS} turns; ${byEnqueue} dispatched by their enqueue, the rest by a commit; the largest delay from a commit to the next turn's dispatch: ${worst.toFixed(1)} ms`);
    expect(worst).toBeLessThanOrEqual(100);
  }, 600_000);

  it('a commit racing a lease takeover: exactly one wins', async () => {
    const wins = { commit: 0, takeover: 0 };
    for (let i = 0; i < 100; i++) {
      const { turn } = await insertTurn(t.db, { externalId: `takeover-${i}`, prompt: 'p', options: {}, priority: 0, delayMs: 0, source: 'api' });
      const first = await claimTurn(t.db, { turnId: turn.id, workerId: 'old', leaseMs: 30_000 });
      if (first.kind !== 'claimed') throw new Error(first.kind);
      // The old owner's lease runs out just as it commits.
      await t.db.execute(sql`update conversations set lease_expires_at = now() - interval '1 millisecond' where id = ${first.conversation.id}::uuid`);
      const [commit, takeover] = await Promise.allSettled([
        t.db.transaction((tx) => finishTurn(tx, finishInput(turn.id, first.conversation.id, first.fencingToken, 'old'))),
        claimTurn(t.db, { turnId: turn.id, workerId: 'new', leaseMs: 30_000 }),
      ]);
      if (takeover.status === 'rejected') throw takeover.reason;
      const committedFirst = commit.status === 'fulfilled';
      if (!committedFirst) expect(commit.reason).toBeInstanceOf(StaleLeaseError);
      expect(takeover.value.kind).toBe(committedFirst ? 'done' : 'claimed');
      const status = (await t.pool.query<{ status: string }>('select status from turns where id = $1', [turn.id])).rows[0]!.status;
      expect(status).toBe(committedFirst ? 'succeeded' : 'running');
      wins[committedFirst ? 'commit' : 'takeover']++;
    }
    console.log(`commit vs takeover, 100 races: the commit won ${wins.commit}, the takeover ${wins.takeover}`);
  });

  it('a commit sent alone (lazyTransaction) racing a lease takeover: exactly one wins, and a lost commit leaves no lines', async () => {
    const wins = { commit: 0, takeover: 0 };
    const file = path.join(tmpdir(), `agentq-race-alone-${randomUUID()}.jsonl`);
    await writeFile(file, `${JSON.stringify({ type: 'user', text: 'race' })}\n`);
    const sessionId = randomUUID();
    try {
      for (let i = 0; i < 60; i++) {
        const { turn } = await insertTurn(t.db, { externalId: `takeover-alone-${i}`, prompt: 'p', options: {}, priority: 0, delayMs: 0, source: 'api' });
        const first = await claimTurn(t.db, { turnId: turn.id, workerId: 'old', leaseMs: 30_000 });
        if (first.kind !== 'claimed') throw new Error(first.kind);
        await t.db.execute(sql`update conversations set lease_expires_at = now() - interval '1 millisecond' where id = ${first.conversation.id}::uuid`);
        const lines = await readSessionDelta({ sessionId, filePath: file, maxLineBytes: 1 << 20 }, { lineCount: 0, byteCount: 0, tailSha256: null }, 1 << 20);
        const input: FinishInput = {
          ...finishInput(turn.id, first.conversation.id, first.fencingToken, 'old'),
          conversationSessionId: sessionId,
          sessionIdAfter: sessionId,
          session: { sessionId, forkedFrom: null, lines, codec: DEFAULT_CODEC, subagentIds: [] },
        };
        const [commit, takeover] = await Promise.allSettled([
          lazyTransaction(t.db, (tx, last) => (last(), finishTurn(tx, input))),
          claimTurn(t.db, { turnId: turn.id, workerId: 'new', leaseMs: 30_000 }),
        ]);
        if (takeover.status === 'rejected') throw takeover.reason;
        const committedFirst = commit.status === 'fulfilled';
        if (!committedFirst) expect(commit.reason).toBeInstanceOf(StaleLeaseError);
        expect(takeover.value.kind).toBe(committedFirst ? 'done' : 'claimed');
        const head = (await getSessionHeads(t.db, first.conversation.id, sessionId)).head;
        expect(head?.committedLineCount).toBe(committedFirst ? 1 : undefined);
        wins[committedFirst ? 'commit' : 'takeover']++;
      }
    } finally {
      await rm(file, { force: true });
    }
    console.log(`commit sent alone vs takeover, 60 races: the commit won ${wins.commit}, the takeover ${wins.takeover}`);
  });
});
