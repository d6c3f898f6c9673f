// Tests of the fake `claude` CLI (src/testing/fakeCli.ts). They run the compiled file the
// way other tests will (node dist/testing/fakeCli.js), each in its own temp workspace and
// config dir, and wait for process exit or for specific stdout lines, never for time.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { encodeCwd, sessionFilePath } from '../src/claude/sessionPath.js';

const FAKE = fileURLToPath(new URL('../dist/testing/fakeCli.js', import.meta.url));
const STREAM = ['-p', '--output-format', 'stream-json', '--verbose'];

type Json = Record<string, unknown>;

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Parsed stdout lines (non-JSON lines are skipped). */
  events: Json[];
}

function parseLines(text: string): Json[] {
  const out: Json[] = [];
  for (const line of text.split('\n')) {
    try {
      out.push(JSON.parse(line) as Json);
    } catch {
      // garbage lines are the point of some tests
    }
  }
  return out;
}

/** A running fake with its collected output. */
class Fake {
  stdout = '';
  stderr = '';
  readonly exited: Promise<Exit>;
  private waiters: Array<() => void> = [];

  constructor(readonly child: ChildProcess) {
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.stdout += d;
      this.waiters.forEach((w) => w());
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) => {
      child.on('close', (code, signal) => {
        this.waiters.forEach((w) => w());
        resolve({ code, signal, stdout: this.stdout, stderr: this.stderr, events: parseLines(this.stdout) });
      });
    });
  }

  /** Resolves with the first stdout event matching `pred`; rejects if the process ends first. */
  waitFor(pred: (e: Json) => boolean): Promise<Json> {
    return new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = parseLines(this.stdout).find(pred);
        if (hit) resolve(hit);
        else if (this.child.exitCode !== null || this.child.signalCode !== null) reject(new Error(`exited first: ${this.stderr}`));
      };
      this.waiters.push(check);
      check();
    });
  }
}

let root: string;
let ws: string;
let cfg: string;
let logFile: string;
const running: Fake[] = [];

function baseEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: path.join(root, 'home'), CLAUDE_CONFIG_DIR: cfg, FAKE_CLAUDE_LOG: logFile, ...extra };
}

function start(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; stdin?: 'ignore' | 'pipe'; detached?: boolean } = {},
): Fake {
  const child = spawn(process.execPath, [FAKE, ...args], {
    cwd: opts.cwd ?? ws,
    env: baseEnv(opts.env),
    stdio: [opts.stdin ?? 'ignore', 'pipe', 'pipe'],
    detached: opts.detached ?? false,
  });
  const fake = new Fake(child);
  running.push(fake);
  return fake;
}

function run(args: string[], opts: Parameters<typeof start>[1] = {}): Promise<Exit> {
  return start(args, opts).exited;
}

function sessionFile(id: string, cwd = ws): string {
  return sessionFilePath(cfg, cwd, id);
}

function readEntries(file: string): Json[] {
  return parseLines(readFileSync(file, 'utf8'));
}

function readLog(): Json[] {
  return existsSync(logFile) ? parseLines(readFileSync(logFile, 'utf8')) : [];
}

function byType(events: Json[], type: string, subtype?: string): Json[] {
  return events.filter((e) => e.type === type && (subtype === undefined || e.subtype === subtype));
}

function only(events: Json[], type: string, subtype?: string): Json {
  const found = byType(events, type, subtype);
  expect(found).toHaveLength(1);
  return found[0] as Json;
}

/** True while the pid exists and is not a zombie. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/** Polls a condition that the kernel settles asynchronously (reaping an orphan). */
async function eventually(cond: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const ID1 = '11111111-2222-4333-8444-555555555555';
const ID2 = '22222222-3333-4444-8555-666666666666';

beforeAll(() => {
  if (!existsSync(FAKE)) throw new Error(`${FAKE} is missing: run \`npx tsc -p tsconfig.build.json\` first`);
  expect(readFileSync(FAKE, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
});

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'fakecli-'));
  ws = path.join(root, 'ws');
  cfg = path.join(root, 'cfg');
  logFile = path.join(root, 'calls.log');
  mkdirSync(ws);
  mkdirSync(path.join(root, 'home'));
});

