// agentq's sessionStore against the SDK's documented SessionStore contract (sdk.d.ts of
// @anthropic-ai/claude-agent-sdk, "SessionStore" and "SessionKey"), written from that
// text: load/append round trip and order, null for unknown keys, subpaths kept apart,
// uuid idempotency, listSessions / delete / listSubkeys, plus agentq's own promises (bad
// input stores nothing, key order and bytes kept for the CLI). Real Postgres.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SessionLineTooLongError, StoreInputError } from '../src/errors.js';
import { createSessionStore, type AgentqSessionStore } from '../src/sdk/sessionStore.js';
import type { SdkSessionEntry } from '../src/sdk/entries.js';
import { findConversation } from '../src/store/conversations.js';
import { hydrateSession } from '../src/store/hydrate.js';
import { holderConversationId } from '../src/sdk/keys.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

let t: TestDatabase;
let store: AgentqSessionStore;
let root: string;

beforeAll(async () => {
  t = await createTestDatabase();
  store = createSessionStore({ db: t.db, maxLineBytes: 4 * 1024 * 1024 });
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-sdk-store-'));
});
afterAll(async () => {
  await t.drop();
  rmSync(root, { recursive: true, force: true });
});

// Compile-time: the adapter is the SDK's SessionStore (typecheck fails otherwise).
const asSdkStore = (s: AgentqSessionStore): SessionStore => s;

const newKey = (projectKey = `proj-${randomUUID().slice(0, 8)}`) => ({ projectKey, sessionId: randomUUID() });
const entry = (type: string, extra: Record<string, unknown> = {}): SdkSessionEntry => ({ type, uuid: randomUUID(), timestamp: new Date().toISOString(), ...extra });

async function count(sqlText: string, params: unknown[]): Promise<number> {
  const r = await t.pool.query<{ n: string }>(sqlText, params);
  return Number(r.rows[0]!.n);
}

describe('load and append', () => {
  it('is usable as the SDK SessionStore type', () => {
    expect(typeof asSdkStore(store).append).toBe('function');
  });

  it('load of a key never written is null, main transcript or subpath', async () => {
    const key = newKey();
    expect(await store.load(key)).toBeNull();
    expect(await store.load({ ...key, subpath: 'subagents/agent-x' })).toBeNull();
  });

  it('returns the entries deep-equal and in append-call order across batches', async () => {
    const key = newKey();
    const batches = [[entry('user', { message: { role: 'user', content: 'one' } })], [entry('assistant'), entry('user')], [entry('assistant')]];
    for (const b of batches) await store.append(key, b);
    expect(await store.load(key)).toEqual(batches.flat());
  });

  it('keeps every JSON shape and the order of keys as given', async () => {
    const key = newKey();
    const odd: SdkSessionEntry = {
      zeta: 1,
      type: 'assistant',
      alpha: { nested: [1, 2.5, -3e-7, { deep: null }], empty: {}, list: [] },
      uuid: randomUUID(),
      text: 'unicode: żółw 🐢 "quotes" \\ back\nslash \u2028 line sep \u0000 nul',
      flags: [true, false, null],
      big: Number.MAX_SAFE_INTEGER,
    };
    const noUuid: SdkSessionEntry = { type: 'custom-title', customTitle: 'x' };
    await store.append(key, [odd, noUuid]);
    const loaded = await store.load(key);
    expect(loaded).toEqual([odd, noUuid]);
    expect(JSON.stringify(loaded)).toBe(JSON.stringify([odd, noUuid]));
  });

  it('copies on append and on load: later mutation of either side changes nothing stored', async () => {
    const key = newKey();
    const e = entry('user', { message: { content: 'before' } });
    await store.append(key, [e]);
    (e.message as { content: string }).content = 'after';
    const first = (await store.load(key))!;
    expect((first[0]!.message as { content: string }).content).toBe('before');
    first[0]!.type = 'mutated';
    first.push(entry('extra'));
    const second = (await store.load(key))!;
    expect(second).toHaveLength(1);
    expect(second[0]!.type).toBe('user');
  });

  it('an empty batch stores nothing: an unknown key stays unknown, a known one unchanged', async () => {
    const key = newKey();
    await store.append(key, []);
    expect(await store.load(key)).toBeNull();
    expect(await store.listSessions(key.projectKey)).toEqual([]);
    const e = entry('user');
    await store.append(key, [e]);
    await store.append(key, []);
    expect(await store.load(key)).toEqual([e]);
  });

  it('entries over 1 MiB and many small batches load whole (chunk boundaries)', async () => {
    const key = newKey();
    const big = entry('assistant', { blob: 'x'.repeat(1.5 * 1024 * 1024) });
    const all: SdkSessionEntry[] = [];
    for (let i = 0; i < 40; i++) {
      const b = i === 20 ? [big] : [entry('user', { i }), entry('assistant', { i })];
      await store.append(key, b);
      all.push(...b);
    }
    expect(await store.load(key)).toEqual(all);
  });

  it('a chunk missing or not decoding on a later page fails the load as corrupt (and no decode ahead is left unhandled)', async () => {
    const file = async () => {
      const key = newKey();
      for (let i = 0; i < 40; i++) await store.append(key, [entry('user', { i })]);
      return key;
    };
    // One chunk per append: chunk 30 holds line 31 (0-based 30), on the second page of 16.
    const gap = await file();
    await t.pool.query('delete from session_chunks where session_id = $1 and first_line = 30', [gap.sessionId]);
    await expect(store.load(gap)).rejects.toThrow(/chunk at line 31 follows line 30/);
    const garbled = await file();
    await t.pool.query(`update session_chunks set data = '\\x1f8b00'::bytea where session_id = $1 and first_line = 25`, [garbled.sessionId]);
    await expect(store.load(garbled)).rejects.toThrow(/chunk at line 25 does not decode/);
  });

  it('stores brotli chunks with their CRC-32: one flipped bit in a stored chunk fails the load as corrupt', async () => {
    const key = newKey();
    // Fixed entries: the flips below hit the same bits of the same bytes in every run.
    for (let i = 0; i < 3; i++) await store.append(key, [{ type: 'user', uuid: `u-${i}`, timestamp: '2026-12-07T00:00:00.000Z', text: `message ${i} `.repeat(20) }]);
    const rows = await t.pool.query<{ codec: string }>('select distinct codec from session_chunks where session_id = $1', [key.sessionId]);
    expect(rows.rows.map((r) => r.codec)).toEqual(['br']);
    // The last byte of the CRC, then a byte in the middle of the brotli stream (bit 3).
    await t.pool.query(`update session_chunks set data = set_byte(data, length(data) - 1, get_byte(data, length(data) - 1) # 1) where session_id = $1 and first_line = 1`, [key.sessionId]);
    await expect(store.load(key)).rejects.toThrow(/chunk at line 1 does not decode/);
    await t.pool.query(`update session_chunks set data = set_byte(data, length(data) - 1, get_byte(data, length(data) - 1) # 1) where session_id = $1 and first_line = 1`, [key.sessionId]);
    expect(await store.load(key)).toHaveLength(3);
    await t.pool.query(`update session_chunks set data = set_byte(data, length(data) / 3, get_byte(data, length(data) / 3) # 8) where session_id = $1 and first_line = 2`, [key.sessionId]);
    await expect(store.load(key)).rejects.toThrow(/chunk at line 2 does not decode/);
  });
});

