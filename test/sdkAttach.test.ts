// SDK sessions and agentq conversations: attach (library and `agentq attach`) moves an
// SDK session into a conversation as its current session, sdkResumeTarget opens a
// conversation's session from an SDK app, lines a worker's CLI stored are deduplicated by
// uuid, and writes never interleave with a running turn. Real Postgres and Redis.
import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../src/cli/main.js';
import { StoreInputError } from '../src/errors.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { attachSdkSession, sdkProjectKey, sdkResumeTarget } from '../src/sdk/attach.js';
import { SdkAttachConflictError, SdkSessionBusyError, SdkSessionNotFoundError } from '../src/sdk/errors.js';
import { holderConversationId } from '../src/sdk/keys.js';
import { createSessionStore, type AgentqSessionStore } from '../src/sdk/sessionStore.js';
import type { SdkSessionEntry } from '../src/sdk/entries.js';
import { encodeCwd } from '../src/claude/sessionPath.js';
import { findConversation } from '../src/store/conversations.js';
import { hydrateSession } from '../src/store/hydrate.js';
import { persistSession } from '../src/store/persist.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';

let t: TestAgentq;
let store: AgentqSessionStore;
let client: AgentqClient;

beforeAll(async () => {
  t = await createTestAgentq();
  store = createSessionStore({ db: t.database.db });
  client = createClient(t.config);
});
afterAll(async () => {
  await client?.close();
  await t?.cleanup();
});

const entry = (type: string, extra: Record<string, unknown> = {}): SdkSessionEntry => ({ type, uuid: randomUUID(), ...extra });
const newKey = () => ({ projectKey: `app-${randomUUID().slice(0, 8)}`, sessionId: randomUUID() });
const db = () => t.database.db;
const q = async <R extends Record<string, unknown>>(text: string, params: unknown[] = []) => (await t.database.pool.query<R>(text, params)).rows;
const setLease = (externalId: string, live: boolean) =>
  q(`update conversations set lease_owner = $2, lease_expires_at = now() + interval '1 minute' where external_id = $1`, [externalId, live ? 'worker-x' : null]);

function capture(): CliIo & { outText: () => string; errText: () => string } {
  const out: string[] = [];
  const err: string[] = [];
  return { env: t.env, out: (s) => out.push(s), err: (s) => err.push(s), outText: () => out.join('\n'), errText: () => err.join('\n') };
}

