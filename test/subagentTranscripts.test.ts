// A session's folder in the store, without a CLI: the worker's steps for subagent
// transcripts (src/worker/subagentTranscripts.ts) and for the rest of the folder
// (src/worker/sessionFolder.ts), on real Postgres and real files.
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { listSubagentTranscripts, subagentMetaPath, subagentTranscriptPath } from '../src/claude/subagentPath.js';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import { StoreInputError } from '../src/errors.js';
import { ensureConversation } from '../src/store/conversations.js';
import { parseSessionFileId } from '../src/store/ids.js';
import { persistSession } from '../src/store/persist.js';
import { getSessionHeads, lockOrCreateSessionHead } from '../src/store/sessions.js';
import { appendLines, prepareLines } from '../src/sdk/appendLines.js';
import { createSessionStore } from '../src/sdk/sessionStore.js';
import { getSidecars, putSidecar } from '../src/store/sidecars.js';
import { commitSubagentTranscripts, hydrateSubagents, persistSubagentTranscripts } from '../src/worker/subagentTranscripts.js';
import { saveSessionFolder, type FolderState } from '../src/worker/sessionFolder.js';
import { restoreSessionFolder } from '../src/store/sessionFolders.js';
import { sessionFolderPath } from '../src/claude/sessionPath.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { tempDirs } from './helpers/files.js';

const MAX_LINE = 1024 * 1024;
let t: TestDatabase;
const dirs = tempDirs();

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});
afterEach(() => dirs.cleanup());

/** A machine's session file for `sessionId`, and a writer of its subagent transcripts. */
function machine(label: string, sessionId: string) {
  const cwd = dirs.make(`${label}-cwd`);
  const configDir = dirs.make(`${label}-cfg`);
  const sessionFile = sessionFilePath(configDir, cwd, sessionId);
  const sessionRel = path.relative(configDir, sessionFile);
  mkdirSync(path.dirname(sessionFile), { recursive: true });
  const agentFile = (subpath: string) => subagentTranscriptPath(sessionFile, sessionId, subpath)!;
  const write = (subpath: string, text: string) => {
    mkdirSync(path.dirname(agentFile(subpath)), { recursive: true });
    appendFileSync(agentFile(subpath), text);
  };
  return { sessionFile, configDir, sessionRel, agentFile, write };
}

const line = (agent: string, n: number) => `${JSON.stringify({ type: 'user', isSidechain: true, agentId: agent, uuid: randomUUID(), n })}\n`;

async function newConversation(): Promise<string> {
  return (await ensureConversation(t.db, { externalId: `subagents-${randomUUID()}` })).id;
}

/** The worker's caps, generous. */
const LIMITS = { maxLineBytes: MAX_LINE, maxFileBytes: 1 << 30, maxEntries: 10_000 };

/** One checkpoint (or, with `commit`, the commit) of attempt `attempt`, as the worker runs it. */
async function save(conversationId: string, sessionId: string, m: { configDir: string; sessionRel: string }, attempt: number, commit = false) {
  return t.db.transaction(async (tx) => {
    const r = await persistSubagentTranscripts(tx, { conversationId, sessionId, configDir: m.configDir, sessionRel: m.sessionRel, attempt, ...LIMITS, storedSidecars: new Map(), afterCommit: (f) => f() });
    if (commit) await commitSubagentTranscripts(tx, conversationId, r.stored, attempt);
    return r;
  });
}