afterEach(() => {
  for (const fake of running.splice(0)) {
    if (fake.child.exitCode === null && fake.child.signalCode === null) fake.child.kill('SIGKILL');
  }
  rmSync(root, { recursive: true, force: true });
});

describe('sessions', () => {
  it('creates a new session under --session-id with real-shaped lines', async () => {
    const r = await run([...STREAM, '--session-id', ID1, 'hello']);
    expect(r.code).toBe(0);
    expect(r.events.map((e) => e.type)).toEqual(['system', 'assistant', 'result']);
    const init = only(r.events, 'system', 'init');
    expect(init).toMatchObject({ session_id: ID1, cwd: ws, claude_code_version: 'fake-1', permissionMode: 'default' });
    expect(only(r.events, 'assistant')).toMatchObject({
      session_id: ID1,
      message: { role: 'assistant', content: [{ type: 'text', text: 'fake reply to: hello' }] },
    });
    expect(only(r.events, 'result')).toMatchObject({
      subtype: 'success',
      is_error: false,
      result: 'fake reply to: hello',
      session_id: ID1,
      num_turns: 1,
      total_cost_usd: 0.0001,
      usage: { cache_read_input_tokens: 0, cache_creation_input_tokens: 0 },
      permission_denials: [],
      terminal_reason: 'completed',
    });

    const text = readFileSync(sessionFile(ID1), 'utf8');
    expect(text.endsWith('\n')).toBe(true);
    const entries = readEntries(sessionFile(ID1));
    expect(entries).toHaveLength(text.trimEnd().split('\n').length); // every line is JSON
    const user = only(entries, 'user');
    const assistant = only(entries, 'assistant');
    expect(user).toMatchObject({ parentUuid: null, sessionId: ID1, cwd: ws, version: 'fake', message: { role: 'user', content: 'hello' } });
    expect(assistant).toMatchObject({ parentUuid: user.uuid, sessionId: ID1, message: { role: 'assistant' } });
  });

  it('resume appends to the same file: old bytes are an exact prefix', async () => {
    expect((await run([...STREAM, '--session-id', ID1, 'first'])).code).toBe(0);
    const before = readFileSync(sessionFile(ID1));
    const lastUuid = only(readEntries(sessionFile(ID1)), 'assistant').uuid;

    const r = await run([...STREAM, '--resume', ID1, 'second']);
    expect(r.code).toBe(0);
    expect(only(r.events, 'system', 'init').session_id).toBe(ID1);
    expect(only(r.events, 'result').session_id).toBe(ID1);
    const after = readFileSync(sessionFile(ID1));
    expect(after.length).toBeGreaterThan(before.length);
    expect(after.subarray(0, before.length).equals(before)).toBe(true);
    const users = byType(readEntries(sessionFile(ID1)), 'user');
    expect(users.map((u) => (u.message as Json).content)).toEqual(['first', 'second']);
    expect(users[1]?.parentUuid).toBe(lastUuid);
  });

  it.each([
    ['missing', false],
    ['empty', true],
  ])('resume of a %s session file: error result, stderr, exit 1', async (_label, createEmpty) => {
    if (createEmpty) {
      mkdirSync(path.dirname(sessionFile(ID2)), { recursive: true });
      writeFileSync(sessionFile(ID2), '');
    }
    const r = await run([...STREAM, '--resume', ID2, 'hi']);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`No conversation found with session ID: ${ID2}`);
    expect(r.events).toHaveLength(1);
    expect(only(r.events, 'result')).toMatchObject({
      subtype: 'error_during_execution',
      is_error: true,
      num_turns: 0,
      session_id: ID2,
      errors: [`No conversation found with session ID: ${ID2}`],
    });
  });

  it('refuses a --session-id that is already in use', async () => {
    expect((await run([...STREAM, '--session-id', ID1, 'first'])).code).toBe(0);
    const before = readFileSync(sessionFile(ID1));
    const r = await run([...STREAM, '--session-id', ID1, 'again']);
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toBe(`Error: Session ID ${ID1} is already in use.`);
    expect(readFileSync(sessionFile(ID1)).equals(before)).toBe(true);
  });

  it('fork copies the history into a new id and leaves the original untouched', async () => {
    expect((await run([...STREAM, '--session-id', ID1, 'first'])).code).toBe(0);
    const original = readFileSync(sessionFile(ID1));

    const random = await run([...STREAM, '--resume', ID1, '--fork-session', 'branch a']);
    expect(random.code).toBe(0);
    const forkId = only(random.events, 'result').session_id as string;
    expect(forkId).not.toBe(ID1);
    expect(only(random.events, 'system', 'init').session_id).toBe(forkId);

    const chosen = await run([...STREAM, '--resume', ID1, '--fork-session', '--session-id', ID2, 'branch b']);
    expect(only(chosen.events, 'result').session_id).toBe(ID2);

    expect(readFileSync(sessionFile(ID1)).equals(original)).toBe(true);
    for (const id of [forkId, ID2]) {
      const forked = readFileSync(sessionFile(id));
      expect(forked.subarray(0, original.length).equals(original)).toBe(true);
      expect(forked.length).toBeGreaterThan(original.length);
    }
    const forkUsers = byType(readEntries(sessionFile(ID2)), 'user').filter((u) => u.sessionId === ID2);
    expect(forkUsers.map((u) => (u.message as Json).content)).toEqual(['branch b']);
  });

  it('puts the file of a >200-character cwd under the encoded+hashed folder', async () => {
    let deep = ws;
    while (deep.length < 260) deep = path.join(deep, 'a-rather-long-directory-name-segment');
    mkdirSync(deep, { recursive: true });
    const r = await run([...STREAM, '--session-id', ID1, 'deep'], { cwd: deep });
    expect(r.code).toBe(0);
    const file = sessionFile(ID1, deep);
    expect(existsSync(file)).toBe(true);
    const folder = path.basename(path.dirname(file));
    expect(folder).toBe(encodeCwd(realpathSync(deep)));
    expect(folder).toMatch(/^[A-Za-z0-9-]{200}-[0-9a-z]+$/);
  });

  it('newSessionIdOnResume reports a new id like old CLI versions', async () => {
    expect((await run([...STREAM, '--session-id', ID1, 'first'])).code).toBe(0);
    const original = readFileSync(sessionFile(ID1));
    const r = await run([...STREAM, '--resume', ID1, '#fake {"newSessionIdOnResume":true}\nsecond']);
    const newId = only(r.events, 'result').session_id as string;
    expect(newId).not.toBe(ID1);
    expect(readFileSync(sessionFile(ID1)).equals(original)).toBe(true);
    expect(readFileSync(sessionFile(newId)).subarray(0, original.length).equals(original)).toBe(true);
  });
});

