// Tests of the project's mock Anthropic Messages API (src/mock): fast unit tests of the
// SSE encoding, the default replies and the request classification, HTTP-level tests of
// the server, and contract tests that run the REAL Claude Code CLI against the mock.
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import type { ApiMessage, MessagesRequest } from '../src/mock/anthropic.js';
import { AUXILIARY_TEXT, classifyMessagesRequest, sampleForSchema } from '../src/mock/classify.js';
import { startMockModel, type MockModel, type RecordedRequest } from '../src/mock/mockModel.js';
import {
  defaultReply,
  lastNonSystemMessage,
  messageText,
  parseToolDirectives,
  stripSystemReminders,
  userPrompt,
} from '../src/mock/script.js';
import { assembleMessage, chunkJson, chunkText, encodeSseEvent, messageToSseEvents, parseSse } from '../src/mock/sse.js';
import { PREVIOUS_CLI_VERSION } from '../src/runner/cliVersion.js';
import { testCli, testCliIs } from './helpers/realCli.js';

// ---------------------------------------------------------------------------------------
// Helpers

/** A request shaped like the CLI's conversation turns (tools, adaptive thinking, stream). */
function mainRequest(messages: ApiMessage[], extra: Partial<MessagesRequest> = {}): MessagesRequest {
  return {
    model: 'claude-opus-4-8',
    max_tokens: 64000,
    stream: true,
    tools: [{ name: 'Bash', input_schema: { type: 'object' } }],
    thinking: { type: 'adaptive' },
    context_management: { edits: [] },
    messages,
    ...extra,
  };
}

/** The CLI's session-title side query, as 2.1.197 sends it. */
function titleRequest(): MessagesRequest {
  return {
    model: 'claude-opus-4-8',
    max_tokens: 64000,
    stream: true,
    tools: [],
    thinking: { type: 'disabled' },
    output_config: {
      effort: 'high',
      format: {
        type: 'json_schema',
        schema: { type: 'object', properties: { title: { type: 'string' } }, required: ['title'], additionalProperties: false },
      },
    },
    messages: [{ role: 'user', content: [{ type: 'text', text: '<session>\nhi\n</session>\n\nWrite the title...' }] }],
  };
}

const REMINDER = '<system-reminder>\nAs you answer the user\'s questions, you can use the following context:\n# currentDate\n</system-reminder>\n\n';

/** A user message as the CLI sends a prompt: a reminder block, then the prompt block. */
function cliUser(prompt: string): ApiMessage {
  return {
    role: 'user',
    content: [
      { type: 'text', text: REMINDER },
      { type: 'text', text: prompt, cache_control: { type: 'ephemeral' } },
    ],
  };
}

const systemMsg: ApiMessage = { role: 'system', content: 'Available agent types for the Agent tool: ...' };

