import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { eq, inArray, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import { deleteConversation, ensureConversation } from '../src/store/conversations.js';
import { persistSession } from '../src/store/persist.js';
import { pruneTurnEvents } from '../src/store/retention.js';
import { conversations, sessionChunks, sessions, turnEvents, turns, workspaces } from '../src/store/schema.js';
import { packWorkspace } from '../src/store/workspaceArchive.js';
import { storeWorkspace } from '../src/store/workspaces.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { tempDirs } from './helpers/files.js';

let t: TestDatabase;
const dirs = tempDirs();

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});
afterEach(() => dirs.cleanup());

/** A conversation with a turn and its events, a stored session and a workspace. */
async function populated(externalId: string) {
  const { id } = await ensureConversation(t.db, { externalId });
  const [turn] = await t.db.insert(turns).values({ conversationId: id, seq: 1, prompt: 'hello' }).returning();
  await t.db.insert(turnEvents).values([
    { turnId: turn!.id, attempt: 1, seq: 1, type: 'system', payload: '{"type":"system"}' },
    { turnId: turn!.id, attempt: 1, seq: 2, type: 'result', payload: '{"type":"result"}' },
  ]);
  const cwd = dirs.make('cwd');
  const configDir = dirs.make('cfg');
  const sessionId = randomUUID();
  const file = sessionFilePath(configDir, cwd, sessionId);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, '{"a":1}\n{"b":2}\n');
  await persistSession(t.db, { conversationId: id, sessionId, filePath: file, attempt: 1, commit: true, maxLineBytes: 1 << 20 });
  writeFileSync(path.join(cwd, 'f.txt'), 'x');
  await storeWorkspace(t.db, id, await packWorkspace(cwd, { maxBytes: 1 << 20, exclude: [] }));
  return { id, turnId: turn!.id };
}

async function counts(conversationId: string, turnId: string) {
  const n = async (q: Promise<unknown[]>) => (await q).length;
  return {
    conversations: await n(t.db.select().from(conversations).where(eq(conversations.id, conversationId))),
    turns: await n(t.db.select().from(turns).where(eq(turns.conversationId, conversationId))),
    turnEvents: await n(t.db.select().from(turnEvents).where(eq(turnEvents.turnId, turnId))),
    sessions: await n(t.db.select().from(sessions).where(eq(sessions.conversationId, conversationId))),
    sessionChunks: await n(t.db.select().from(sessionChunks).where(eq(sessionChunks.conversationId, conversationId))),
    workspaces: await n(t.db.select().from(workspaces).where(eq(workspaces.conversationId, conversationId))),
  };
}

describe('deleteConversation', () => {
  it('removes the conversation and every row it owns, and nothing of another conversation', async () => {
    const doomed = await populated('doomed');
    const kept = await populated('kept');
    const before = await counts(doomed.id, doomed.turnId);
    expect(before).toEqual({ conversations: 1, turns: 1, turnEvents: 2, sessions: 1, sessionChunks: 1, workspaces: 1 });

    expect(await deleteConversation(t.db, doomed.id)).toBe(true);
    expect(await counts(doomed.id, doomed.turnId)).toEqual({
      conversations: 0,
      turns: 0,
      turnEvents: 0,
      sessions: 0,
      sessionChunks: 0,
      workspaces: 0,
    });
    expect(await counts(kept.id, kept.turnId)).toEqual(before);
    expect(await deleteConversation(t.db, doomed.id)).toBe(false);
  });
});

describe('pruneTurnEvents', () => {
  it('deletes only events older than the retention', async () => {
    const { id } = await ensureConversation(t.db, { externalId: 'prune' });
    const [turn] = await t.db.insert(turns).values({ conversationId: id, seq: 1, prompt: 'p' }).returning();
    const now = new Date('2026-06-01T00:00:00Z');
    const day = 24 * 60 * 60 * 1000;
    const ages = [40, 31, 29, 1, 0];
    await t.db.insert(turnEvents).values(
      ages.map((age, i) => ({ turnId: turn!.id, attempt: 1, seq: i, type: 'x', payload: `{"age":${age}}`, createdAt: new Date(now.getTime() - age * day) })),
    );
    expect(await pruneTurnEvents(t.db, { olderThanMs: 0, now })).toBe(0);
    expect(await pruneTurnEvents(t.db, { olderThanMs: 30 * day, now })).toBe(2);
    const left = await t.db.select({ payload: turnEvents.payload }).from(turnEvents).where(eq(turnEvents.turnId, turn!.id)).orderBy(turnEvents.seq);
    expect(left.map((r) => r.payload)).toEqual(['{"age":29}', '{"age":1}', '{"age":0}']);
    expect(await pruneTurnEvents(t.db, { olderThanMs: 30 * day, now })).toBe(0);
  });

  it('prunes in batches until nothing old is left', async () => {
    const { id } = await ensureConversation(t.db, { externalId: 'prune-many' });
    const [turn] = await t.db.insert(turns).values({ conversationId: id, seq: 1, prompt: 'p' }).returning();
    await t.db.execute(sql`insert into turn_events (turn_id, attempt, seq, type, payload, created_at)
      select ${turn!.id}::uuid, 1, g, 'x', '{}', '2000-01-01T00:00:00Z'::timestamptz from generate_series(1, 12001) g`);
    // Measured from a "now" in 2000, so the other tests' events are all in its future.
    expect(await pruneTurnEvents(t.db, { olderThanMs: 24 * 60 * 60 * 1000, now: new Date('2000-03-01T00:00:00Z') })).toBe(12001);
    expect(await t.db.select().from(turnEvents).where(inArray(turnEvents.turnId, [turn!.id]))).toEqual([]);
  });
});
