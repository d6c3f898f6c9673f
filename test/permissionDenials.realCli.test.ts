// Tool calls the real CLI refuses: a headless `claude -p` in its default permission mode
// refuses every edit, and still ends the run with `subtype: "success"`. agentq records the
// refusals on the turn (from the result's `permission_denials`) and every place a user
// looks says so: `show`, `enqueue --wait`, `transcript`, the API. The README's example
// ("Summarise the ticket in notes.md" with `permissionMode: acceptEdits`) writes the file.
// The mock model asks for the tool calls (`<<tool NAME JSON>>` in the prompt).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApi, type Api } from '../src/api/server.js';
import type { CliIo } from '../src/cli/main.js';
import { transcriptCommand } from '../src/cli/transcriptCommand.js';
import { enqueueCommand, showCommand } from '../src/cli/turnCommands.js';
import type { Config } from '../src/config.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { realCliMachine } from './helpers/realCli.js';

const KEY = 'denials-test-key-0123456789';
const WRITE_NOTES = `<<tool Write ${JSON.stringify({ file_path: 'notes.md', content: 'summary: the printer is on fire' })}>>`;
const READ_NOTES = `<<tool Read ${JSON.stringify({ file_path: 'notes.md' })}>>`;

let mock: MockModel;
let t: TestAgentq;
let config: Config;
let api: Api;
let worker: TurnWorker;

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq({ AGENTQ_API_KEYS: `${KEY}=default`, AGENTQ_API_RATE_LIMIT: '0' });
  config = realCliMachine(t.env, t.root, 'machine-a', mock.url, { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1', AGENTQ_SANDBOX: 'bwrap' });
  api = await buildApi(config);
  worker = createWorker(config, { concurrency: 1 });
  await worker.start();
}, 60_000);
afterAll(async () => {
  await worker?.stop({ graceMs: 0 });
  await api?.close();
  await t?.cleanup();
  await mock?.close();
});

function cli(): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { env: {}, out: (s) => out.push(s), err: (s) => err.push(s) }, out, err };
}

async function enqueueWait(conversation: string, prompt: string, options?: object): Promise<{ code: number; out: string[]; err: string[] }> {
  const c = cli();
  const code = await enqueueCommand(config, c.io, conversation, prompt, { wait: true, timeoutMs: '60000', ...(options ? { options: JSON.stringify(options) } : {}) });
  return { code, out: c.out, err: c.err };
}

describe('tool calls the CLI refused', () => {
  it('are recorded on the turn, and a turn whose every tool call was refused says so everywhere', async () => {
    const run = await enqueueWait('ticket-denied', `Summarise the ticket in notes.md ${WRITE_NOTES}`);
    // Still a success to the CLI; the status line says what happened.
    expect(run.code).toBe(0);
    expect(run.out[0]).toMatch(/^[0-9a-f-]{36} succeeded, but every tool call was refused \(session [0-9a-f-]{36}\)$/);
    expect(run.err.join('\n')).toMatch(/every tool call was refused \(1: Write\).*permissionMode/);
    const turnId = run.out[0]!.slice(0, 36);

    const show = cli();
    expect(await showCommand(config, show.io, 'ticket-denied', {})).toBe(0);
    expect(show.out.join('\n')).toMatch(/succeeded, but every tool call was refused attempts=1/);
    const json = cli();
    await showCommand(config, json.io, 'ticket-denied', { json: true });
    const shown = JSON.parse(json.out[0]!) as { turns: { toolCalls: number; permissionDenials: unknown }[] };
    expect(shown.turns[0]).toMatchObject({ toolCalls: 1, permissionDenials: { count: 1, tools: ['Write'], everyToolCall: true } });

    const transcript = cli();
    expect(await transcriptCommand(config, transcript.io, 'ticket-denied', {})).toBe(0);
    expect(transcript.out.join('\n')).toMatch(/── turn 1 succeeded[^\n]*\n\s+every tool call was refused \(1: Write\)/);

    const res = await api.app.inject({ method: 'GET', url: `/v1/turns/${turnId}`, headers: { authorization: `Bearer ${KEY}` } });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      prompt: `Summarise the ticket in notes.md ${WRITE_NOTES}`,
      toolCalls: 1,
      permissionDenials: { count: 1, tools: ['Write'], everyToolCall: true },
    });
    const conv = await api.app.inject({ method: 'GET', url: '/v1/conversations/ticket-denied', headers: { authorization: `Bearer ${KEY}` } });
    expect(conv.json().turns[0].permissionDenials).toEqual({ count: 1, tools: ['Write'], everyToolCall: true });
  }, 120_000);

  it('some refused of several: counted, not called "every"', async () => {
    const run = await enqueueWait('ticket-some-denied', `${WRITE_NOTES} ${READ_NOTES}`);
    expect(run.out[0]).toMatch(/^[0-9a-f-]{36} succeeded \(session /);
    expect(run.err.join('\n')).toMatch(/1 tool call was refused \(Write\)/);
    const view = await api.deps.client.getConversation('ticket-some-denied');
    expect(view?.turns[0]).toMatchObject({ toolCalls: 2, permissionDenials: { count: 1, tools: ['Write'], everyToolCall: false } });
  }, 120_000);

  it("the README's example with acceptEdits writes notes.md, and a later turn reads it; nothing is refused", async () => {
    const write = await enqueueWait('ticket-4812', `Summarise the ticket in notes.md ${WRITE_NOTES}`, { permissionMode: 'acceptEdits' });
    expect(write.out[0]).toMatch(/^[0-9a-f-]{36} succeeded \(session /);
    expect(write.err).toEqual([]);
    const read = await enqueueWait('ticket-4812', READ_NOTES);
    expect(read.out.join('\n')).toContain('summary: the printer is on fire');
    const view = await api.deps.client.getConversation('ticket-4812');
    expect(view?.turns.map((x) => x.permissionDenials)).toEqual([null, null]);
    expect(view?.turns.map((x) => x.toolCalls)).toEqual([1, 1]);
  }, 120_000);
});