describe('stream-json input and recording', () => {
  it('runs one turn per stdin message with the same session id, then exits 0 on EOF', async () => {
    const fake = start([...STREAM, '--input-format', 'stream-json', '--session-id', ID1], { stdin: 'pipe' });
    const message = (text: string): string =>
      `${JSON.stringify({ type: 'user', message: { role: 'user', content: [{ type: 'text', text }] }, parent_tool_use_id: null, session_id: '' })}\n`;
    fake.child.stdin?.write(message('one'));
    await fake.waitFor((e) => e.type === 'result');
    fake.child.stdin?.end(message('two'));
    const r = await fake.exited;
    expect(r.code).toBe(0);
    expect(r.events.map((e) => `${String(e.type)}${e.subtype ? `/${String(e.subtype)}` : ''}`)).toEqual([
      'system/init',
      'assistant',
      'result/success',
      'system/init',
      'assistant',
      'result/success',
    ]);
    expect(new Set(r.events.map((e) => e.session_id))).toEqual(new Set([ID1]));
    expect(byType(r.events, 'result').map((e) => e.result)).toEqual(['fake reply to: one', 'fake reply to: two']);
    const starts = readLog().filter((l) => l.event === 'start');
    expect(starts.map((s) => s.history)).toEqual([[], ['one']]);
  });

  it('with --permission-prompt-tool stdio, an ask goes to the parent as a control request; its answer decides, and an ended stdin refuses', async () => {
    const marker = path.join(root, 'gated-marker');
    const settings = JSON.stringify({ permissions: { ask: ['Bash'] } });
    const message = (text: string): string =>
      `${JSON.stringify({ type: 'user', message: { role: 'user', content: [{ type: 'text', text: `#fake ${JSON.stringify({ gatedCall: marker })}\n${text}` }] }, parent_tool_use_id: null, session_id: '' })}\n`;
    const args = [...STREAM, '--input-format', 'stream-json', '--permission-prompt-tool', 'stdio', '--settings', settings];
    const fake = start([...args, '--session-id', ID1], { stdin: 'pipe' });
    const answer = (request: Json, response: unknown): void =>
      void fake.child.stdin?.write(`${JSON.stringify({ type: 'control_response', response: { subtype: 'success', request_id: request.request_id, response } })}\n`);
    fake.child.stdin?.write(message('one'));
    const first = await fake.waitFor((e) => e.type === 'control_request');
    expect(first.request).toMatchObject({ subtype: 'can_use_tool', tool_name: 'Bash', tool_use_id: expect.stringMatching(/^toolu_fake_/) });
    answer(first, { behavior: 'allow', updatedInput: (first.request as Json).input });
    await fake.waitFor((e) => e.type === 'result');
    fake.child.stdin?.write(message('two'));
    const second = await fake.waitFor((e) => e.type === 'control_request' && e.request_id !== first.request_id);
    answer(second, { behavior: 'deny', message: 'worker says no' });
    await fake.waitFor((e) => e.type === 'result' && e.result === 'fake reply to: two');
    // The third ask finds stdin ended: refused.
    fake.child.stdin?.end(message('three'));
    const r = await fake.exited;
    expect(r.code).toBe(0);
    const ran = readFileSync(marker, 'utf8').split('\n').filter(Boolean);
    expect(ran).toEqual([(first.request as { tool_use_id: string }).tool_use_id]);
    // What the model would read: the tool results in the session file.
    const results = readEntries(sessionFile(ID1)).filter((e) => e.type === 'user').map((e) => JSON.stringify(e)).join('\n');
    expect(results).toContain('worker says no');
    expect(results).toContain('Stream closed');
    expect(readLog().filter((l) => l.event === 'permission').map((l) => l.allowed)).toEqual([true, false, false]);
  });

  it('records start (with history, pids, argv) and end lines', async () => {
    await run([...STREAM, '--session-id', ID1, 'first']);
    const args = [...STREAM, '--resume', ID1, '--model', 'm1', 'second'];
    const fake = start(args);
    const r = await fake.exited;
    expect(r.code).toBe(0);
    const log = readLog();
    expect(log.map((l) => l.event)).toEqual(['start', 'end', 'start', 'end']);
    const [, firstEnd, second, secondEnd] = log as [Json, Json, Json, Json];
    expect(second).toMatchObject({
      pid: fake.child.pid,
      ppid: process.pid,
      argv: args,
      cwd: ws,
      sessionId: ID1,
      resumed: true,
      prompt: 'second',
      history: ['first'],
    });
    expect(typeof second.pgid).toBe('number');
    expect(second.startedAt as number).toBeGreaterThanOrEqual(firstEnd.endedAt as number);
    expect(secondEnd).toMatchObject({ event: 'end', pid: fake.child.pid, sessionId: ID1 });
    expect(only(r.events, 'system', 'init').model).toBe('m1');
  });
});

