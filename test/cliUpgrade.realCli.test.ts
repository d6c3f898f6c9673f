// A fleet that upgrades the CLI while conversations are open, with the REAL binaries of
// both tested versions (src/runner/cliVersion.ts) against the mock model, sandboxed as in
// production: turns of one conversation run on a worker with one version, then on a
// worker with the other. The newer CLI continues what the older one wrote (the session,
// its subagent transcripts, its session folder, a fork of it), and the older continues
// what the newer wrote. What holds is written up in docs/cli-versions.md.
import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { installedCliPath, PINNED_CLI_VERSION, PREVIOUS_CLI_VERSION } from '../src/runner/cliVersion.js';
import { runClaude } from '../src/runner/runClaude.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { realCliMachine, realCliSettings, succeedOnOwnWorker, testCliIs } from './helpers/realCli.js';

const OLD = PREVIOUS_CLI_VERSION;
const NEW = PINNED_CLI_VERSION;

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;
/** One sandboxed "machine" per version, sharing nothing on disk. */
let machine: Record<string, Config>;

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  machine = Object.fromEntries(
    [OLD, NEW].map((v) => [
      v,
      realCliMachine(t.env, t.root, `cli-${v}`, mock.url, { AGENTQ_CLAUDE_PATH: installedCliPath(v), AGENTQ_SANDBOX: 'bwrap', CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' }),
    ]),
  );
  client = createClient(t.config);
});
afterAll(async () => {
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

/** Runs one turn on the worker of `version`; returns the turn and what the CLI sent the model. */
async function turnOn(version: string, conversationId: string, prompt: string) {
  const before = mock.requests.length;
  const turnId = await succeedOnOwnWorker(client, machine[version]!, { conversationId, prompt, maxTurns: 4 });
  const sent = mock.requests
    .slice(before)
    .filter((r) => r.kind === 'main')
    .map((r) => JSON.stringify(r.body?.messages ?? []));
  return { turn: (await client.getTurn(turnId))!, sent: sent.join('\n'), lastSent: sent.at(-1) ?? '' };
}

const bash = (command: string) => `<<tool Bash ${JSON.stringify({ command })}>>`;
const read = (file: string) => `<<tool Read ${JSON.stringify({ file_path: file, offset: 299990, limit: 5 })}>>`;

/**
 * Turn 1 on `from`: a file in the workspace and an output too large for the transcript
 * (saved in the session folder); turn 2 on `to`: the whole history, the file, and the
 * saved output read back at the path the model was told.
 */
async function continueAcross(from: string, to: string, conversationId: string) {
  const first = await turnOn(from, conversationId, `${from} writes: ${bash('echo written-by-old > f.txt; seq 1 300000')}`);
  expect(first.turn.cliVersions).toEqual({ '1': from });
  const saved = /Full output saved to: ([^\s\\"]+)/.exec(first.sent)?.[1];
  expect(saved, first.sent.slice(0, 1000)).toMatch(/\/tool-results\/[^/]+\.txt$/);

  const second = await turnOn(to, conversationId, `${to} continues: <<recall>> ${read(saved!)} ${bash('cat f.txt')}`);
  expect(second.turn.sessionId).toBe(first.turn.sessionId);
  expect(second.turn.cliVersions).toEqual({ '1': to });
  // The history the newer run sent holds the older run's prompt and tool call.
  expect(second.lastSent).toContain(`${from} writes:`);
  expect(second.lastSent).toContain('seq 1 300000');
  // The session folder came along: the saved output was found at the path the model was told.
  expect(second.sent).not.toMatch(/does not exist|File not found/i);
  expect(second.sent).toContain('299991');
  // And the workspace.
  expect(second.sent).toContain('written-by-old');
  return { first, second };
}

describe.skipIf(!testCliIs(NEW))(`upgrading the CLI mid-conversation (${OLD} ↔ ${NEW})`, () => {
  it(`a conversation begun on ${OLD} continues on ${NEW}: history, workspace, session folder`, async () => {
    const { second } = await continueAcross(OLD, NEW, 'upgrade-forward');
    // `show` and the API tell which version wrote what.
    const view = (await client.getConversation('upgrade-forward'))!;
    expect(view.turns.map((x) => x.cliVersions)).toEqual([{ '1': OLD }, { '1': NEW }]);
    expect(second.turn.status).toBe('succeeded');
  }, 180_000);

  it(`and back: a conversation begun on ${NEW} continues on ${OLD}`, async () => {
    await continueAcross(NEW, OLD, 'upgrade-backward');
  }, 180_000);

  it.each([
    [OLD, NEW, 'PAPAYA'],
    [NEW, OLD, 'GUAVA'],
  ])('a subagent started by %s is continued by %s from its stored transcript', async (starter, continuer, word) => {
    const conversationId = `subagent-${starter}-${continuer}`;
    // 2.1.197 waits for the agent; 2.1.332 launches it in the background. Either way the Task
    // call's result, which the next request carries, names the agent.
    const first = await turnOn(starter, conversationId, `<<tool Task {"description":"keeper","prompt":"remember the word ${word}","subagent_type":"general-purpose"}>>`);
    const agentId = /agentId: (\w+)/.exec(first.sent)?.[1];
    expect(agentId, first.sent.slice(0, 2000)).toBeDefined();
    const second = await turnOn(continuer, conversationId, `<<tool SendMessage {"to":"${agentId}","summary":"continue the keeper","message":"which word did you keep?"}>>`);
    expect(second.sent).not.toMatch(/No transcript found/);
    // Worded per version (docs/cli-versions.md).
    expect(second.sent).toMatch(continuer === OLD ? /resumed from transcript/ : /resumedAgentId/);
    // The agent's own request carries its history, written by the other version.
    const agentRequests = second.sent.split('\n').filter((m) => m.includes('which word did you keep?') && !m.includes('"name":"SendMessage"'));
    expect(agentRequests.length).toBeGreaterThan(0);
    expect(agentRequests[0]).toContain(`remember the word ${word}`);
  }, 180_000);

  it.each([
    [OLD, NEW],
    [NEW, OLD],
  ])('a session written by %s is forked by %s: a new id, the whole history, the original untouched', async (writer, forker) => {
    const dir = path.join(t.root, `fork-${writer}-${forker}`);
    for (const d of ['w', 'c', 't']) mkdirSync(path.join(dir, d), { recursive: true });
    const base = { cwd: path.join(dir, 'w'), configDir: path.join(dir, 'c'), tmpDir: path.join(dir, 't'), permissionMode: 'bypassPermissions' as const, maxTurns: 2 };
    const sessionId = randomUUID();
    const wrote = await runClaude({ ...base, prompt: `original by ${writer}`, session: { mode: 'new', sessionId } }, { ...realCliSettings(mock.url), claudePath: installedCliPath(writer) });
    expect(wrote.type).toBe('success');
    const original = sessionFilePath(base.configDir, base.cwd, sessionId);
    const originalBytes = readFileSync(original);
    const forkId = randomUUID();
    const before = mock.requests.length;
    const forked = await runClaude(
      { ...base, prompt: `forked by ${forker}`, session: { mode: 'resume', sessionId, fork: true, forkSessionId: forkId } },
      { ...realCliSettings(mock.url), claudePath: installedCliPath(forker) },
    );
    expect(forked.type).toBe('success');
    expect(forked.sessionId).toBe(forkId);
    const sent = JSON.stringify(mock.requests.slice(before).filter((r) => r.kind === 'main').at(-1)?.body?.messages ?? []);
    expect(sent).toContain(`original by ${writer}`);
    expect(sent).toContain(`forked by ${forker}`);
    expect(readFileSync(original).equals(originalBytes)).toBe(true);
    expect(readFileSync(sessionFilePath(base.configDir, base.cwd, forkId), 'utf8')).toContain(`original by ${writer}`);
  }, 120_000);
});
