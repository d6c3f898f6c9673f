// Large tool outputs with the REAL CLI: the CLI saves an output too large for the
// transcript to `<config>/projects/<project>/<session>/tool-results/<id>.txt` and tells
// the model that path. Inside the sandbox the config directory is at a fixed path;
// unsandboxed the CLI is given a per-conversation link to the attempt's directory
// (src/worker/configLink.ts). Either way a later turn, on another worker, reads the file
// at the path the model was told.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { realCliMachine, succeedOnOwnWorker } from './helpers/realCli.js';

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;
let machines: Config[];
/** Unsandboxed workers configured alike (the same workspace and runs roots), as in one deployment. */
let unsandboxed: Config[];

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  machines = ['machine-a', 'machine-b'].map((name) =>
    realCliMachine(t.env, t.root, name, mock.url, { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', AGENTQ_SANDBOX: 'bwrap' }),
  );
  const shared = { AGENTQ_SANDBOX: 'off', AGENTQ_WORKSPACE_ROOT: path.join(t.root, 'shared', 'workspaces'), AGENTQ_RUNS_ROOT: path.join(t.root, 'shared', 'runs') };
  unsandboxed = ['worker-c', 'worker-d'].map((name) =>
    realCliMachine(t.env, t.root, name, mock.url, { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', ...shared }),
  );
  client = createClient(t.config);
});
afterAll(async () => {
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

async function turnOn(config: Config, prompt: string, conversationId = 'big-output'): Promise<string> {
  const before = mock.requests.length;
  await succeedOnOwnWorker(client, config, { conversationId, prompt, maxTurns: 3 });
  return mock.requests
    .slice(before)
    .map((r) => JSON.stringify(r.body?.messages ?? []))
    .join('\n');
}

describe('large tool outputs with the real CLI, sandboxed', () => {
  it('a later turn on another worker reads the output file the CLI saved', async () => {
    const sent = await turnOn(machines[0]!, `<<tool Bash ${JSON.stringify({ command: 'seq 1 300000' })}>>`);
    const saved = /Full output saved to: ([^\s\\"]+)/.exec(sent)?.[1];
    expect(saved, sent.slice(0, 2000)).toMatch(/\/tool-results\/[^/]+\.txt$/);
    const read = await turnOn(machines[1]!, `<<tool Read ${JSON.stringify({ file_path: saved, offset: 299990, limit: 5 })}>>`);
    expect(read).not.toMatch(/does not exist|File not found/i);
    expect(read).toContain('299991');
  }, 180_000);
});

describe('large tool outputs with the real CLI, unsandboxed', () => {
  it('a later turn on another worker configured alike reads the output file at the path the model was told', async () => {
    const conv = 'big-output-unsandboxed';
    const sent = await turnOn(unsandboxed[0]!, `<<tool Bash ${JSON.stringify({ command: 'seq 1 300000' })}>>`, conv);
    const saved = /Full output saved to: ([^\s\\"]+)/.exec(sent)?.[1];
    // The conversation's link, not the attempt's own directory (removed after the attempt).
    expect(saved, sent.slice(0, 2000)).toMatch(/\/\.config-links\/[^/]+\/projects\/.+\/tool-results\/[^/]+\.txt$/);
    expect(saved!.startsWith(unsandboxed[0]!.worker.runsRoot)).toBe(true);
    const read = await turnOn(unsandboxed[1]!, `<<tool Read ${JSON.stringify({ file_path: saved, offset: 299990, limit: 5 })}>>`, conv);
    expect(read).not.toMatch(/does not exist|File not found/i);
    expect(read).toContain('299991');
  }, 180_000);
});