describe('signals', () => {
  it('SIGTERM exits 143 without a result; the session keeps what was written', async () => {
    const fake = start([...STREAM, '--session-id', ID1, '#fake {"delayMs":60000}\nslow']);
    await fake.waitFor((e) => e.type === 'system' && e.subtype === 'init');
    fake.child.kill('SIGTERM');
    const r = await fake.exited;
    expect(r.code).toBe(143);
    expect(byType(r.events, 'result')).toHaveLength(0);
    expect(byType(readEntries(sessionFile(ID1)), 'user')).toHaveLength(1);
    expect(readLog().map((l) => l.event)).toEqual(['start']);
    expect((await run([...STREAM, '--resume', ID1, 'again'])).code).toBe(0);
  });

  it('ignoreSigterm survives SIGTERM and finishes normally', async () => {
    const fake = start([...STREAM, '#fake {"ignoreSigterm":true,"delayMs":300}\nstubborn']);
    await fake.waitFor((e) => e.type === 'system');
    fake.child.kill('SIGTERM');
    const r = await fake.exited;
    expect(r.code).toBe(0);
    expect(only(r.events, 'result').is_error).toBe(false);
  });

  it('spawnChild puts a child in the process group; killing the group kills it', async () => {
    const fake = start([...STREAM, '#fake {"spawnChild":true,"hang":true}\nwork'], { detached: true });
    await fake.waitFor((e) => e.type === 'system');
    const startRec = readLog().find((l) => l.event === 'start') as Json;
    const childPid = startRec.childPid as number;
    expect(startRec.pgid).toBe(fake.child.pid); // detached: the fake leads its own group
    expect(alive(childPid)).toBe(true);
    process.kill(-(fake.child.pid as number), 'SIGKILL');
    expect((await fake.exited).signal).toBe('SIGKILL');
    await eventually(() => !alive(childPid), 'child process gone');
  });

  it('crash with a signal dies by that signal without a result', async () => {
    const r = await run([...STREAM, '#fake {"crash":{"afterInit":true,"signal":"SIGKILL"}}\nboom']);
    expect(r.signal).toBe('SIGKILL');
    expect(byType(r.events, 'system', 'init')).toHaveLength(1);
    expect(byType(r.events, 'result')).toHaveLength(0);
  });

  it('crash before init exits with the scripted code and prints nothing', async () => {
    const r = await run([...STREAM, 'x'], { env: { FAKE_CLAUDE_SCRIPT: '{"crash":{"exitCode":3}}' } });
    expect(r.code).toBe(3);
    expect(r.stdout).toBe('');
  });
});

