// Subagent transcripts with the REAL CLI against the mock model. Turn 1, on machine A,
// starts a subagent (the Task tool); the CLI writes its transcript next to the session
// file. Turn 2, on machine B (nothing on disk in common), continues that agent with the
// SendMessage tool: the CLI must find the agent's transcript (else it answers "No
// transcript found for agent ID"), and the agent's next request to the model carries its
// earlier history. Both transcripts are stored and committed with each turn.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createStoreDb } from '../src/store/db.js';
import { getSessionHeads } from '../src/store/sessions.js';
import { getSidecars } from '../src/store/sidecars.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { PREVIOUS_CLI_VERSION } from '../src/runner/cliVersion.js';
import { realCliMachine, succeedOnOwnWorker, testCliIs } from './helpers/realCli.js';

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;
let machines: Config[];

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  machines = ['machine-a', 'machine-b'].map((name) => realCliMachine(t.env, t.root, name, mock.url, { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1' }));
  client = createClient(t.config);
});
afterAll(async () => {
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

/** Runs one turn on a worker of `config` that lives only for it. */
async function turnOn(config: Config, conversationId: string, prompt: string) {
  const turnId = await succeedOnOwnWorker(client, config, { conversationId, prompt, maxTurns: 4 });
  return (await client.getTurn(turnId))!;
}

describe('subagent transcripts with the real CLI', () => {
  it('an agent started on one worker is continued on another, from its stored transcript', async () => {
    const conversationId = 'subagent-real';
    const first = await turnOn(
      machines[0]!,
      conversationId,
      '<<tool Task {"description":"keeper","prompt":"remember the word PAPAYA","subagent_type":"general-purpose"}>>',
    );
    // The Task tool's result names the agent (2.1.197 waits for it; 2.1.332 launches it in
    // the background, and the mock's answer quotes too little of that result to hold the id).
    const events = await t.database.pool.query<{ payload: string }>('select payload from turn_events where turn_id = $1 order by attempt, seq', [first.turnId]);
    const agentId = /agentId: (\w+)/.exec(events.rows.map((e) => e.payload).join('\n'))?.[1];
    expect(agentId, first.result ?? '').toBeDefined();

    const db = createStoreDb(t.database.pool);
    const conv = await t.database.pool.query<{ id: string }>('select id from conversations where external_id = $1', [conversationId]);
    const convId = conv.rows[0]!.id;
    const heads1 = await getSessionHeads(db, convId, first.sessionId!);
    const agentFile = `${first.sessionId}/subagents/agent-${agentId}`;
    const agent1 = heads1.subagents.find((h) => h.sessionId === agentFile);
    expect(heads1.subagents.map((h) => h.sessionId)).toEqual([agentFile]);
    expect(agent1!.committedLineCount).toBeGreaterThan(0);
    expect(agent1!.committedLineCount).toBe(agent1!.lineCount);
    // The agent's sidecar (its type) is stored with it.
    const sidecar = (await getSidecars(db, convId, [agentFile])).get(agentFile);
    expect(JSON.parse(sidecar ?? '{}')).toMatchObject({ agentType: 'general-purpose', description: 'keeper' });

    const before = mock.requests.length;
    const second = await turnOn(
      machines[1]!,
      conversationId,
      `<<tool SendMessage {"to":"${agentId}","summary":"continue the keeper","message":"which word did you keep?"}>>`,
    );
    expect(second.sessionId).toBe(first.sessionId);
    const sent = mock.requests
      .slice(before)
      .filter((r) => r.kind === 'main')
      .map((r) => JSON.stringify(r.body?.messages ?? []));
    // The SendMessage tool's result, as the CLI sent it back to the model.
    expect(sent.join('\n')).not.toMatch(/No transcript found/);
    // Worded per version: 2.1.197 says it resumed from the transcript, 2.1.332 names the resumed agent.
    expect(sent.join('\n')).toMatch(testCliIs(PREVIOUS_CLI_VERSION) ? /resumed from transcript/ : /resumedAgentId/);
    // The agent's own request on machine B carries its history from machine A.
    // (The main thread's requests hold the SendMessage call; 2.1.332 also names the tool in the agent's own context.)
    const agentRequests = sent.filter((m) => m.includes('which word did you keep?') && !m.includes('"name":"SendMessage"'));
    expect(agentRequests.length).toBeGreaterThan(0);
    expect(agentRequests[0]).toContain('remember the word PAPAYA');
    expect(agentRequests[0]).toContain('mock reply: remember the word PAPAYA');

    // The agent's continuation is stored and committed with turn 2.
    const heads2 = await getSessionHeads(db, convId, first.sessionId!);
    const agent2 = heads2.subagents.find((h) => h.sessionId === agentFile)!;
    expect(agent2.committedLineCount).toBeGreaterThan(agent1!.committedLineCount);
    expect(agent2.committedLineCount).toBe(agent2.lineCount);
  }, 180_000);
});
