// The session folder through the turn protocol with the fake CLI (`#fake {"subagent"}`
// appends a line to a subagent's transcript, as the Task tool does; `#fake {"toolResult"}`
// saves a large tool output's text; its log says what it found on disk at start): both
// cross workers that share nothing on disk, and an interrupted attempt's follow the
// session's retry rule.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, type Config } from '../src/config.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { getSessionHeads } from '../src/store/sessions.js';
import { getSidecars } from '../src/store/sidecars.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog, type FakeCliRecord } from './helpers/fakeCliLog.js';
import { scriptedFakeCli } from './helpers/infra.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

interface StartRecord extends FakeCliRecord {
  event: 'start';
  promptText: string;
  subagents: Record<string, { texts: string[]; meta: boolean }>;
  toolResults: Record<string, string>;
}

let t: TestAgentq;
let client: AgentqClient;

beforeAll(async () => {
  t = await createTestAgentq();
  client = createClient(t.config);
});
afterAll(async () => {
  await stopWorkers();
  await client?.close();
  await t?.cleanup();
});

const machine = (name: string, extra: Record<string, string> = {}): Config =>
  loadConfig({ ...t.env, AGENTQ_WORKSPACE_ROOT: path.join(t.root, name, 'workspaces'), AGENTQ_RUNS_ROOT: path.join(t.root, name, 'runs'), ...extra });

const starts = (): StartRecord[] => readFakeCliLog(t.logFile).filter((r): r is StartRecord => r.event === 'start');

/** One turn on a worker of `config` that lives only for it; returns what the fake CLI found at start. */
async function turnOn(config: Config, conversationId: string, prompt: string): Promise<StartRecord> {
  const w = await startWorker(config, { concurrency: 1 });
  const { turnId } = await client.enqueueTurn({ conversationId, prompt });
  expect((await client.waitForTurn(turnId, 20_000)).status).toBe('succeeded');
  await w.stop();
  return starts().at(-1)!;
}

/** The stored subagent heads of a conversation's current session, as [id suffix, lines, committed]. */
async function storedSubagents(conversation: string) {
  const conv = await client.getConversation(conversation);
  const row = await t.database.pool.query<{ id: string }>('select id from conversations where external_id = $1', [conversation]);
  const { subagents } = await getSessionHeads(client.db, row.rows[0]!.id, conv!.sessionId!);
  return {
    convId: row.rows[0]!.id,
    heads: subagents.map((h) => [h.sessionId.slice(conv!.sessionId!.length + 1), h.lineCount, h.committedLineCount]),
  };
}

describe('the session folder through the turn protocol', () => {
  it('cross workers with nothing on disk in common, turn after turn, with their sidecars', async () => {
    const run = (config: Config, prompt: string) => turnOn(config, 'sub-cross', prompt);
    const a = machine('a');
    const b = machine('b');
    expect((await run(a, '#fake {"subagent":"s1"}\nfirst')).subagents).toEqual({});
    expect((await run(b, '#fake {"subagent":"s1"}\nsecond')).subagents).toEqual({ s1: { texts: ['first'], meta: true } });
    expect((await run(a, 'third')).subagents).toEqual({ s1: { texts: ['first', 'second'], meta: true } });
    const stored = await storedSubagents('sub-cross');
    expect(stored.heads).toEqual([['subagents/agent-s1', 2, 2]]);
    const sessionId = (await client.getConversation('sub-cross'))!.sessionId!;
    const sidecar = (await getSidecars(client.db, stored.convId, [`${sessionId}/subagents/agent-s1`])).values().next().value;
    expect(JSON.parse(sidecar ?? '{}')).toEqual({ agentType: 'general-purpose', description: 'fake s1' });
  });

  it('saved tool outputs cross workers with the session, and later ones are added', async () => {
    const run = (config: Config, prompt: string) => turnOn(config, 'tool-out', prompt);
    const a = machine('ta');
    const b = machine('tb');
    expect((await run(a, '#fake {"toolResult":"r1"}\nbig output one')).toolResults).toEqual({});
    expect((await run(b, '#fake {"toolResult":"r2"}\nbig output two')).toolResults).toEqual({ r1: 'big output one' });
    expect((await run(a, 'look')).toolResults).toEqual({ r1: 'big output one', r2: 'big output two' });
    const row = await t.database.pool.query<{ file_count: number }>(
      'select f.file_count from session_folders f join conversations c on c.id = f.conversation_id where c.external_id = $1',
      ['tool-out'],
    );
    expect(row.rows).toEqual([{ file_count: 2 }]);
  });

  it("an interrupted attempt's subagent lines and tool outputs are continued by a retry; with continueOnRetry false the lines are dropped", async () => {
    const crash = { subagent: 'k', toolResult: 'partial', crash: { afterInit: true, exitCode: 3 } };
    const cli = scriptedFakeCli(path.join(t.root, 'scripted'), [crash, undefined, crash, undefined]);
    const w = await startWorker(machine('c', { AGENTQ_CLAUDE_PATH: cli.path, AGENTQ_MAX_ATTEMPTS: '2' }), { concurrency: 1 });
    const before = starts().length;

    const kept = await client.enqueueTurn({ conversationId: 'sub-keep', prompt: 'crash once' });
    const keptDone = await client.waitForTurn(kept.turnId, 20_000);
    expect(keptDone, JSON.stringify(keptDone.error)).toMatchObject({ status: 'succeeded', attempts: 2 });
    // The retry found the crashed attempt's subagent line, and its commit committed it.
    expect(starts()[before + 1]!.subagents).toEqual({ k: { texts: ['crash once'], meta: true } });
    // The output the crashed attempt saved is there for the retry (stored by its last checkpoint).
    expect(starts()[before + 1]!.toolResults).toEqual({ partial: 'crash once' });
    expect((await storedSubagents('sub-keep')).heads).toEqual([['subagents/agent-k', 1, 1]]);

    const dropped = await client.enqueueTurn({ conversationId: 'sub-drop', prompt: 'crash again', options: { continueOnRetry: false } });
    expect(await client.waitForTurn(dropped.turnId, 20_000)).toMatchObject({ status: 'succeeded', attempts: 2 });
    // Started over: the subagent line of the interrupted attempt is gone, on disk and stored.
    expect(starts()[before + 3]!.subagents).toEqual({});
    expect((await storedSubagents('sub-drop')).heads).toEqual([['subagents/agent-k', 0, 0]]);
    expect(cli.invocations()).toBe(4);
    await w.stop();
  });
});