describe('scripted behaviours', () => {
  it('apiError with retries: api_retry lines, then an is_error result and exit 1', async () => {
    const r = await run([...STREAM, '#fake {"apiError":{"status":500,"retries":2}}\nhi']);
    expect(r.code).toBe(1);
    expect(byType(r.events, 'system', 'api_retry').map((e) => [e.attempt, e.max_retries, e.error_status])).toEqual([
      [1, 2, 500],
      [2, 2, 500],
    ]);
    const result = only(r.events, 'result');
    expect(result).toMatchObject({ subtype: 'success', is_error: true, api_error_status: 500 });
    expect(result.result).toMatch(/^API Error: 500 /);
    expect(r.stderr).toBe('');
  });

  it('maxTurns and budget give their error subtypes and exit 1', async () => {
    const turns = await run([...STREAM, '--max-turns', '3', '#fake {"maxTurns":true}\nhi']);
    expect(turns.code).toBe(1);
    expect(only(turns.events, 'result')).toMatchObject({
      subtype: 'error_max_turns',
      is_error: true,
      terminal_reason: 'max_turns',
      errors: ['Reached maximum number of turns (3)'],
    });
    const budget = await run([...STREAM, '#fake {"budget":true}\nhi']);
    expect(budget.code).toBe(1);
    expect(only(budget.events, 'result')).toMatchObject({ subtype: 'error_max_budget_usd', is_error: true });
  });

  it('garbage, unknown and oversized lines appear among valid events', async () => {
    const r = await run([...STREAM, '#fake {"garbageLine":true,"unknownEvent":true,"oversizedLineBytes":200000}\nhi']);
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines.filter((l) => !l.startsWith('{'))).toHaveLength(1);
    expect(lines.some((l) => Buffer.byteLength(l) === 200000)).toBe(true);
    expect(byType(r.events, 'some_future_type')).toHaveLength(1);
    expect(only(r.events, 'result').is_error).toBe(false);
  });

  it('a #fake line overrides FAKE_CLAUDE_SCRIPT field by field', async () => {
    const env = { FAKE_CLAUDE_SCRIPT: '{"reply":"env reply","costUsd":0.5,"exitCode":0}' };
    const plain = await run([...STREAM, 'hi'], { env });
    expect(only(plain.events, 'result')).toMatchObject({ result: 'env reply', total_cost_usd: 0.5 });
    const over = await run([...STREAM, '#fake {"reply":"directive reply","exitCode":4}\nhi'], { env });
    expect(over.code).toBe(4);
    expect(only(over.events, 'result')).toMatchObject({ result: 'directive reply', total_cost_usd: 0.5 });
  });

  it('extraLines and lineBytes grow the session file', async () => {
    await run([...STREAM, '--session-id', ID1, '#fake {"extraLines":5,"lineBytes":2000}\nbig']);
    const lines = readFileSync(sessionFile(ID1), 'utf8').trimEnd().split('\n');
    expect(lines.filter((l) => l.includes('"type":"attachment"'))).toHaveLength(5);
    for (const line of lines) expect(Buffer.byteLength(line)).toBeGreaterThanOrEqual(2000);
  });

  it('--include-partial-messages adds stream_event lines around the assistant line', async () => {
    const r = await run([...STREAM, '--include-partial-messages', 'hi']);
    const types = r.events.map((e) => e.type);
    expect(types.indexOf('stream_event')).toBeLessThan(types.indexOf('assistant'));
    expect(byType(r.events, 'stream_event').length).toBeGreaterThan(3);
  });

  it('json and text output formats print only the final result', async () => {
    const json = await run(['-p', '--output-format', 'json', 'hi']);
    expect(json.stdout.trimEnd().split('\n')).toHaveLength(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ type: 'result', result: 'fake reply to: hi' });
    const text = await run(['-p', 'hi']);
    expect(text.stdout).toBe('fake reply to: hi\n');
  });
});