describe('attachSdkSession', () => {
  it('moves the session with its subagent transcripts into the conversation, once, and removes the holder', async () => {
    const key = newKey();
    const main1 = [entry('user', { message: 'hello' }), entry('assistant')];
    const sub = [entry('user', { agent: 1 })];
    await store.append(key, main1);
    await store.append({ ...key, subpath: 'subagents/agent-1' }, sub);
    const holder = holderConversationId(key.projectKey, key.sessionId);
    expect((await findConversation(db(), { externalId: holder }))?.sessionId).toBe(key.sessionId);
    const chunksBefore = await q<{ n: string }>(`select count(*) as n from session_chunks where session_id like $1`, [`${key.sessionId}%`]);

    const result = await attachSdkSession(db(), { conversationId: 'ticket-attach-1', sessionId: key.sessionId });
    expect(result).toMatchObject({ conversationId: 'ticket-attach-1', tenantId: 'default', sessionId: key.sessionId, lines: 2, moved: true, projectKeys: [key.projectKey] });
    const conv = (await findConversation(db(), { externalId: 'ticket-attach-1' }))!;
    expect(conv.sessionId).toBe(key.sessionId);
    expect(await findConversation(db(), { externalId: holder })).toBeUndefined();
    // One copy: the same number of chunk rows, all in the target conversation now.
    const chunks = await q<{ conversation_id: string }>(`select conversation_id from session_chunks where session_id like $1`, [`${key.sessionId}%`]);
    expect(chunks).toHaveLength(Number(chunksBefore[0]!.n));
    expect(new Set(chunks.map((c) => c.conversation_id))).toEqual(new Set([conv.id]));
    // The adapter follows: same entries, subpaths too; appends continue the conversation.
    expect(await store.load(key)).toEqual(main1);
    expect(await store.load({ ...key, subpath: 'subagents/agent-1' })).toEqual(sub);
    expect(await store.listSubkeys(key)).toEqual(['subagents/agent-1']);
    const more = [entry('user')];
    await store.append(key, [...main1, ...more]);
    expect(await store.load(key)).toEqual([...main1, ...more]);
    // Attaching again changes nothing.
    expect(await attachSdkSession(db(), { conversationId: 'ticket-attach-1', sessionId: key.sessionId })).toMatchObject({ moved: false, lines: 3 });
    // What a worker hydrates is the SDK's lines, byte for byte.
    const cwd = mkdtempSync(path.join(t.root, 'cwd-'));
    const h = await hydrateSession(db(), { conversationId: conv.id, sessionId: key.sessionId, cwd, configDir: path.join(t.root, 'cfg-1') });
    expect(readFileSync(h.path, 'utf8')).toBe([...main1, ...more].map((e) => `${JSON.stringify(e)}\n`).join(''));
  });

  it('refuses unknown sessions, bad ids, ambiguous ids and sessions of conversations with turns', async () => {
    await expect(attachSdkSession(db(), { conversationId: 'ticket-x', sessionId: randomUUID() })).rejects.toBeInstanceOf(SdkSessionNotFoundError);
    await expect(attachSdkSession(db(), { conversationId: 'bad id!', sessionId: randomUUID() })).rejects.toMatchObject({ name: 'StoreInputError', field: 'conversationId' });
    await expect(attachSdkSession(db(), { conversationId: 'ticket-x', sessionId: '../x' })).rejects.toMatchObject({ field: 'sessionId' });
    expect(await findConversation(db(), { externalId: 'ticket-x' })).toBeUndefined();

    // The same session id under two project keys: name one.
    const sessionId = randomUUID();
    const [a, b] = [entry('user'), entry('user')];
    await store.append({ projectKey: 'p-a', sessionId }, [a!]);
    await store.append({ projectKey: 'p-b', sessionId }, [b!]);
    await expect(attachSdkSession(db(), { conversationId: 'ticket-amb', sessionId })).rejects.toBeInstanceOf(SdkAttachConflictError);
    await attachSdkSession(db(), { conversationId: 'ticket-amb', sessionId, projectKey: 'p-b' });
    expect(await store.load({ projectKey: 'p-b', sessionId })).toEqual([b]);
    expect(await store.load({ projectKey: 'p-a', sessionId })).toEqual([a]);

    // A session that belongs to a conversation with turns stays there.
    const key = newKey();
    await store.append(key, [entry('user')]);
    await attachSdkSession(db(), { conversationId: 'ticket-owned', sessionId: key.sessionId });
    await client.enqueueTurn({ conversationId: 'ticket-owned', prompt: 'go on' });
    await expect(attachSdkSession(db(), { conversationId: 'ticket-other', sessionId: key.sessionId })).rejects.toBeInstanceOf(SdkAttachConflictError);
  });

  it('appends racing an attach all land in the conversation the session ends up in', async () => {
    for (let round = 0; round < 5; round++) {
      const key = newKey();
      const first = [entry('user')];
      await store.append(key, first);
      const batches = Array.from({ length: 6 }, (_, i) => [entry('assistant', { i }), entry('user', { i })]);
      const conversationId = `ticket-race-${round}`;
      await Promise.all([attachSdkSession(db(), { conversationId, sessionId: key.sessionId }), ...batches.map((b) => store.append(key, b))]);
      const loaded = (await store.load(key))!;
      expect(loaded).toHaveLength(1 + 12);
      expect(new Set(loaded.map((e) => e.uuid))).toEqual(new Set([...first, ...batches.flat()].map((e) => e.uuid)));
      const conv = (await findConversation(db(), { externalId: conversationId }))!;
      const rows = await q<{ conversation_id: string }>(`select conversation_id from sessions where session_id = $1`, [key.sessionId]);
      expect(rows).toEqual([{ conversation_id: conv.id }]);
      expect(await findConversation(db(), { externalId: holderConversationId(key.projectKey, key.sessionId) })).toBeUndefined();
    }
  });

  it('never interleaves with a running turn: attach, append and delete are refused while a lease is live', async () => {
    const key = newKey();
    const first = [entry('user')];
    await store.append(key, first);
    await attachSdkSession(db(), { conversationId: 'ticket-busy', sessionId: key.sessionId });
    await setLease('ticket-busy', true);
    await expect(store.append(key, [entry('assistant')])).rejects.toBeInstanceOf(SdkSessionBusyError);
    await expect(store.delete(key)).rejects.toBeInstanceOf(SdkSessionBusyError);
    const other = newKey();
    await store.append(other, [entry('user')]);
    await expect(attachSdkSession(db(), { conversationId: 'ticket-busy', sessionId: other.sessionId })).rejects.toBeInstanceOf(SdkSessionBusyError);
    expect(await store.load(key)).toEqual(first);
    await setLease('ticket-busy', false);
    const next = [entry('assistant')];
    await store.append(key, next);
    expect(await store.load(key)).toEqual([...first, ...next]);

    // A claim that lands while an append waits for the session head is seen by it.
    const holder = await t.database.pool.connect();
    try {
      await holder.query('begin');
      await holder.query('select 1 from sessions where session_id = $1 for update', [key.sessionId]);
      let settled = false;
      const pending = store.append(key, [entry('user')]).then(
        () => ((settled = true), undefined),
        (err: unknown) => ((settled = true), err),
      );
      // Wait until the append is blocked on that row lock (not a sleep: poll pg_locks' view of waiters).
      const deadline = Date.now() + 10_000;
      for (;;) {
        const waiting = await q<{ n: string }>(`select count(*) as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`);
        if (Number(waiting[0]!.n) > 0) break;
        if (Date.now() > deadline) throw new Error('the append never waited on the session head');
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(settled).toBe(false);
      await setLease('ticket-busy', true);
      await holder.query('commit');
      expect(await pending).toBeInstanceOf(SdkSessionBusyError);
    } finally {
      holder.release();
    }
    expect(await store.load(key)).toEqual([...first, ...next]);
    await setLease('ticket-busy', false);
  });
});

describe('lines stored by a worker', () => {
  it('are returned by load and deduplicated by uuid; checkpoints of an unfinished turn block appends', async () => {
    const key = newKey();
    const sdkTurn = [entry('user', { message: 'from the app' }), entry('assistant')];
    await store.append(key, sdkTurn);
    await attachSdkSession(db(), { conversationId: 'ticket-worker', sessionId: key.sessionId });
    const conv = (await findConversation(db(), { externalId: 'ticket-worker' }))!;

    // A worker's turn, as the worker stores it: hydrate, the CLI appends, persist + commit.
    const cwd = mkdtempSync(path.join(t.root, 'cwd-'));
    const configDir = path.join(t.root, 'cfg-w');
    const h = await hydrateSession(db(), { conversationId: conv.id, sessionId: key.sessionId, cwd, configDir });
    const cliLines = [entry('user', { message: 'from agentq' }), entry('assistant', { message: 'agentq reply' })];
    appendFileSync(h.path, cliLines.map((e) => `${JSON.stringify(e)}\n`).join(''));
    const persist = (attempt: number, commit: boolean) =>
      persistSession(db(), { conversationId: conv.id, sessionId: key.sessionId, filePath: h.path, attempt, commit, maxLineBytes: 1 << 24 });
    await persist(1, true);
    expect(await store.load(key)).toEqual([...sdkTurn, ...cliLines]);

    // The SDK replays everything (an import) plus one new entry: only the new one is stored.
    const fresh = entry('user', { message: 'next from the app' });
    await store.append(key, [...sdkTurn, ...cliLines, fresh]);
    expect(await store.load(key)).toEqual([...sdkTurn, ...cliLines, fresh]);

    // An interrupted attempt's checkpoint (uncommitted lines): the SDK must wait for its retry.
    const h2 = await hydrateSession(db(), { conversationId: conv.id, sessionId: key.sessionId, cwd, configDir });
    appendFileSync(h2.path, `${JSON.stringify(entry('assistant', { partial: true }))}\n`);
    await persist(2, false);
    await expect(store.append(key, [entry('user')])).rejects.toBeInstanceOf(SdkSessionBusyError);
    expect(await store.load(key)).toEqual([...sdkTurn, ...cliLines, fresh]);
  });
});

describe('sdkResumeTarget', () => {
  it("opens a conversation's current session under the app's project key", async () => {
    const key = newKey();
    const lines = [entry('user'), entry('assistant')];
    await store.append(key, lines);
    await attachSdkSession(db(), { conversationId: 'ticket-resume', sessionId: key.sessionId });
    const cwd = mkdtempSync(path.join(t.root, 'web app-'));
    mkdirSync(path.join(cwd, 'sub'));
    const target = await sdkResumeTarget(db(), { conversationId: 'ticket-resume', cwd: path.join(cwd, 'sub') });
    expect(target).toEqual({ sessionId: key.sessionId, projectKey: encodeCwd(path.join(cwd, 'sub')) });
    expect(sdkProjectKey(path.join(cwd, 'sub'))).toBe(target.projectKey);
    expect(await store.load(target)).toEqual(lines);
    expect(await store.listSessions(target.projectKey)).toEqual([{ sessionId: key.sessionId, mtime: expect.any(Number) as number }]);
    // Same again is fine; the adapter's method does the same in its tenant.
    expect(await store.resumeTarget('ticket-resume', { projectKey: target.projectKey })).toEqual(target);

    await expect(sdkResumeTarget(db(), { conversationId: 'ticket-none', projectKey: 'p' })).rejects.toBeInstanceOf(SdkSessionNotFoundError);
    await client.enqueueTurn({ conversationId: 'ticket-no-session', prompt: 'x' });
    await expect(sdkResumeTarget(db(), { conversationId: 'ticket-no-session', projectKey: 'p' })).rejects.toThrow(/no session yet/);
    await expect(sdkResumeTarget(db(), { conversationId: 'ticket-resume' })).rejects.toBeInstanceOf(StoreInputError);
    // A key already naming another conversation's session is not taken over.
    await expect(sdkResumeTarget(db(), { conversationId: 'ticket-resume', projectKey: key.projectKey })).resolves.toEqual({ sessionId: key.sessionId, projectKey: key.projectKey });
    const stranger = newKey();
    await store.append({ projectKey: 'shared-key', sessionId: stranger.sessionId }, [entry('user')]);
    await attachSdkSession(db(), { conversationId: 'ticket-stranger', sessionId: stranger.sessionId });
    await q(`update conversations set session_id = $1 where external_id = 'ticket-resume'`, [stranger.sessionId]);
    await expect(sdkResumeTarget(db(), { conversationId: 'ticket-resume', projectKey: 'shared-key' })).rejects.toBeInstanceOf(SdkAttachConflictError);
  });
});

describe('agentq attach', () => {
  it('attaches and reports; exit 1 for an unknown session, 2 for a bad id', async () => {
    const key = newKey();
    await store.append(key, [entry('user'), entry('assistant')]);
    const io = capture();
    expect(await main(['node', 'agentq', 'attach', 'ticket-cli', key.sessionId, '--json'], io)).toBe(0);
    expect(JSON.parse(io.outText())).toEqual({
      conversationId: 'ticket-cli',
      tenantId: 'default',
      sessionId: key.sessionId,
      projectKeys: [key.projectKey],
      lines: 2,
      moved: true,
    });
    const show = capture();
    expect(await main(['node', 'agentq', 'show', 'ticket-cli', '--json'], show)).toBe(0);
    expect(JSON.parse(show.outText())).toMatchObject({ conversationId: 'ticket-cli', sessionId: key.sessionId });

    const plain = capture();
    expect(await main(['node', 'agentq', 'attach', 'ticket-cli', key.sessionId], plain)).toBe(0);
    expect(plain.outText()).toMatch(/already was in it/);
    const unknown = capture();
    expect(await main(['node', 'agentq', 'attach', 'ticket-cli', randomUUID()], unknown)).toBe(1);
    expect(unknown.errText()).toMatch(/no SDK session/);
    const bad = capture();
    expect(await main(['node', 'agentq', 'attach', 'bad id', key.sessionId], bad)).toBe(2);
    expect(bad.errText()).toMatch(/^conversationId:/);
  });
});