async function post(mock: MockModel, body: unknown, pathname = '/v1/messages?beta=true'): Promise<Response> {
  return fetch(`${mock.url}${pathname}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': 'sk-test' },
    body: JSON.stringify(body),
  });
}

/** POST a streaming request and rebuild the message from its SSE body. */
async function postStream(mock: MockModel, body: MessagesRequest) {
  const res = await post(mock, body);
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const events = parseSse(await res.text());
  return { events, message: assembleMessage(events) };
}

const mocks: MockModel[] = [];
async function mock(opts: Parameters<typeof startMockModel>[0] = {}): Promise<MockModel> {
  const m = await startMockModel(opts);
  mocks.push(m);
  return m;
}
afterEach(async () => {
  await Promise.all(mocks.splice(0).map((m) => m.close()));
});

// ---------------------------------------------------------------------------------------
// SSE

describe('sse', () => {
  const message = {
    id: 'msg_x',
    type: 'message' as const,
    role: 'assistant' as const,
    model: 'claude-opus-4-8',
    content: [
      { type: 'text', text: 'Let me run a command — with ünïcödé 🎉 and a fairly long sentence to split.' },
      { type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'echo "hi 🎉" >> out.txt', description: 'append' } },
    ],
    stop_reason: 'tool_use' as const,
    stop_sequence: null,
    usage: { input_tokens: 1234, output_tokens: 42, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  };

  it('emits the Anthropic event sequence and parses back to the same message', () => {
    const events = messageToSseEvents(message);
    const wire = events.map(encodeSseEvent).join('');
    expect(wire.startsWith('event: message_start\ndata: {')).toBe(true);
    const parsed = parseSse(wire);
    expect(parsed).toEqual(events);
    const names = parsed.map((e) => e.event);
    expect(names[0]).toBe('message_start');
    expect(names.slice(-2)).toEqual(['message_delta', 'message_stop']);
    // Each block: start, >= 1 delta, stop, with the right delta type.
    for (const [index, deltaType] of [
      [0, 'text_delta'],
      [1, 'input_json_delta'],
    ] as const) {
      const mine = parsed.filter((e) => (e.data as { index?: number }).index === index).map((e) => e.data as Record<string, unknown>);
      expect(mine[0]?.type).toBe('content_block_start');
      expect(mine.at(-1)?.type).toBe('content_block_stop');
      const deltas = mine.filter((d) => d.type === 'content_block_delta');
      expect(deltas.length).toBeGreaterThan(1);
      for (const d of deltas) expect((d.delta as { type: string }).type).toBe(deltaType);
    }
    const start = parsed[0]?.data as { message: { content: unknown[]; stop_reason: unknown; usage: { input_tokens: number } } };
    expect(start.message.content).toEqual([]);
    expect(start.message.stop_reason).toBeNull();
    expect(start.message.usage.input_tokens).toBe(1234);
    expect(assembleMessage(parsed)).toEqual(message);
  });

  it('chunks text and JSON without losing or splitting characters', () => {
    const text = '  leading space, emoji 🎉🎉 and\nnew lines   ';
    expect(chunkText(text, 8).join('')).toBe(text);
    expect(chunkText('', 8)).toEqual([]);
    const json = JSON.stringify({ s: '🎉'.repeat(20) });
    const parts = chunkJson(json, 5);
    expect(parts.join('')).toBe(json);
    const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
    for (const p of parts) expect(p).not.toMatch(loneSurrogate);
  });
});

// ---------------------------------------------------------------------------------------
// Default replies and classification

describe('default reply', () => {
  it('answers the prompt of the last non-system message, reminders stripped', () => {
    const req = mainRequest([cliUser('hello there'), systemMsg]);
    expect(lastNonSystemMessage(req.messages)?.role).toBe('user');
    expect(userPrompt(req)).toBe('hello there');
    expect(defaultReply(req)).toEqual({ text: 'mock reply: hello there' });
  });

  it('accepts string content and several text blocks', () => {
    expect(defaultReply(mainRequest([{ role: 'user', content: 'plain string' }]))).toEqual({ text: 'mock reply: plain string' });
    const multi: ApiMessage = {
      role: 'user',
      content: [
        { type: 'text', text: 'part one' },
        { type: 'text', text: `${REMINDER}part two<system-reminder>late reminder</system-reminder>` },
      ],
    };
    expect(messageText(multi)).toBe('part one\npart two');
    expect(stripSystemReminders('a<system-reminder>x</system-reminder>b')).toBe('ab');
    expect(stripSystemReminders(`${REMINDER}prompt`)).toBe('prompt');
  });

  it('<<recall>> answers with the earlier prompts of the conversation, tool directives and results left out', () => {
    const history: ApiMessage[] = [
      cliUser('My printer is on fire. <<tool Bash {"command":"echo a > notes.txt"}>>'),
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: { command: 'echo a > notes.txt' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] },
      { role: 'assistant', content: [{ type: 'text', text: 'Done: ok' }] },
      cliUser('What did I report? <<recall>>'),
    ];
    expect(defaultReply(mainRequest(history))).toEqual({ text: 'I remember: "My printer is on fire."' });
    expect(defaultReply(mainRequest([cliUser('<<recall>>')]))).toEqual({ text: 'I remember: (nothing)' });
  });

  it('trims the echoed prompt to 200 characters', () => {
    const reply = defaultReply(mainRequest([cliUser('x'.repeat(500))])) as { text: string };
    expect(reply.text).toBe(`mock reply: ${'x'.repeat(200)}`);
  });

  it('answers a tool result with Done: and its first 200 characters', () => {
    const req = mainRequest([
      cliUser('<<tool Bash {"command":"ls"}>>'),
      systemMsg,
      { role: 'assistant', content: [{ type: 'tool_use', id: 'toolu_1', name: 'Bash', input: { command: 'ls' } }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'toolu_1', content: 'y'.repeat(300), is_error: false }] },
      systemMsg,
    ]);
    expect(defaultReply(req)).toEqual({ text: `Done: ${'y'.repeat(200)}` });
    const arrayContent = mainRequest([
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't', content: [{ type: 'text', text: 'from blocks' }] }] },
    ]);
    expect(defaultReply(arrayContent)).toEqual({ text: 'Done: from blocks' });
  });

  it('turns <<tool NAME JSON>> directives into tool_use', () => {
    const req = mainRequest([cliUser('please <<tool Bash {"command":"echo hi > out.txt"}>> thanks'), systemMsg]);
    expect(defaultReply(req)).toEqual({ toolUse: [{ name: 'Bash', input: { command: 'echo hi > out.txt' } }] });
    // `>>` inside the JSON does not end the directive; several directives -> several tools.
    expect(parseToolDirectives('<<tool Bash {"command":"echo a >> f"}>> and <<tool Read {"file_path":"/x"}>>')).toEqual([
      { name: 'Bash', input: { command: 'echo a >> f' } },
      { name: 'Read', input: { file_path: '/x' } },
    ]);
    // Unparseable JSON: no directive, plain reply.
    expect(parseToolDirectives('<<tool Bash {not json}>>')).toEqual([]);
    expect(defaultReply(mainRequest([cliUser('<<tool Bash {oops>>')]))).toEqual({ text: 'mock reply: <<tool Bash {oops>>' });
  });
});

describe('classification', () => {
  it('tells conversation turns from the CLI side queries', () => {
    expect(classifyMessagesRequest(mainRequest([cliUser('hi')]))).toBe('main');
    // `--tools ""` still sends tools: [] with adaptive thinking: a conversation turn.
    expect(classifyMessagesRequest(mainRequest([cliUser('hi')], { tools: [] }))).toBe('main');
    // The non-streaming fallback of a conversation turn is still a conversation turn.
    expect(classifyMessagesRequest(mainRequest([cliUser('hi')], { stream: false }))).toBe('main');
    expect(classifyMessagesRequest(titleRequest())).toBe('auxiliary');
    // A probe such as model validation: max_tokens 1, no tools, no thinking.
    expect(classifyMessagesRequest({ model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'Hi' }] })).toBe('auxiliary');
  });

  it('fills a JSON schema for structured side queries', () => {
    expect(sampleForSchema({ type: 'object', properties: { title: { type: 'string' }, n: { type: 'integer' }, e: { enum: ['a', 'b'] } } })).toEqual({
      title: 'mock title',
      n: 0,
      e: 'a',
    });
  });
});

// ---------------------------------------------------------------------------------------
// The server over HTTP

describe('mock server', () => {
  it('answers the probes of both CLI versions (HEAD /, HEAD /api/hello), records requests, and 404s unknown paths', async () => {
    const m = await mock();
    expect(m.url).toBe(`http://127.0.0.1:${m.port}`);
    const head = await fetch(`${m.url}/`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect((await fetch(`${m.url}/api/hello`, { method: 'HEAD' })).status).toBe(200);
    const nf = await fetch(`${m.url}/v1/models`);
    expect(nf.status).toBe(404);
    expect(await nf.json()).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    const bad = await post(m, { nope: true });
    expect(bad.status).toBe(400);
    expect(m.requests.map((r) => [r.method, r.path, r.kind, r.status])).toEqual([
      ['HEAD', '/', 'probe', 200],
      ['HEAD', '/api/hello', 'probe', 200],
      ['GET', '/v1/models', 'unknown', 404],
      ['POST', '/v1/messages', 'invalid', 400],
    ]);
    expect(m.requests[3]?.url).toBe('/v1/messages?beta=true');
    expect(m.requests[3]?.headers['x-api-key']).toBe('sk-test');
    expect(typeof m.requests[0]?.time).toBe('number');
  });

  it('streams the default reply with zero usage (a mock turn costs $0), or with realistic usage when asked', async () => {
    const zero = await mock();
    const free = await postStream(zero, mainRequest([cliUser('hello'), systemMsg]));
    expect(free.message.usage.input_tokens).toBe(0);
    expect(free.message.usage.output_tokens).toBe(0);
    const m = await mock({ estimateUsage: true });
    const { message, events } = await postStream(m, mainRequest([cliUser('hello'), systemMsg]));
    expect(message.content).toEqual([{ type: 'text', text: 'mock reply: hello' }]);
    expect(message.stop_reason).toBe('end_turn');
    expect(message.model).toBe('claude-opus-4-8');
    expect(message.usage.input_tokens).toBeGreaterThan(10);
    expect(message.usage.output_tokens).toBeGreaterThan(1);
    expect(events.map((e) => e.event)).toContain('ping');
    const rec = m.requests[0] as RecordedRequest;
    expect(rec.kind).toBe('main');
    expect(rec.index).toBe(0);
    expect(rec.body?.messages[0]?.role).toBe('user');
  });

  it('answers non-streaming requests with a plain JSON message', async () => {
    const m = await mock({ script: [{ toolUse: { name: 'Bash', input: { command: 'ls' }, id: 'toolu_fixed' }, text: 'Running.' }] });
    const res = await post(m, mainRequest([cliUser('x')], { stream: false }));
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(await res.json()).toMatchObject({
      type: 'message',
      role: 'assistant',
      stop_reason: 'tool_use',
      content: [
        { type: 'text', text: 'Running.' },
        { type: 'tool_use', id: 'toolu_fixed', name: 'Bash', input: { command: 'ls' } },
      ],
    });
  });

  it('consumes the script only with main requests; count_tokens and side queries do not', async () => {
    const m = await mock({ script: [{ text: 'first' }, { error: { status: 529 } }] });
    const aux = await postStream(m, titleRequest());
    expect(JSON.parse(aux.message.content[0]?.text ?? '')).toEqual({ title: 'mock title' });
    const plainAux = await post(m, { model: 'm', max_tokens: 1, messages: [{ role: 'user', content: 'quota' }] });
    expect(((await plainAux.json()) as { content: Array<{ text: string }> }).content[0]?.text).toBe(AUXILIARY_TEXT);
    const count = await post(m, mainRequest([cliUser('x')]), '/v1/messages/count_tokens');
    expect(((await count.json()) as { input_tokens: number }).input_tokens).toBeGreaterThan(0);
    expect((await postStream(m, mainRequest([cliUser('a')]))).message.content[0]?.text).toBe('first');
    const err = await post(m, mainRequest([cliUser('b')]));
    expect(err.status).toBe(529);
    expect(await err.json()).toMatchObject({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    // Script exhausted: default replies again.
    expect((await postStream(m, mainRequest([cliUser('c')]))).message.content[0]?.text).toBe('mock reply: c');
    expect(m.requests.map((r) => r.kind)).toEqual(['auxiliary', 'auxiliary', 'count_tokens', 'main', 'main', 'main']);
    expect(m.mainRequests().map((r) => r.index)).toEqual([0, 1, 2]);
  });

  it('supports script functions, enqueue and reset', async () => {
    const seen: number[] = [];
    const m = await mock({
      script: (req, index) => {
        seen.push(index);
        return index === 1 ? { text: `fn saw ${userPrompt(req)}` } : undefined;
      },
    });
    m.enqueue({ text: 'queued' });
    const texts: string[] = [];
    for (const p of ['a', 'b', 'c']) texts.push((await postStream(m, mainRequest([cliUser(p)]))).message.content[0]?.text ?? '');
    // The queue goes first (index 0 never reaches the function); undefined -> default.
    expect(texts).toEqual(['queued', 'fn saw b', 'mock reply: c']);
    expect(seen).toEqual([1, 2]);
    const held = m.requests;
    m.reset();
    expect(held).toBe(m.requests);
    expect(m.requests).toEqual([]);
    await postStream(m, mainRequest([cliUser('d')]));
    expect(m.requests[0]?.index).toBe(0);
  });

  it('delays a reply by delayMs and paces deltas by textDelayMs', async () => {
    const m = await mock({ script: [{ delayMs: 150, text: 'late' }, { delayMs: 50 }], textDelayMs: 20 });
    const t0 = Date.now();
    const { message } = await postStream(m, mainRequest([cliUser('x')]));
    expect(message.content[0]?.text).toBe('late');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(150);
    // A bare delay answers with the default reply.
    expect((await postStream(m, mainRequest([cliUser('y')]))).message.content[0]?.text).toBe('mock reply: y');
  });

  it('stalls after message_start until close()', async () => {
    const m = await startMockModel({ script: [{ stall: true }] });
    const res = await post(m, mainRequest([cliUser('x')]));
    expect(res.status).toBe(200);
    const reader = (res.body as ReadableStream<Uint8Array>).getReader();
    let head = '';
    while (!head.includes('event: ping')) {
      const { value, done } = await reader.read();
      if (done) break;
      head += new TextDecoder().decode(value);
    }
    expect(parseSse(head).map((e) => e.event)).toEqual(['message_start', 'ping']);
    const rest = (async () => {
      for (;;) if ((await reader.read()).done) return 'ended cleanly';
    })();
    await m.close();
    // Cut, never completed: no message_stop ever arrives.
    await expect(rest).rejects.toThrow();
  });
});

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const MAIN_JS = path.join(ROOT, 'dist', 'mock', 'main.js');

// The compiled entry (built by `npm test`'s pretest); skipped when there is no build.
describe.skipIf(!existsSync(MAIN_JS))('dist/mock/main.js', () => {
  it('prints {"url"} once listening, with --spans each answered request after it, and exits 0 on SIGTERM', async () => {
    const child = spawn(process.execPath, [MAIN_JS, '--port', '0', '--spans'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const lines: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    try {
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        child.stdout.setEncoding('utf8').on('data', (d: string) => {
          out += d;
          for (let nl = out.indexOf('\n'); nl >= 0; nl = out.indexOf('\n')) {
            lines.push(out.slice(0, nl));
            out = out.slice(nl + 1);
          }
          if (lines.length > 0) resolve(lines[0]!);
        });
        child.once('close', () => reject(new Error(`exited before listening: ${out}`)));
      });
      const { url } = JSON.parse(line) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect((await fetch(`${url}/`, { method: 'HEAD' })).status).toBe(200);
      const res = await fetch(`${url}/v1/messages`, {
        method: 'POST',
        body: JSON.stringify(mainRequest([cliUser('ping')], { stream: false })),
      });
      expect(((await res.json()) as { content: Array<{ text: string }> }).content[0]?.text).toBe('mock reply: ping');
      // The two answered requests' spans: when each body arrived and when its response was written.
      const deadline = Date.now() + 5000;
      while (lines.length < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      const spans = lines.slice(1).map((l) => JSON.parse(l) as { kind: string; time: number; finishedAt: number });
      expect(spans.map((x) => x.kind)).toEqual(['probe', 'main']);
      for (const x of spans) expect(x.finishedAt).toBeGreaterThanOrEqual(x.time);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------
// Contract: the real Claude Code CLI against the mock

const CLAUDE = testCli.path;
const CLI_TIMEOUT_MS = 30_000;

interface CliRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  lines: Array<Record<string, unknown>>;
  stderr: string;
  wallMs: number;
  result: Record<string, unknown> | undefined;
  sessionId: string | undefined;
}

/** A temp workspace: HOME, config dir, tmp dir and a cwd, removed after the test. */
async function workspace(): Promise<{ root: string; cwd: string }> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'mockmodel-'));
  for (const d of ['home', 'cfg', 't', 'ws']) await mkdir(path.join(root, d));
  dirs.push(root);
  return { root, cwd: path.join(root, 'ws') };
}
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

/** The exact offline environment from shared/claude-cli/README.md, built from scratch. */
function cliEnv(root: string, baseUrl: string, extra: Record<string, string | undefined>): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = {
    PATH: process.env.PATH,
    HOME: path.join(root, 'home'),
    LANG: 'C.UTF-8',
    ANTHROPIC_BASE_URL: baseUrl,
    ANTHROPIC_API_KEY: 'sk-test',
    CLAUDE_CONFIG_DIR: path.join(root, 'cfg'),
    CLAUDE_CODE_TMPDIR: path.join(root, 't'),
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    CLAUDE_CODE_MAX_RETRIES: '0',
    IS_SANDBOX: '1',
    ...extra,
  };
  return Object.fromEntries(Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined));
}

/**
 * Run the CLI to completion. It gets its own process group so that, on timeout or when a
 * test stops it, the whole group (including tool children) is killed; afterwards the
 * group must be empty (nothing left running).
 */
async function runClaude(
  ws: { root: string; cwd: string },
  m: MockModel,
  prompt: string,
  opts: { args?: string[]; env?: Record<string, string | undefined>; onSpawn?: (kill: (sig: NodeJS.Signals) => void) => void } = {},
): Promise<CliRun> {
  const args = ['-p', prompt, '--output-format', 'stream-json', '--verbose', '--max-turns', '5', '--permission-mode', 'bypassPermissions', ...(opts.args ?? [])];
  const t0 = Date.now();
  const child = spawn(CLAUDE, args, { cwd: ws.cwd, env: cliEnv(ws.root, m.url, opts.env ?? {}), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const pid = child.pid as number;
  const killGroup = (sig: NodeJS.Signals): void => {
    try {
      process.kill(-pid, sig);
    } catch {
      // already gone
    }
  };
  opts.onSpawn?.(killGroup);
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  const timer = setTimeout(() => killGroup('SIGKILL'), CLI_TIMEOUT_MS - 2_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (c, s) => resolve([c, s]));
  }).finally(() => clearTimeout(timer));
  const wallMs = Date.now() - t0;
  // Nothing of this run may survive it.
  expect(await waitGroupGone(pid)).toEqual([]);
  const lines = stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  const result = lines.find((l) => l.type === 'result');
  const init = lines.find((l) => l.type === 'system' && l.subtype === 'init');
  return { code, signal, lines, stderr, wallMs, result, sessionId: init?.session_id as string | undefined };
}

/** Live (non-zombie) processes of a process group, as `ps` lines. */
function groupMembers(pgid: number): string[] {
  const out = execFileSync('ps', ['-eo', 'pgid=,stat=,pid=,args='], { encoding: 'utf8' });
  return out
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.split(/\s+/)[0] === String(pgid) && !(l.split(/\s+/)[1] ?? '').startsWith('Z'));
}