describe('flags', () => {
  it('rejects unknown flags and stream-json without --verbose', async () => {
    const unknown = await run(['-p', '--frobnicate', 'hi']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("unknown option '--frobnicate'");
    const noVerbose = await run(['-p', '--output-format', 'stream-json', 'hi']);
    expect(noVerbose.code).toBe(1);
    expect(noVerbose.stderr).toContain('requires --verbose');
  });

  it('accepts every runner flag, variadic lists included', async () => {
    const r = await run([
      ...STREAM,
      '--model', 'm', '--system-prompt', 's', '--append-system-prompt', 'a',
      '--allowedTools', 'Read', 'Bash(git diff:*)', '--allowed-tools', 'Edit,Write',
      '--disallowedTools', 'WebFetch', 'WebSearch', '--disallowed-tools', 'Task',
      '--permission-mode', 'acceptEdits', '--max-turns', '5', '--max-budget-usd', '1.5',
      '--add-dir', root, ws, '--mcp-config', '{"mcpServers":{}}',
      '--', 'the prompt',
    ]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const init = only(r.events, 'system', 'init');
    expect(init.permissionMode).toBe('acceptEdits');
    expect(init.tools).not.toContain('WebFetch');
    expect(init.tools).not.toContain('Task');
    expect(only(r.events, 'result').result).toBe('fake reply to: the prompt');
  });

  it.runIf(process.getuid?.() === 0)('as root, bypassPermissions needs IS_SANDBOX=1', async () => {
    const refused = await run([...STREAM, '--permission-mode', 'bypassPermissions', 'hi']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('root');
    const sandboxed = await run([...STREAM, '--dangerously-skip-permissions', 'hi'], { env: { IS_SANDBOX: '1' } });
    expect(sandboxed.code).toBe(0);
    expect(only(sandboxed.events, 'system', 'init').permissionMode).toBe('bypassPermissions');
  });
});

describe('output', () => {
  it('exits only after a slow reader took all of stdout (a pipe is asynchronous: process.exit would drop the rest)', async () => {
    const prompt = `long: ${'p'.repeat(100 * 1024)} END`;
    // The reader takes nothing for half a second: the pipe fills, the rest waits in the fake's own buffer.
    const script = `"$NODE" "$FAKE" -p --output-format stream-json --verbose "$PROMPT" | (sleep 0.5; cat)`;
    const child = spawn('/bin/sh', ['-c', script], { cwd: ws, env: baseEnv({ NODE: process.execPath, FAKE, PROMPT: prompt }), stdio: ['ignore', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => chunks.push(d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(0);
    const result = only(parseLines(Buffer.concat(chunks).toString('utf8')), 'result');
    expect(result.result).toBe(`fake reply to: ${prompt}`);
  });
});