describe('idempotency per uuid', () => {
  it('a repeated batch (a retry) stores nothing twice', async () => {
    const key = newKey();
    const batch = [entry('user'), entry('assistant'), entry('user')];
    await store.append(key, batch);
    await store.append(key, batch);
    await store.append(key, batch.map((e) => ({ ...e })));
    expect(await store.load(key)).toEqual(batch);
  });

  it('a batch mixing stored and new uuids appends only the new ones, in order', async () => {
    const key = newKey();
    const [a, b, c, d] = [entry('user'), entry('assistant'), entry('user'), entry('assistant')];
    await store.append(key, [a!, b!]);
    await store.append(key, [b!, c!, a!, d!]);
    expect(await store.load(key)).toEqual([a, b, c, d]);
  });

  it('a uuid twice in one batch is stored once; entries without uuid are always appended', async () => {
    const key = newKey();
    const a = entry('user');
    const tag = { type: 'tag', tag: 'x' };
    await store.append(key, [a, tag, a, tag]);
    await store.append(key, [tag]);
    expect(await store.load(key)).toEqual([a, tag, tag, tag]);
  });

  it('concurrent appends of the same entries to one key store each once, batches contiguous', async () => {
    const key = newKey();
    const batches = Array.from({ length: 8 }, (_, i) => [entry('user', { b: i }), entry('assistant', { b: i }), entry('user', { b: i })]);
    // Every batch is sent twice at once: a retry racing the original.
    await Promise.all([...batches, ...batches].map((b) => store.append(key, b)));
    const loaded = (await store.load(key))!;
    expect(loaded).toHaveLength(24);
    expect(new Set(loaded.map((e) => e.uuid)).size).toBe(24);
    for (let i = 0; i < 24; i += 3) {
      const b = loaded[i]!.b;
      expect(loaded.slice(i, i + 3)).toEqual(batches[b as number]);
    }
  });

  it('uuids are per transcript: the same entry may be in the main transcript and a subpath', async () => {
    const key = newKey();
    const e = entry('user');
    await store.append(key, [e]);
    await store.append({ ...key, subpath: 'subagents/agent-a' }, [e]);
    expect(await store.load(key)).toEqual([e]);
    expect(await store.load({ ...key, subpath: 'subagents/agent-a' })).toEqual([e]);
  });
});