/**
 * Wait (bounded) until no process of the group is alive. Processes that are exiting
 * may linger a moment after the CLI itself; zombies waiting to be reaped by init are
 * not running and do not count.
 */
async function waitGroupGone(pgid: number, timeoutMs = 3_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const members = groupMembers(pgid);
    if (members.length === 0 || Date.now() > deadline) return members;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Text of every non-system message of a request, as [role, text] pairs. */
function transcript(rec: RecordedRequest | undefined): Array<[string, string]> {
  return (rec?.body?.messages ?? [])
    .filter((msg) => msg.role !== 'system')
    .map((msg): [string, string] => {
      const blocks = typeof msg.content === 'string' ? [{ type: 'text', text: msg.content }] : msg.content;
      const text = blocks
        .map((b) => (b.type === 'text' ? stripSystemReminders(b.text ?? '') : b.type === 'tool_result' ? `[tool_result ${String(b.tool_use_id)}]` : `[${b.type}]`))
        .filter((t) => t !== '')
        .join('\n');
      return [msg.role, text];
    });
}

describe.skipIf(!existsSync(CLAUDE))('real Claude Code CLI against the mock', () => {
  it('text turn', { timeout: CLI_TIMEOUT_MS }, async () => {
    const m = await mock();
    const ws = await workspace();
    const run = await runClaude(ws, m, 'hello');
    expect(run.code, run.stderr).toBe(0);
    expect(run.result).toMatchObject({ subtype: 'success', is_error: false, result: 'mock reply: hello' });
    // 2.1.197 probes HEAD / before anything else; 2.1.332 probes HEAD /api/hello, not always first.
    if (testCliIs(PREVIOUS_CLI_VERSION)) expect(m.requests[0]).toMatchObject({ method: 'HEAD', path: '/' });
    const main = m.mainRequests();
    expect(main).toHaveLength(1);
    expect(main[0]).toMatchObject({ method: 'POST', path: '/v1/messages', url: '/v1/messages?beta=true' });
    expect(main[0]?.headers['x-api-key']).toBe('sk-test');
    expect(main[0]?.body?.stream).toBe(true);
    // The CLI puts role:"system" messages after the prompt; the reply still used the prompt.
    expect(main[0]?.body?.messages.some((msg) => msg.role === 'system')).toBe(true);
    console.log(`text turn: ${run.wallMs} ms`);
  });

  it('tool round trip driven by a <<tool>> directive', { timeout: CLI_TIMEOUT_MS }, async () => {
    const m = await mock();
    const ws = await workspace();
    const run = await runClaude(ws, m, 'please <<tool Bash {"command":"echo hi > out.txt"}>>');
    expect(run.code, run.stderr).toBe(0);
    expect(await readFile(path.join(ws.cwd, 'out.txt'), 'utf8')).toBe('hi\n');
    expect(run.result).toMatchObject({ subtype: 'success', is_error: false, num_turns: 2 });
    expect(String(run.result?.result)).toMatch(/^Done: /);
    const main = m.mainRequests();
    expect(main).toHaveLength(2);
    const toolUse = run.lines.find((l) => l.type === 'assistant' && JSON.stringify(l).includes('"tool_use"'));
    const toolId = (toolUse?.message as { content: Array<{ id: string }> }).content[0]?.id;
    expect(toolId).toMatch(/^toolu_mock/);
    const last = lastNonSystemMessage(main[1]?.body?.messages ?? []);
    expect(last?.content).toEqual(expect.arrayContaining([expect.objectContaining({ type: 'tool_result', tool_use_id: toolId })]));
    console.log(`tool round trip: ${run.wallMs} ms`);
  });

  it('HTTP 500 with CLAUDE_CODE_MAX_RETRIES=0 ends the run with api_error_status 500', { timeout: CLI_TIMEOUT_MS }, async () => {
    const m = await mock({ script: [{ error: { status: 500 } }] });
    const ws = await workspace();
    const run = await runClaude(ws, m, 'hello');
    expect(run.code).toBe(1);
    expect(run.result).toMatchObject({ is_error: true, api_error_status: 500 });
    expect(String(run.result?.result)).toContain('API Error: 500');
    expect(m.mainRequests()).toHaveLength(1); // no retry
  });

  it('--resume sends the first run\'s messages to the mock', { timeout: CLI_TIMEOUT_MS }, async () => {
    const m = await mock();
    const ws = await workspace();
    const first = await runClaude(ws, m, 'first prompt');
    expect(first.code, first.stderr).toBe(0);
    expect(first.sessionId).toBeTruthy();
    const second = await runClaude(ws, m, 'second prompt', { args: ['--resume', first.sessionId as string] });
    expect(second.code, second.stderr).toBe(0);
    expect(second.sessionId).toBe(first.sessionId);
    expect(second.result).toMatchObject({ result: 'mock reply: second prompt' });
    const main = m.mainRequests();
    expect(main).toHaveLength(2);
    expect(transcript(main[1])).toEqual([
      ['user', 'first prompt'],
      ['assistant', 'mock reply: first prompt'],
      ['user', 'second prompt'],
    ]);
  });

  it('a stalled stream keeps the CLI waiting until it is stopped', { timeout: CLI_TIMEOUT_MS }, async () => {
    let stop: ((sig: NodeJS.Signals) => void) | undefined;
    let stalled: () => void = () => undefined;
    const reached = new Promise<void>((resolve) => (stalled = resolve));
    const m = await mock({
      script: [{ stall: true }],
      onRequest: (r) => {
        if (r.kind === 'main') stalled();
      },
    });
    const ws = await workspace();
    const running = runClaude(ws, m, 'hello', { onSpawn: (kill) => (stop = kill) });
    await reached;
    stop?.('SIGTERM');
    const run = await running;
    expect(run.code === 143 || run.signal === 'SIGTERM').toBe(true);
    expect(run.result).toBeUndefined();
  });

  // Only 2.1.197 asks for a session title in -p mode; 2.1.332 sends no side query there.
  it.skipIf(!testCliIs(PREVIOUS_CLI_VERSION))('side queries (session title) do not consume the script (2.1.197)', { timeout: CLI_TIMEOUT_MS }, async () => {
    const m = await mock({ script: [{ text: 'scripted answer' }] });
    const ws = await workspace();
    // Without the variable the CLI asks for a session title (a structured side query).
    const run = await runClaude(ws, m, 'please write a greeting file for the project', {
      env: { CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: undefined },
    });
    expect(run.code, run.stderr).toBe(0);
    expect(run.result).toMatchObject({ result: 'scripted answer' });
    const aux = m.requests.filter((r) => r.kind === 'auxiliary');
    expect(aux.length).toBeGreaterThanOrEqual(1);
    expect(JSON.stringify(aux[0]?.body?.output_config)).toContain('json_schema');
    expect(m.mainRequests()).toHaveLength(1);
  });
});
