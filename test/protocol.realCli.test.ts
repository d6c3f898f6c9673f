// The turn protocol with the REAL Claude Code CLI against the mock model: five turns of
// one conversation alternate between two workers that share the database and the queue
// but nothing on disk (different workspace and runs roots). Every CLI run must see the
// whole history, the session id stays the same, and a file a tool wrote on one worker is
// there for the next turn on the other (the workspace archive round trip).
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../src/config.js';
import { startMockModel, type MockModel, type RecordedRequest } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { workspaceDirName } from '../src/store/ids.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { PREVIOUS_CLI_VERSION } from '../src/runner/cliVersion.js';
import { realCliMachine, testCliIs } from './helpers/realCli.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;
let machines: Config[];
const running = new Set<TurnWorker>();

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  t.database.pool.on('error', () => undefined);
  machines = ['machine-a', 'machine-b'].map((name) => realCliMachine(t.env, t.root, name, mock.url));
  client = createClient(t.config);
});
afterAll(async () => {
  for (const w of running) await w.stop({ graceMs: 0 });
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

const textOf = (req: RecordedRequest): string => JSON.stringify(req.body?.messages ?? []);

describe('five real-CLI turns alternating between two workers', () => {
  it('each run sees the whole history, the session id stays, and a tool-written file crosses workers', async () => {
    expect(machines[0]!.claudePath).toMatch(/claude-code/);
    expect(machines[0]!.workspaceRoot).not.toBe(machines[1]!.workspaceRoot);
    const prompts = [
      'turn one: remember the word pelican',
      'turn two: <<tool Bash {"command":"echo hi > f.txt"}>>',
      'turn three: <<tool Bash {"command":"cat f.txt"}>>',
      'turn four: what was the word?',
      'turn five: thanks',
    ];
    const conversationId = 'ticket-real-1';
    const dir = workspaceDirName(conversationId);
    const sessionIds: (string | null)[] = [];

    for (const [i, prompt] of prompts.entries()) {
      const config = machines[i % 2]!;
      const firstRequest = mock.requests.length;
      const { turnId } = await client.enqueueTurn({
        conversationId,
        prompt,
        options: { permissionMode: 'bypassPermissions', maxTurns: 3 },
      });
      // Only this machine's worker runs, for this turn only.
      const worker = createWorker(config, { concurrency: 1 });
      running.add(worker);
      await worker.start();
      const done = await client.waitForTurn(turnId, 45_000);
      await worker.stop({ graceMs: 0 });
      running.delete(worker);
      expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
      expect(done.attempts).toBe(1);
      sessionIds.push(done.sessionIdAfter);

      const mains = mock.requests.slice(firstRequest).filter((r) => r.kind === 'main');
      expect(mains.length).toBeGreaterThan(0);
      const last = mains.at(-1)!;
      // The run saw every earlier prompt and its own (the session was hydrated on this machine).
      for (const p of prompts.slice(0, i + 1)) expect(textOf(last)).toContain(JSON.stringify(p).slice(1, -1));
      // It ran in this machine's workspace, not the other's.
      const system = JSON.stringify(last.body?.system ?? '') + textOf(last);
      expect(system).toContain(path.join(config.workspaceRoot, dir));
      if (testCliIs(PREVIOUS_CLI_VERSION)) expect(system).not.toContain(machines[(i + 1) % 2]!.workspaceRoot);
      // 2.1.332 keeps each turn's environment in the history and adds "Environment update ... (was <old cwd>)"
      // when the cwd changed: the latest one it states is this machine's.
      else expect([...system.matchAll(/Primary working directory: ([^\s"\\]+)/g)].at(-1)?.[1]).toBe(path.join(config.workspaceRoot, dir));

      if (i === 1) {
        // The tool ran on machine B and wrote into its workspace.
        expect(readFileSync(path.join(config.workspaceRoot, dir, 'f.txt'), 'utf8')).toBe('hi\n');
        expect(done.result).toContain('Done');
      }
      if (i === 2) {
        // Back on machine A, the file came from the stored workspace archive, and the tool read it.
        expect(readFileSync(path.join(config.workspaceRoot, dir, 'f.txt'), 'utf8')).toBe('hi\n');
        expect(done.result).toMatch(/Done: hi/);
        const toolResults = mains.flatMap((r) => (r.body?.messages ?? []).flatMap((m) => (Array.isArray(m.content) ? m.content : [])));
        expect(JSON.stringify(toolResults)).toContain('hi');
      }
    }

    // One session from start to end, on both machines.
    expect(new Set(sessionIds).size).toBe(1);
    const view = await client.getConversation(conversationId);
    expect(view?.sessionId).toBe(sessionIds[0]);
    expect(view?.turns.map((x) => x.status)).toEqual(['succeeded', 'succeeded', 'succeeded', 'succeeded', 'succeeded']);
    expect(view?.turns.slice(1).every((x) => x.sessionIdBefore === sessionIds[0])).toBe(true);
    // Both machines' workspaces hold the file now (each restored the archive).
    for (const m of machines) expect(existsSync(path.join(m.workspaceRoot, dir, 'f.txt'))).toBe(true);
  });
});