describe('keys', () => {
  it('subpaths are kept apart from the main transcript and from each other', async () => {
    const key = newKey();
    const main = [entry('user')];
    const a = [entry('user', { agent: 'a' }), { type: 'agent_metadata', agentType: 'general' }];
    const b = [entry('user', { agent: 'b' })];
    await store.append(key, main);
    await store.append({ ...key, subpath: 'subagents/agent-a' }, a);
    await store.append({ ...key, subpath: 'subagents/workflows/run-1/agent-b' }, b);
    expect(await store.load(key)).toEqual(main);
    expect(await store.load({ ...key, subpath: 'subagents/agent-a' })).toEqual(a);
    expect(await store.load({ ...key, subpath: 'subagents/workflows/run-1/agent-b' })).toEqual(b);
    expect((await store.listSubkeys(key)).sort()).toEqual(['subagents/agent-a', 'subagents/workflows/run-1/agent-b']);
  });

  it('project keys, session ids and tenants each separate transcripts', async () => {
    const sessionId = randomUUID();
    const k1 = { projectKey: 'p-one', sessionId };
    const k2 = { projectKey: 'p-two', sessionId };
    const other = createSessionStore({ db: t.db, tenantId: 'acme' });
    const [e1, e2, e3] = [entry('user'), entry('user'), entry('user')];
    await store.append(k1, [e1!]);
    await store.append(k2, [e2!]);
    await other.append(k1, [e3!]);
    expect(await store.load(k1)).toEqual([e1]);
    expect(await store.load(k2)).toEqual([e2]);
    expect(await other.load(k1)).toEqual([e3]);
    expect(await other.load(k2)).toBeNull();
    expect(await store.load({ projectKey: 'p-one', sessionId: randomUUID() })).toBeNull();
  });

  it('bad keys and entries are refused naming the field, and nothing is stored', async () => {
    const key = newKey();
    const cases: [unknown, unknown, string][] = [
      [{ sessionId: key.sessionId }, [entry('user')], 'key.projectKey'],
      [{ projectKey: '', sessionId: key.sessionId }, [entry('user')], 'key.projectKey'],
      [{ projectKey: key.projectKey, sessionId: '../etc' }, [entry('user')], 'key.sessionId'],
      [{ ...key, subpath: '' }, [entry('user')], 'key.subpath'],
      [key, 'not an array', 'entries'],
      [key, [entry('user'), null], 'entries[1]'],
      [key, [entry('user'), [1, 2]], 'entries[1]'],
      [key, [entry('user'), { uuid: randomUUID() }], 'entries[1].type'],
      [key, [entry('user'), { type: 'user', n: 10n }], 'entries[1]'],
      [key, [entry('user'), { type: 'user', toJSON: () => 'not an object' }], 'entries[1]'],
    ];
    for (const [k, entries, field] of cases) {
      const err = await (store.append as (k: unknown, e: unknown) => Promise<void>)(k, entries).catch((e: unknown) => e);
      expect(err, field).toBeInstanceOf(StoreInputError);
      expect((err as StoreInputError).field).toBe(field);
    }
    expect(await store.load(key)).toBeNull();
    expect(await store.load({ ...key, subpath: undefined })).toBeNull();
    await expect((store.load as (k: unknown) => Promise<unknown>)({ projectKey: 'p' })).rejects.toMatchObject({ field: 'key.sessionId' });
  });

  it('an entry longer than maxLineBytes is refused with the whole batch', async () => {
    const key = newKey();
    const err = await store.append(key, [entry('user'), entry('assistant', { blob: 'y'.repeat(4 * 1024 * 1024) })]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SessionLineTooLongError);
    expect(await store.load(key)).toBeNull();
  });
});

