// The Agent SDK adapter's append at a head it knows: one call to agentq_sdk_append
// (migrations/0015) instead of a transaction, and every way that head can be out of date
// sending the append down its full path with nothing lost, doubled or reordered. The SQL
// function is also called directly. Real Postgres.
import { createHash, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { counted } from '../src/bench/roundTrips.js';
import { SessionCorruptError } from '../src/errors.js';
import { SdkSessionBusyError } from '../src/sdk/errors.js';
import type { SdkSessionEntry } from '../src/sdk/entries.js';
import { holderConversationId } from '../src/sdk/keys.js';
import { KnownHeads } from '../src/sdk/knownHeads.js';
import { createSessionStore, type AgentqSessionStore } from '../src/sdk/sessionStore.js';
import { deleteConversation, findConversation } from '../src/store/conversations.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

let t: TestDatabase;
let store: AgentqSessionStore;

beforeAll(async () => {
  t = await createTestDatabase();
  store = createSessionStore({ db: t.db });
});
afterAll(async () => {
  await t.drop();
});

/** Statements `fn` sent (src/bench/roundTrips.ts: every pg query, BEGIN and COMMIT included). */
async function statements(fn: () => Promise<unknown>): Promise<number> {
  return (await counted(fn)).counts.pg;
}

const newKey = () => ({ projectKey: `fast-${randomUUID().slice(0, 8)}`, sessionId: randomUUID() });
const entry = (type: string, extra: Record<string, unknown> = {}): SdkSessionEntry => ({ type, uuid: randomUUID(), ...extra });
const batch = (n: number, tag: string) => Array.from({ length: n }, (_, i) => entry(i % 2 ? 'assistant' : 'user', { tag, i, text: 'x'.repeat(200) }));

async function holder(key: { projectKey: string; sessionId: string }): Promise<string> {
  const c = await findConversation(t.db, { externalId: holderConversationId(key.projectKey, key.sessionId) });
  return c!.id;
}

async function rows(sqlText: string, params: unknown[]): Promise<number> {
  const r = await t.pool.query<{ n: string }>(sqlText, params);
  return Number(r.rows[0]!.n);
}

describe('an append at the head the adapter left', () => {
  it('is one statement once the adapter has appended to the session, for the main transcript and a subpath', async () => {
    const key = newKey();
    const sub = { ...key, subpath: 'subagents/agent-1' };
    expect(await statements(() => store.append(key, batch(3, 'a')))).toBeGreaterThan(5);
    expect(await statements(() => store.append(key, batch(3, 'b')))).toBe(1);
    expect(await statements(() => store.append(key, batch(400, 'c')))).toBe(1);
    await store.append(sub, batch(2, 'a'));
    expect(await statements(() => store.append(sub, [...batch(2, 'b'), { type: 'agent_metadata', agentType: 'x' }]))).toBe(1);
    const loaded = (await store.load(key))!;
    expect(loaded.map((e) => e.tag)).toEqual([...'aaa', ...'bbb', ...Array<string>(400).fill('c')]);
    expect(await store.load(sub)).toHaveLength(5);
    expect((await store.load(sub))!.at(-1)).toEqual({ type: 'agent_metadata', agentType: 'x' });
    // Committed as the full path commits: every line committed, the index caught up, the conversation pointed at it.
    const conversationId = await holder(key);
    const head = await t.pool.query('select line_count, committed_line_count, byte_count, committed_byte_count, tail_sha256, committed_tail_sha256 from sessions where conversation_id = $1 and session_id = $2', [conversationId, key.sessionId]);
    const h = head.rows[0] as Record<string, string>;
    expect([h.committed_line_count, h.committed_byte_count, h.committed_tail_sha256]).toEqual([h.line_count, h.byte_count, h.tail_sha256]);
    expect(Number(h.line_count)).toBe(406);
    expect(await rows('select count(*) n from session_chunks where conversation_id = $1 and session_id = $2 and not committed', [conversationId, key.sessionId])).toBe(0);
    expect(await rows('select count(*) n from session_entry_uuids where conversation_id = $1 and session_id = $2', [conversationId, key.sessionId])).toBe(406);
    expect(await rows('select scanned_line_count n from session_uuid_scans where conversation_id = $1 and session_id = $2', [conversationId, key.sessionId])).toBe(406);
    expect((await findConversation(t.db, { externalId: holderConversationId(key.projectKey, key.sessionId) }))?.sessionId).toBe(key.sessionId);
  });

  it('another writer in between sends the next append down the full path; the transcript stays whole and in order', async () => {
    const key = newKey();
    const other = createSessionStore({ db: t.db });
    const b1 = batch(3, '1');
    const b2 = batch(2, '2');
    const b3 = batch(4, '3');
    await store.append(key, b1);
    await other.append(key, b2);
    expect(await statements(() => store.append(key, b3))).toBeGreaterThan(5);
    expect(await store.load(key)).toEqual([...b1, ...b2, ...b3]);
    // And from there on it is one call again.
    const b4 = batch(1, '4');
    expect(await statements(() => store.append(key, b4))).toBe(1);
    expect(await other.load(key)).toEqual([...b1, ...b2, ...b3, ...b4]);
  });

  it('a batch repeating stored uuids stores nothing twice', async () => {
    const key = newKey();
    const [a, b, c] = [entry('user'), entry('assistant'), entry('user')];
    await store.append(key, [a!, b!]);
    await store.append(key, [c!]);
    await store.append(key, [b!, c!]);
    await store.append(key, [a!, entry('user', { tag: 'new' })]);
    const loaded = (await store.load(key))!;
    expect(loaded.slice(0, 3)).toEqual([a, b, c]);
    expect(loaded.map((e) => e.tag)).toEqual([undefined, undefined, undefined, 'new']);
  });

  it('a conversation a worker holds refuses it as busy, storing nothing', async () => {
    const key = newKey();
    await store.append(key, batch(2, 'a'));
    const conversationId = await holder(key);
    await t.pool.query(`update conversations set lease_owner = 'w', lease_expires_at = now() + interval '1 minute' where id = $1`, [conversationId]);
    await expect(store.append(key, batch(2, 'b'))).rejects.toBeInstanceOf(SdkSessionBusyError);
    await t.pool.query('update conversations set lease_owner = null, lease_expires_at = null where id = $1', [conversationId]);
    expect((await store.load(key))!.map((e) => e.tag)).toEqual(['a', 'a']);
  });

  it('a head whose stored bytes no longer match its digest is refused as corrupt, not hidden by the bytes the adapter remembers', async () => {
    const key = newKey();
    await store.append(key, batch(2, 'a'));
    const conversationId = await holder(key);
    await t.pool.query('update sessions set tail_sha256 = $3 where conversation_id = $1 and session_id = $2', [conversationId, key.sessionId, 'f'.repeat(64)]);
    await expect(store.append(key, batch(2, 'b'))).rejects.toBeInstanceOf(SessionCorruptError);
    expect(await rows('select line_count n from sessions where conversation_id = $1 and session_id = $2', [conversationId, key.sessionId])).toBe(2);
  });
});

describe('the uuid index without a foreign key (migrations/0017)', () => {
  it("goes with its session: deleted with the conversation, and with one file of it, and nothing else's", async () => {
    const key = newKey();
    const other = newKey();
    await store.append(key, batch(3, 'a'));
    await store.append({ ...key, subpath: 'subagents/agent-1' }, batch(2, 'a'));
    await store.append(other, batch(4, 'a'));
    const conversationId = await holder(key);
    const otherId = await holder(other);
    const uuids = (id: string) => rows('select count(*) n from session_entry_uuids where conversation_id = $1', [id]);
    expect(await uuids(conversationId)).toBe(5);
    // One file of the conversation: its uuids only.
    await t.pool.query('delete from sessions where conversation_id = $1 and session_id = $2', [conversationId, `${key.sessionId}/subagents/agent-1`]);
    expect(await uuids(conversationId)).toBe(3);
    // The conversation: sessions cascade, and their uuids with them.
    expect(await deleteConversation(t.db, conversationId)).toBe(true);
    expect(await uuids(conversationId)).toBe(0);
    expect(await uuids(otherId)).toBe(4);
  });
});

describe('agentq_sdk_append, called directly', () => {
  /** A session stored through the adapter, and the call's arguments for one more line after its head. */
  async function prepared() {
    const key = newKey();
    await store.append(key, batch(2, 'a'));
    const conversationId = await holder(key);
    const h = (await t.pool.query('select line_count, byte_count, tail_sha256 from sessions where conversation_id = $1 and session_id = $2', [conversationId, key.sessionId])).rows[0] as Record<string, string>;
    const uuid: string = randomUUID();
    const raw = Buffer.from(`${JSON.stringify({ type: 'user', uuid })}\n`);
    const args = {
      tenant: 'default',
      projectKey: key.projectKey,
      sessionId: key.sessionId,
      conversationId: conversationId as string,
      lineCount: Number(h.line_count),
      byteCount: Number(h.byte_count),
      headSha: h.tail_sha256,
      uuids: [uuid],
    };
    const call = async (o: Partial<typeof args> = {}) => {
      const a = { ...args, ...o };
      const r = await t.pool.query<{ r: string }>(
        `select agentq_sdk_append($1, $2, $3, $4, $3, $5, $6, $7, $8, 'identity', $9::int[], $10::int[], $10::int[], $11, $12::text[], null, true) as r`,
        [a.tenant, a.projectKey, a.sessionId, a.conversationId, a.lineCount, a.byteCount, a.headSha, createHash('sha256').update(raw).digest('hex'), [1], [raw.length], raw, a.uuids],
      );
      return r.rows[0]!.r;
    };
    const lines = () => rows('select line_count n from sessions where conversation_id = $1 and session_id = $2', [conversationId, key.sessionId]);
    return { key, conversationId, call, lines, uuid };
  }

  it("writes nothing unless key, head, lease and uuids are as given, and says why", async () => {
    const p = await prepared();
    expect(await p.call({ lineCount: 1 })).toBe('stale');
    expect(await p.call({ byteCount: 1 })).toBe('stale');
    expect(await p.call({ headSha: 'e'.repeat(64) })).toBe('stale');
    expect(await p.call({ projectKey: 'elsewhere' })).toBe('stale');
    expect(await p.call({ conversationId: randomUUID() })).toBe('stale');
    const stored = (await t.pool.query<{ uuid: string }>('select uuid from session_entry_uuids where conversation_id = $1 limit 1', [p.conversationId])).rows[0]!.uuid;
    expect(await p.call({ uuids: [p.uuid, stored] })).toBe('known');
    await t.pool.query(`update conversations set lease_owner = 'w', lease_expires_at = now() + interval '1 minute' where id = $1`, [p.conversationId]);
    expect(await p.call()).toBe('busy');
    await t.pool.query('update conversations set lease_owner = null, lease_expires_at = null where id = $1', [p.conversationId]);
    // An index that has not caught up with the head (lines a worker stored) is not trusted.
    await t.pool.query('update session_uuid_scans set scanned_line_count = 1 where conversation_id = $1', [p.conversationId]);
    expect(await p.call()).toBe('stale');
    await t.pool.query('update session_uuid_scans set scanned_line_count = 2 where conversation_id = $1', [p.conversationId]);
    expect(await p.lines()).toBe(2);
    expect(await rows('select count(*) n from session_entry_uuids where conversation_id = $1', [p.conversationId])).toBe(2);
    expect(await rows('select count(*) n from session_chunks where conversation_id = $1', [p.conversationId])).toBe(1);
    // As given: appended, committed, indexed.
    expect(await p.call()).toBe('appended');
    expect(await p.lines()).toBe(3);
    expect(await rows('select count(*) n from session_chunks where conversation_id = $1 and committed', [p.conversationId])).toBe(2);
    expect(await rows('select count(*) n from session_entry_uuids where conversation_id = $1', [p.conversationId])).toBe(3);
    expect((await store.load(p.key))!.at(-1)).toEqual({ type: 'user', uuid: p.uuid });
    // The same call again finds the head moved on.
    expect(await p.call()).toBe('stale');
  });
});

describe('KnownHeads', () => {
  it('keeps the most recently used sessions, at most its size, and the digest of the tail it keeps', () => {
    const heads = new KnownHeads(2);
    const at = (n: number) => ({ conversationId: 'c', lineCount: n, byteCount: n, tail: Buffer.alloc(5000, n) });
    heads.set('t', 'p', 'a', at(1));
    heads.set('t', 'p', 'b', at(2));
    expect(heads.get('t', 'p', 'a')?.lineCount).toBe(1);
    heads.set('t', 'p', 'c', at(3));
    expect(heads.get('t', 'p', 'b')).toBeUndefined();
    const c = heads.get('t', 'p', 'c')!;
    expect(c.tail.length).toBe(4096);
    expect(c.tailSha256).toBe(createHash('sha256').update(Buffer.alloc(4096, 3)).digest('hex'));
    expect(heads.get('t', 'other', 'a')).toBeUndefined();
  });
});
