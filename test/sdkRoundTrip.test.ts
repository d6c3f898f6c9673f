// The round trip with the real Agent SDK (@anthropic-ai/claude-agent-sdk, its query()
// driving agentq's pinned CLI) and the project's mock model, offline: an SDK query with
// agentq's sessionStore; the session attached to a conversation and continued by an agentq
// turn on a real worker (the model must be sent the SDK turn); the conversation resumed
// from the SDK through the store in a brand-new config dir (the model must be sent the
// agentq turn); and one more agentq turn that must see the resumed SDK turn. Then the
// runnable example of the README, as a process.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { deleteSession, getSessionMessages, listSessions, query, type Options, type SDKMessage } from '@anthropic-ai/claude-agent-sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { startMockModel, type MockModel, type RecordedRequest } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { sdkProjectKey } from '../src/sdk/attach.js';
import type { SdkSessionEntry } from '../src/sdk/entries.js';
import type { SdkSessionKey } from '../src/sdk/keys.js';
import { createSessionStore, type AgentqSessionStore } from '../src/sdk/sessionStore.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { createTestDatabase } from './helpers/db.js';
import { offlineCliEnv, realCliMachine } from './helpers/realCli.js';

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;
let config: Config;
const running = new Set<TurnWorker>();

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  t.database.pool.on('error', () => undefined);
  config = realCliMachine(t.env, t.root, 'worker', mock.url);
  client = createClient(t.config);
});
afterAll(async () => {
  for (const w of running) await w.stop({ graceMs: 0 });
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

/** The store, with a record of what the SDK called on it. */
function recording(store: AgentqSessionStore): { store: AgentqSessionStore; calls: { op: string; key: SdkSessionKey; n?: number }[] } {
  const calls: { op: string; key: SdkSessionKey; n?: number }[] = [];
  return {
    calls,
    store: {
      ...store,
      append: (key, entries) => (calls.push({ op: 'append', key, n: entries.length }), store.append(key, entries)),
      load: (key) => (calls.push({ op: 'load', key }), store.load(key)),
      listSubkeys: (key) => (calls.push({ op: 'listSubkeys', key }), store.listSubkeys(key)),
    },
  };
}

async function sdkQuery(prompt: string, options: Options): Promise<{ sessionId: string; result: string; messages: SDKMessage[] }> {
  const messages: SDKMessage[] = [];
  for await (const m of query({ prompt, options })) messages.push(m);
  const init = messages.find((m) => m.type === 'system' && m.subtype === 'init');
  const result = messages.find((m) => m.type === 'result');
  expect(messages.filter((m) => m.type === 'system' && m.subtype === 'mirror_error')).toEqual([]);
  expect(result?.subtype).toBe('success');
  return { sessionId: init?.session_id ?? '', result: result?.subtype === 'success' ? result.result : '', messages };
}

const sentText = (req: RecordedRequest | undefined): string => JSON.stringify(req?.body?.messages ?? []);

async function agentqTurn(conversationId: string, prompt: string) {
  const worker = createWorker(config, { concurrency: 1 });
  running.add(worker);
  await worker.start();
  try {
    const { turnId } = await client.enqueueTurn({ conversationId, prompt });
    return await client.waitForTurn(turnId, 60_000);
  } finally {
    await worker.stop({ graceMs: 0 });
    running.delete(worker);
  }
}

describe('the Agent SDK and agentq share a conversation', () => {
  // The SDK runs agentq's pinned CLI (what the README recommends: one CLI version reads
  // every transcript), or the newer native CLI the SDK ships with.
  it.each([
    ['the pinned CLI', 'ticket-sdk-pinned', true],
    ["the SDK's own CLI", 'ticket-sdk-own', false],
  ])('SDK query (%s) -> agentq turn on the attached conversation -> SDK resume through the store -> agentq turn', async (_name, conversationId, pinned) => {
    const { store, calls } = recording(createSessionStore({ db: t.database.db }));
    const appDir = path.join(t.root, `web app ${conversationId}`);
    mkdirSync(appDir);
    const sdkOptions = (extra: Partial<Options> = {}): Options => ({
      cwd: appDir,
      sessionStore: store,
      ...(pinned ? { pathToClaudeCodeExecutable: config.claudePath } : {}),
      // A fresh config dir per query: a resume can only come from the store.
      env: { ...offlineCliEnv(mock.url), HOME: t.root, CLAUDE_CONFIG_DIR: mkdtempSync(path.join(t.root, 'sdk-config-')) },
      maxTurns: 3,
      ...extra,
    });

    // 1. The SDK app.
    const one = await sdkQuery('sdk one: the parcel code is PX-7731', sdkOptions());
    expect(one.result).toBe('mock reply: sdk one: the parcel code is PX-7731');
    const key = { projectKey: sdkProjectKey(appDir), sessionId: one.sessionId };
    expect(calls.filter((c) => c.op === 'append').every((c) => c.key.projectKey === key.projectKey && c.key.sessionId === key.sessionId)).toBe(true);
    const afterOne = (await store.load(key))!;
    expect(afterOne.some((e) => e.type === 'user' && JSON.stringify(e).includes('PX-7731'))).toBe(true);

    // 2. agentq continues it.
    const attached = await store.attach(conversationId, one.sessionId);
    expect(attached.lines).toBe(afterOne.length);
    const requestsBefore = mock.requests.length;
    const two = await agentqTurn(conversationId, 'agentq two: look the parcel up <<recall>>');
    expect(two.status, JSON.stringify(two.error)).toBe('succeeded');
    expect(two.sessionIdBefore).toBe(one.sessionId);
    expect(two.result).toContain('sdk one: the parcel code is PX-7731');
    const agentqRequests = mock.mainRequests().filter((r) => mock.requests.indexOf(r) >= requestsBefore);
    expect(sentText(agentqRequests.at(-1))).toContain('PX-7731');

    // 3. The SDK app resumes the conversation's current session through the store.
    const target = await store.resumeTarget(conversationId, { cwd: appDir });
    expect(target).toEqual({ sessionId: two.sessionIdAfter, projectKey: key.projectKey });
    const loadsBefore = calls.filter((c) => c.op === 'load').length;
    const three = await sdkQuery('sdk three: what happened so far? <<recall>>', sdkOptions({ resume: target.sessionId }));
    expect(calls.filter((c) => c.op === 'load').length).toBeGreaterThan(loadsBefore);
    expect(calls.some((c) => c.op === 'listSubkeys')).toBe(true);
    expect(three.result).toContain('sdk one: the parcel code is PX-7731');
    expect(three.result).toContain('agentq two: look the parcel up');
    expect(sentText(mock.mainRequests().at(-1))).toContain('agentq two: look the parcel up');
    expect(three.sessionId).toBe(target.sessionId);

    // 4. And agentq sees the resumed SDK turn.
    const four = await agentqTurn(conversationId, 'agentq four: summarise <<recall>>');
    expect(four.status).toBe('succeeded');
    expect(four.result).toContain('sdk three: what happened so far?');
    expect(four.result).toContain('agentq two: look the parcel up');

    // One transcript, in order, each turn's prompt once.
    const all = JSON.stringify(await store.load(target));
    const at = (s: string) => all.indexOf(s);
    expect(at('sdk one: the parcel')).toBeGreaterThanOrEqual(0);
    expect(at('sdk one: the parcel')).toBeLessThan(at('agentq two: look'));
    expect(at('agentq two: look')).toBeLessThan(at('sdk three: what'));
    expect(at('sdk three: what')).toBeLessThan(at('agentq four: summarise'));
    // A prompt line's content is a string (the CLI's -p) or text blocks (the SDK's).
    const promptOf = (e: SdkSessionEntry): string[] => {
      const content = (e.message as { content?: unknown } | undefined)?.content;
      if (e.type !== 'user' || e.isMeta === true) return [];
      if (typeof content === 'string') return [content];
      if (!Array.isArray(content)) return [];
      return (content as { type?: string; text?: string }[]).flatMap((b) => (b.type === 'text' && typeof b.text === 'string' ? [b.text] : []));
    };
    const prompts = (await store.load(target))!.flatMap(promptOf).filter((text) => /^(sdk|agentq) /.test(text));
    expect(prompts).toEqual([
      'sdk one: the parcel code is PX-7731',
      'agentq two: look the parcel up <<recall>>',
      'sdk three: what happened so far? <<recall>>',
      'agentq four: summarise <<recall>>',
    ]);

    // The SDK's own session functions work through the adapter too.
    const listed = await listSessions({ dir: appDir, sessionStore: store });
    expect(listed.map((x) => x.sessionId)).toContain(target.sessionId);
    const messages = await getSessionMessages(target.sessionId, { dir: appDir, sessionStore: store });
    expect(JSON.stringify(messages)).toContain('agentq four: summarise');
    expect(messages.filter((m) => m.type === 'assistant').length).toBeGreaterThanOrEqual(4);
    await deleteSession(target.sessionId, { dir: appDir, sessionStore: store });
    expect(await store.load(target)).toBeNull();
    expect((await listSessions({ dir: appDir, sessionStore: store })).map((x) => x.sessionId)).not.toContain(target.sessionId);
  });

  it('the README example runs as a process and reports both directions', async () => {
    const db = await createTestDatabase();
    try {
      const example = fileURLToPath(new URL('../dist/examples/sdkInterop.js', import.meta.url));
      const env: Record<string, string | undefined> = { ...process.env, DATABASE_URL: db.url, AGENTQ_SANDBOX: 'off' };
      delete env.ANTHROPIC_API_KEY;
      delete env.ANTHROPIC_BASE_URL;
      const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
        execFile(process.execPath, [example, '--cleanup'], { env, timeout: 120_000 }, (err, out, errOut) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: out, stderr: errOut }),
        );
      });
      expect(stdout, stderr).toContain('The agentq turn saw the SDK turn: true');
      expect(stdout).toContain('The resumed SDK query saw the agentq turn: true');
      expect(code).toBe(0);
      const left = await db.pool.query<{ n: number }>('select (select count(*) from conversations) + (select count(*) from sdk_sessions) as n');
      expect(Number(left.rows[0]!.n)).toBe(0);
    } finally {
      await db.drop();
    }
  });
});