describe('listSessions', () => {
  it('lists the sessions of a project key with integer epoch-ms mtimes of their last write', async () => {
    const projectKey = `list-${randomUUID().slice(0, 8)}`;
    const k1 = newKey(projectKey);
    const k2 = newKey(projectKey);
    const before = Date.now();
    await store.append(k1, [entry('user')]);
    await store.append(k2, [entry('user')]);
    await store.append(newKey(), [entry('user')]); // another project
    await store.append({ ...newKey(projectKey), subpath: 'subagents/agent-1' }, [entry('user')]); // no main transcript
    const after = Date.now();
    const listed = await store.listSessions(projectKey);
    expect(listed.map((s) => s.sessionId).sort()).toEqual([k1.sessionId, k2.sessionId].sort());
    for (const s of listed) {
      expect(Number.isInteger(s.mtime)).toBe(true);
      // Postgres keeps microseconds; floored to ms it is within the wall-clock window.
      expect(s.mtime).toBeGreaterThanOrEqual(before - 1000);
      expect(s.mtime).toBeLessThanOrEqual(after + 1000);
    }
    const m1 = listed.find((s) => s.sessionId === k1.sessionId)!.mtime;
    // A later write moves the mtime forward (wait on the clock, not a sleep).
    const deadline = Date.now() + 5000;
    while (Date.now() <= m1 + 2 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    await store.append(k1, [entry('assistant')]);
    const again = await store.listSessions(projectKey);
    expect(again.find((s) => s.sessionId === k1.sessionId)!.mtime).toBeGreaterThan(m1);
    expect(await store.listSessions(`nothing-${randomUUID()}`)).toEqual([]);
  });
});

describe('delete and listSubkeys', () => {
  it('deleting the main key removes the transcript and its subpaths; others stay', async () => {
    const projectKey = `del-${randomUUID().slice(0, 8)}`;
    const key = newKey(projectKey);
    const keep = newKey(projectKey);
    const kept = [entry('user')];
    await store.append(key, [entry('user')]);
    await store.append({ ...key, subpath: 'subagents/agent-1' }, [entry('user')]);
    await store.append(keep, kept);
    await store.delete(key);
    expect(await store.load(key)).toBeNull();
    expect(await store.load({ ...key, subpath: 'subagents/agent-1' })).toBeNull();
    expect(await store.listSubkeys(key)).toEqual([]);
    expect((await store.listSessions(projectKey)).map((s) => s.sessionId)).toEqual([keep.sessionId]);
    expect(await store.load(keep)).toEqual(kept);
    // The conversation the adapter made for it, its rows and the uuid index are gone.
    expect(await findConversation(t.db, { externalId: holderConversationId(projectKey, key.sessionId) })).toBeUndefined();
    expect(await count(`select count(*) as n from session_chunks where session_id like $1`, [`${key.sessionId}%`])).toBe(0);
    expect(await count(`select count(*) as n from session_entry_uuids where session_id like $1`, [`${key.sessionId}%`])).toBe(0);
    // The key can be written again from scratch.
    const fresh = [entry('user')];
    await store.append(key, fresh);
    expect(await store.load(key)).toEqual(fresh);
  });

  it('deleting a subpath removes only that transcript', async () => {
    const key = newKey();
    const main = [entry('user')];
    const other = [entry('user')];
    await store.append(key, main);
    await store.append({ ...key, subpath: 'subagents/agent-1' }, [entry('user')]);
    await store.append({ ...key, subpath: 'subagents/agent-2' }, other);
    await store.delete({ ...key, subpath: 'subagents/agent-1' });
    expect(await store.load({ ...key, subpath: 'subagents/agent-1' })).toBeNull();
    expect(await store.load({ ...key, subpath: 'subagents/agent-2' })).toEqual(other);
    expect(await store.load(key)).toEqual(main);
    expect(await store.listSubkeys(key)).toEqual(['subagents/agent-2']);
  });

  it('deleting what was never written is a no-op; listSubkeys of an unknown session is empty', async () => {
    const key = newKey();
    await store.delete(key);
    await store.delete({ ...key, subpath: 'subagents/agent-1' });
    expect(await store.listSubkeys(key)).toEqual([]);
    await store.append(key, [entry('user')]);
    expect(await store.listSubkeys(key)).toEqual([]);
  });
});

describe('what the worker hydrates', () => {
  it('an SDK transcript hydrates for the CLI byte for byte as the JSON lines of its entries', async () => {
    const key = newKey();
    const entries = [entry('user', { z: 1, a: 2 }), { type: 'summary', summary: 'ü' }, entry('assistant', { m: { b: 1, a: [2] } })];
    await store.append(key, entries.slice(0, 1));
    await store.append(key, entries.slice(1));
    const conv = (await findConversation(t.db, { externalId: holderConversationId(key.projectKey, key.sessionId) }))!;
    expect(conv.sessionId).toBe(key.sessionId);
    const cwd = mkdtempSync(path.join(root, 'cwd-'));
    const h = await hydrateSession(t.db, { conversationId: conv.id, sessionId: key.sessionId, cwd, configDir: path.join(root, 'cfg') });
    expect(readFileSync(h.path, 'utf8')).toBe(entries.map((e) => `${JSON.stringify(e)}\n`).join(''));
  });
});
