// Ephemeral workers with the REAL Claude Code CLI against the mock model: three
// `agentq worker --once` processes, one after another, each on an empty disk, carry one
// conversation through three turns. Every run sees the whole history and the session id
// stays the same: each process hydrated it from Postgres.
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockModel, type MockModel, type RecordedRequest } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { offlineCliEnv, testCli } from './helpers/realCli.js';
import { killWorkerProcesses, startWorkerProcess } from './helpers/workerProcess.js';

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  client = createClient(t.config);
});
afterAll(async () => {
  await killWorkerProcesses();
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

const textOf = (req: RecordedRequest): string => JSON.stringify(req.body?.messages ?? []);

describe('real-CLI turns, one --once process each', () => {
  it('three --once processes on empty disks continue one real CLI session', async () => {
    const prompts = ['first: remember the word heron', 'second: and the number 42', 'third: what were the word and the number?'];
    const turnIds: string[] = [];
    for (const prompt of prompts) {
      turnIds.push((await client.enqueueTurn({ conversationId: 'real-once', prompt, options: { permissionMode: 'bypassPermissions', maxTurns: 2 } })).turnId);
    }
    for (let i = 0; i < prompts.length; i++) {
      const name = `real-${i}`;
      const env: Record<string, string> = {
        ...t.env,
        ...offlineCliEnv(mock.url),
        AGENTQ_WORKSPACE_ROOT: path.join(t.root, name, 'workspaces'),
        AGENTQ_RUNS_ROOT: path.join(t.root, name, 'runs'),
        AGENTQ_CLI_ENV_ALLOW: '',
        AGENTQ_CLAUDE_PATH: testCli.path,
      };
      delete env.FAKE_CLAUDE_LOG;
      const firstRequest = mock.requests.length;
      const w = await startWorkerProcess(env, { name, dir: t.root, concurrency: 1, args: ['--once', '--wait-ms', '20000'], waitReady: false });
      const exit = await w.exited;
      expect(exit.code, w.stderr()).toBe(0);
      const done = await client.getTurn(turnIds[i]!);
      expect(done!.status, JSON.stringify(done!.error)).toBe('succeeded');
      const mains = mock.requests.slice(firstRequest).filter((r) => r.kind === 'main');
      expect(mains.length).toBeGreaterThan(0);
      for (const p of prompts.slice(0, i + 1)) expect(textOf(mains.at(-1)!)).toContain(p);
      expect(JSON.stringify(mains.at(-1)!.body?.system ?? '') + textOf(mains.at(-1)!)).toContain(path.join(t.root, name, 'workspaces'));
    }
    const view = await client.getConversation('real-once');
    expect(view!.turns.map((x) => x.status)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect(new Set(view!.turns.map((x) => x.sessionIdAfter)).size).toBe(1);
    expect(view!.turns.slice(1).every((x) => x.sessionIdBefore === view!.sessionId)).toBe(true);
  }, 180_000);
});
