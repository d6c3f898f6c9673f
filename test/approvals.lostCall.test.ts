// A turn that waited for a person resumes its session with no prompt, and the CLI answers
// the call it stopped at. When the session does not hold that call (the CLI reported the
// deferral but the call's line never reached the file: a full disk), a prompt-less resume
// of a locked run waits for input until the idle timeout. The worker checks the hydrated
// session first and continues with a prompt instead (src/worker/openCall.ts). Fake CLI:
// `gatedCallLost` leaves the call out of the session file.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { DEFERRED_CALL_MISSING, holdsOpenCall } from '../src/worker/openCall.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

let t: TestAgentq;
let client: AgentqClient;

beforeAll(async () => {
  // Long enough that a resume waiting for input outlasts the test's wait for the turn.
  // As root, bypassPermissions needs IS_SANDBOX=1, in the fake CLI as in the real one.
  t = await createTestAgentq({ AGENTQ_CLI_IDLE_TIMEOUT_MS: '120000', AGENTQ_CLI_ENV_ALLOW: 'FAKE_CLAUDE_LOG,IS_SANDBOX', IS_SANDBOX: '1' });
  client = createClient(t.config);
});
afterEach(() => stopWorkers());
afterAll(async () => {
  await client?.close();
  await t?.cleanup();
});

const gated = { permissionMode: 'bypassPermissions' as const, approvals: { tools: ['Bash'] } };
const lines = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

async function agentqSubtypes(turnId: string): Promise<string[]> {
  const r = await client.db.execute<{ payload: string }>(sql`select payload from turn_events where turn_id = ${turnId}::uuid and type = 'agentq' order by attempt, seq`);
  return r.rows.map((row) => (JSON.parse(row.payload) as { subtype: string }).subtype);
}

/** Enqueues a gated call, waits for its approval, allows it; returns the turn as it ends (within 20 s). */
async function allowAndFinish(conversationId: string, directive: Record<string, unknown>) {
  const { turnId } = await client.enqueueTurn({ conversationId, prompt: `#fake ${JSON.stringify(directive)}\nrun it`, options: gated });
  const waited = await client.waitForTurn(turnId, 20_000, { untilApproval: true });
  expect(waited.status, JSON.stringify(waited.error)).toBe('awaiting_approval');
  expect((await client.decideApproval({ id: waited.approvalId!, decision: 'allow' })).outcome).toBe('decided');
  return { turnId, done: await client.waitForTurn(turnId, 20_000) };
}

describe('resuming a turn that waited for an approval', () => {
  it('the session holds the call: the resume has no prompt and the allowed call runs once', async () => {
    await startWorker(t.config);
    const marker = path.join(t.root, 'held');
    const { turnId, done } = await allowAndFinish('held-call', { gatedCall: marker });
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(lines(marker)).toHaveLength(1);
    expect(await agentqSubtypes(turnId)).not.toContain(DEFERRED_CALL_MISSING);
  });

  it('the session lost the call: the run continues with a prompt at once instead of waiting for input; the call does not run', async () => {
    await startWorker(t.config);
    const marker = path.join(t.root, 'lost');
    const { turnId, done } = await allowAndFinish('lost-call', { gatedCall: marker, gatedCallLost: true });
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    expect(lines(marker)).toHaveLength(0);
    expect(await agentqSubtypes(turnId)).toContain(DEFERRED_CALL_MISSING);
    // The prompt it continued with: the continuation prompt, then the turn's own.
    const starts = lines(t.logFile)
      .map((l) => JSON.parse(l) as { event: string; prompt?: string })
      .filter((l) => l.event === 'start');
    expect(starts.at(-1)?.prompt).toContain(t.config.worker.continuationPrompt);
    expect(starts.at(-1)?.prompt).toContain('run it');
  });
});

describe('holdsOpenCall', () => {
  const id = 'toolu_01ABC';
  const call = JSON.stringify({ type: 'assistant', message: { content: [{ type: 'tool_use', id, name: 'Bash', input: { command: 'ls' } }] } });
  const result = JSON.stringify({ type: 'user', message: { content: [{ type: 'tool_result', tool_use_id: id, content: 'ok' }] } });
  const say = (text: string) => JSON.stringify({ type: 'user', message: { content: [{ type: 'text', text }] } });
  const tail = (...ls: string[]) => Buffer.from(ls.map((l) => `${l}\n`).join(''));

  it.each([
    ['the call is the last line', tail(say('hi'), call), true],
    ['a line after it does not answer it', tail(call, JSON.stringify({ type: 'system', subtype: 'x', text: id })), true],
    ['answered', tail(call, result), false],
    ['not there', tail(say('hi'), result.replace(id, 'toolu_other')), false],
    ['only named in text (the agent can write that)', tail(say(`{"type":"tool_use","id":"${id}"}`)), false],
    ['a user line cannot open it', tail(JSON.stringify({ type: 'user', message: { content: [{ type: 'tool_use', id }] } })), false],
    ['the call cut off at the tail start', Buffer.from(`${call.slice(5)}\n`), false],
    ['no newline after the call', Buffer.from(call), true],
    ['asked again after an answer', tail(call, result, call), true],
  ])('%s', (_name, buf, expected) => {
    expect(holdsOpenCall(buf, id)).toBe(expected);
  });
});