describe('subagent transcripts', () => {
  it('are stored with checkpoints, committed with the turn, and hydrated byte for byte next to the session on another machine', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const a = machine('a', sessionId);
    a.write('subagents/agent-one', line('one', 1) + line('one', 2));
    a.write('subagents/workflows/w1/agent-two', line('two', 1));
    const meta = '{"agentType":"reviewer","description":"keeper","toolUseId":"toolu_1","spawnDepth":1}';
    writeFileSync(subagentMetaPath(a.agentFile('subagents/agent-one')), meta);
    // A partial line is left for a later call, as for session files.
    a.write('subagents/agent-one', '{"type":"user","partial":');
    expect((await listSubagentTranscripts(a.configDir, a.sessionRel, sessionId, { maxEntries: 100, maxBytes: 1 << 20 })).map((x) => x.subpath)).toEqual([
      'subagents/agent-one',
      'subagents/workflows/w1/agent-two',
    ]);

    const checkpoint = await save(conversationId, sessionId, a, 1);
    expect(checkpoint.failed).toEqual([]);
    let { subagents } = await getSessionHeads(t.db, conversationId, sessionId);
    expect(subagents.map((h) => [h.sessionId, h.lineCount, h.committedLineCount])).toEqual([
      [`${sessionId}/subagents/agent-one`, 2, 0],
      [`${sessionId}/subagents/workflows/w1/agent-two`, 1, 0],
    ]);

    a.write('subagents/agent-one', '"x"}\n');
    await save(conversationId, sessionId, a, 1, true);
    ({ subagents } = await getSessionHeads(t.db, conversationId, sessionId));
    expect(subagents.map((h) => [h.lineCount, h.committedLineCount])).toEqual([
      [3, 3],
      [1, 1],
    ]);

    const b = machine('b', sessionId);
    const skipped = await hydrateSubagents(t.db, { conversationId, sessionId, sessionFile: b.sessionFile, heads: subagents });
    expect(skipped).toEqual([]);
    for (const subpath of ['subagents/agent-one', 'subagents/workflows/w1/agent-two']) {
      expect(readFileSync(b.agentFile(subpath), 'utf8')).toBe(readFileSync(a.agentFile(subpath), 'utf8'));
    }
    // The sidecar went with its transcript; the other transcript has none.
    expect(readFileSync(subagentMetaPath(b.agentFile('subagents/agent-one')), 'utf8')).toBe(meta);
    expect(existsSync(subagentMetaPath(b.agentFile('subagents/workflows/w1/agent-two')))).toBe(false);
    // A changed sidecar replaces the stored one.
    const meta2 = meta.replace('keeper', 'keeper 2');
    writeFileSync(subagentMetaPath(a.agentFile('subagents/agent-one')), meta2);
    await save(conversationId, sessionId, a, 2, true);
    expect((await getSidecars(t.db, conversationId, [`${sessionId}/subagents/agent-one`])).get(`${sessionId}/subagents/agent-one`)).toBe(meta2);
  });

  it("the SDK adapter's load gives a stored sidecar as the subagent's last entry, an agent_metadata", async () => {
    const store = createSessionStore({ db: t.db });
    const key = { projectKey: 'proj', sessionId: randomUUID() };
    const sub = { ...key, subpath: 'subagents/agent-9' };
    await store.append(key, [{ type: 'user', uuid: randomUUID(), message: { role: 'user', content: 'hi' } }]);
    await store.append(sub, [{ type: 'user', uuid: randomUUID(), isSidechain: true }]);
    expect((await store.load(sub))!.map((e) => e.type)).toEqual(['user']);
    const conv = await t.db.$client.query<{ conversation_id: string }>('select conversation_id from sdk_sessions where session_id = $1', [key.sessionId]);
    await putSidecar(t.db, conv.rows[0]!.conversation_id, `${key.sessionId}/subagents/agent-9`, '{"agentType":"reviewer","toolUseId":"toolu_9"}');
    const entries = (await store.load(sub))!;
    expect(entries.map((e) => e.type)).toEqual(['user', 'agent_metadata']);
    expect(entries[1]).toEqual({ type: 'agent_metadata', agentType: 'reviewer', toolUseId: 'toolu_9' });
    // The main transcript gets no such entry.
    expect((await store.load(key))!.map((e) => e.type)).toEqual(['user']);
  });

  it("the SDK adapter stores a subagent's agent_metadata entries as its sidecar (the last wins), which a worker writes as the .meta.json", async () => {
    const store = createSessionStore({ db: t.db });
    const key = { projectKey: 'proj', sessionId: randomUUID() };
    const sub = { ...key, subpath: 'subagents/agent-7' };
    const fileId = `${key.sessionId}/subagents/agent-7`;
    await store.append(key, [{ type: 'user', uuid: randomUUID() }]);
    const first = { type: 'user', uuid: randomUUID(), isSidechain: true, n: 1 };
    const second = { type: 'assistant', uuid: randomUUID(), isSidechain: true, n: 2 };
    const meta = { agentType: 'reviewer', toolUseId: 'toolu_7' };
    await store.append(sub, [first, { type: 'agent_metadata', agentType: 'older' }, second, { type: 'agent_metadata', ...meta }]);
    // Not lines of the transcript: load gives the two entries, then the metadata.
    expect(await store.load(sub)).toEqual([first, second, { type: 'agent_metadata', ...meta }]);
    const conv = await t.db.$client.query<{ conversation_id: string }>('select conversation_id from sdk_sessions where session_id = $1', [key.sessionId]);
    const conversationId = conv.rows[0]!.conversation_id;
    expect((await getSidecars(t.db, conversationId, [fileId])).get(fileId)).toBe(JSON.stringify(meta));
    // A worker writes the transcript as the CLI reads it, and the sidecar next to it.
    const b = machine('sdk-meta', key.sessionId);
    const { subagents } = await getSessionHeads(t.db, conversationId, key.sessionId);
    expect(await hydrateSubagents(t.db, { conversationId, sessionId: key.sessionId, sessionFile: b.sessionFile, heads: subagents })).toEqual([]);
    expect(readFileSync(b.agentFile('subagents/agent-7'), 'utf8')).toBe(`${JSON.stringify(first)}\n${JSON.stringify(second)}\n`);
    expect(JSON.parse(readFileSync(subagentMetaPath(b.agentFile('subagents/agent-7')), 'utf8'))).toEqual(meta);
    // A main transcript has no sidecar: there such an entry stays a line.
    await store.append(key, [{ type: 'agent_metadata', agentType: 'main' }]);
    expect((await store.load(key))!.map((e) => e.type)).toEqual(['user', 'agent_metadata']);
  });

  it('a transcript the CLI rewrote is reported and left out; the others are stored and the transaction goes on', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const a = machine('a', sessionId);
    a.write('subagents/agent-one', line('one', 1));
    a.write('subagents/agent-two', line('two', 1));
    await save(conversationId, sessionId, a, 1, true);
    // agent-one's file now differs before the stored head; agent-two grows.
    writeFileSync(a.agentFile('subagents/agent-one'), line('one', 9));
    a.write('subagents/agent-two', line('two', 2));
    const r = await t.db.transaction(async (tx) => {
      const saved = await persistSubagentTranscripts(tx, { conversationId, sessionId, configDir: a.configDir, sessionRel: a.sessionRel, attempt: 2, ...LIMITS, storedSidecars: new Map(), afterCommit: (f) => f() });
      await commitSubagentTranscripts(tx, conversationId, saved.stored, 2);
      // The caller's transaction is still usable after the refused file.
      await tx.execute('select 1');
      return saved;
    });
    expect(r.failed.map((f) => f.fileId)).toEqual([`${sessionId}/subagents/agent-one`]);
    expect(r.failed[0]!.message).toMatch(/differ/);
    const { subagents } = await getSessionHeads(t.db, conversationId, sessionId);
    expect(subagents.map((h) => [h.sessionId, h.committedLineCount])).toEqual([
      [`${sessionId}/subagents/agent-one`, 1],
      [`${sessionId}/subagents/agent-two`, 2],
    ]);
  });

  it('a stored subpath that is not a safe path (an SDK key) is never written to disk', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    for (const subpath of ['../escape', 'subagents/agent-ok']) {
      await t.db.transaction(async (tx) => {
        const head = await lockOrCreateSessionHead(tx, conversationId, `${sessionId}/${subpath}`, null);
        const text = line(subpath, 1).replace(/\n$/, '');
        await appendLines(tx, head, prepareLines([{ uuid: undefined, line: text, bytes: Buffer.byteLength(text) + 1, index: 0 }]), 'sdk');
      });
    }
    const b = machine('b', sessionId);
    const { subagents } = await getSessionHeads(t.db, conversationId, sessionId);
    const skipped = await hydrateSubagents(t.db, { conversationId, sessionId, sessionFile: b.sessionFile, heads: subagents });
    expect(skipped).toEqual(['../escape']);
    expect(existsSync(b.agentFile('subagents/agent-ok'))).toBe(true);
    // Nothing but the session folder next to the session file.
    expect(readdirSync(path.dirname(b.sessionFile))).toEqual([sessionId]);
  });

  it("a session's heads include its own subagents only (no LIKE wildcards, no other session with the same prefix)", async () => {
    const conversationId = await newConversation();
    const ids = ['a_c', 'abc', 'a_c/subagents/agent-1', 'abc/subagents/agent-2', 'a_cd/subagents/agent-3'];
    for (const id of ids) {
      await t.db.transaction((tx) => lockOrCreateSessionHead(tx, conversationId, id, null));
    }
    const heads = await getSessionHeads(t.db, conversationId, 'a_c');
    expect(heads.head?.sessionId).toBe('a_c');
    expect(heads.subagents.map((h) => h.sessionId)).toEqual(['a_c/subagents/agent-1']);
  });

  it('persistSession takes a subagent file id and refuses an unsafe one, naming the field', async () => {
    expect(parseSessionFileId('0b7c/subagents/agent-1')).toBe('0b7c/subagents/agent-1');
    for (const bad of ['s/../x', 's//x', '/s', 's/', 's/.hidden', 'a b']) {
      expect(() => parseSessionFileId(bad), bad).toThrow(StoreInputError);
    }
    const conversationId = await newConversation();
    const err = await persistSession(t.db, { conversationId, sessionId: 's/../x', filePath: '/dev/null', attempt: 1, maxLineBytes: MAX_LINE }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StoreInputError);
    expect((err as StoreInputError).message).toMatch(/sessionId/);
  });

  it('the rest of the folder (large tool outputs) is stored when it changed, without the subagents, and restored elsewhere', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const a = machine('a', sessionId);
    const state: FolderState = { signature: undefined, sha256: null };
    const save = (maxBytes = 1024 * 1024) =>
      t.db.transaction(async (tx) => {
        await lockOrCreateSessionHead(tx, conversationId, sessionId, null);
        return saveSessionFolder(tx, { conversationId, sessionId, configDir: a.configDir, sessionRel: a.sessionRel, maxBytes, maxEntries: 1000, state, afterCommit: (f) => f() });
      });
    const updatedAt = async () =>
      (await t.db.$client.query<{ updated_at: Date }>('select updated_at from session_folders where conversation_id = $1', [conversationId])).rows[0]?.updated_at;
    // No folder: nothing stored.
    expect(await save()).toEqual({});
    expect(await updatedAt()).toBeUndefined();

    const folder = sessionFolderPath(a.sessionFile, sessionId);
    mkdirSync(path.join(folder, 'tool-results'), { recursive: true });
    writeFileSync(path.join(folder, 'tool-results', 'r1.txt'), 'one '.repeat(1000));
    a.write('subagents/agent-x', line('x', 1));
    expect(await save()).toEqual({});
    const first = await updatedAt();
    expect(first).toBeDefined();
    // Unchanged: not even packed, nothing written.
    await save();
    expect(await updatedAt()).toEqual(first);

    // A transaction that rolls back leaves the state as it was: the next save stores.
    writeFileSync(path.join(folder, 'tool-results', 'r2.txt'), 'two');
    const before = { ...state };
    await t.db
      .transaction(async (tx) => {
        let apply: (() => void) | undefined;
        await saveSessionFolder(tx, { conversationId, sessionId, configDir: a.configDir, sessionRel: a.sessionRel, maxBytes: 1 << 20, maxEntries: 1000, state, afterCommit: (f) => (apply = f) });
        expect(apply).toBeDefined();
        throw new Error('roll back');
      })
      .catch(() => undefined);
    expect(state).toEqual(before);
    await save();
    expect(state.sha256).not.toBe(before.sha256);
    const stored = await t.db.$client.query<{ sha256: string; file_count: number }>('select sha256, file_count from session_folders where conversation_id = $1', [conversationId]);
    expect(stored.rows).toEqual([{ sha256: state.sha256, file_count: 2 }]);

    const b = machine('b', sessionId);
    const target = sessionFolderPath(b.sessionFile, sessionId);
    const restored = await restoreSessionFolder(t.db, conversationId, sessionId, target);
    expect(restored).toMatchObject({ restored: true, sha256: state.sha256, refused: [] });
    expect(readdirSync(target)).toEqual(['tool-results']);
    expect(readdirSync(path.join(target, 'tool-results')).sort()).toEqual(['r1.txt', 'r2.txt']);
    expect(readFileSync(path.join(target, 'tool-results', 'r1.txt'), 'utf8')).toBe('one '.repeat(1000));

    // Over the cap: reported, not stored, not thrown.
    writeFileSync(path.join(folder, 'tool-results', 'r3.txt'), 'x'.repeat(4096));
    const shaBefore = state.sha256;
    const big = await save(1024);
    expect(big.notSaved).toMatch(/bytes|large|limit/i);
    expect(state.sha256).toBe(shaBefore);
  });
});
