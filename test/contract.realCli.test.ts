// Contract tests: the REAL Claude Code CLI (the pinned dependency) through the runner,
// offline, against the project's own mock Messages API. They prove the facts the rest
// of agentq relies on: session ids, hydration by copying one file under another cwd,
// the missing-session and API-error outcomes, and cancellation without leftovers.
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import type { ClaudeEvent } from '../src/runner/events.js';
import { runClaude, type RunnerSettings } from '../src/runner/runClaude.js';
import type { RunOptions } from '../src/runner/options.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { groupMembers, liveProcesses } from './helpers/procScan.js';
import { waitUntil } from './helpers/processes.js';
import { realCliSettings } from './helpers/realCli.js';

let mock: MockModel;
let root: string;

const settings = (over: Record<string, string> = {}): RunnerSettings => realCliSettings(mock.url, over);

/** One "machine": its own workspace path, config dir, home and tmp. */
function machine(name: string) {
  const base = path.join(root, name);
  const cwd = path.join(base, 'workspace', 'conversation');
  mkdirSync(cwd, { recursive: true });
  return { cwd, configDir: path.join(base, 'config'), tmpDir: path.join(base, 'tmp') };
}

const options = (m: ReturnType<typeof machine>, prompt: string, session: RunOptions['session']): RunOptions => ({
  prompt,
  ...m,
  session,
  permissionMode: 'bypassPermissions',
  maxTurns: 5,
});

beforeAll(async () => {
  mock = await startMockModel();
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.reset();
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-contract-'));
  return () => rmSync(root, { recursive: true, force: true });
});

describe('the real CLI through the runner', () => {
  it('runs a tool call, reports the chosen session id, and resumes from one copied file under another cwd', async () => {
    const a = machine('worker-a');
    const sessionId = randomUUID();
    mock.enqueue({ toolUse: { name: 'Bash', input: { command: 'echo contract-ok > out.txt' } } }, { text: 'I wrote out.txt' });
    const events: ClaudeEvent[] = [];
    const first = await runClaude(options(a, 'please write out.txt', { mode: 'new', sessionId }), settings(), {
      onEvent: (e) => void events.push(e),
    });
    expect(first.type, first.stderrTail).toBe('success');
    expect(first.sessionId).toBe(sessionId);
    expect(first.resultText).toBe('I wrote out.txt');
    expect(readFileSync(path.join(a.cwd, 'out.txt'), 'utf8').trim()).toBe('contract-ok');
    const init = events.find((e) => e.kind === 'init');
    expect(init?.kind === 'init' && init.data.session_id).toBe(sessionId);
    expect(events.some((e) => e.kind === 'user' && JSON.stringify(e.data.message).includes('tool_result'))).toBe(true);

    // A different machine: brand-new config dir and HOME, a different workspace path;
    // only the session file travels.
    const b = machine('worker-b-elsewhere');
    const target = sessionFilePath(b.configDir, b.cwd, sessionId);
    mkdirSync(path.dirname(target), { recursive: true });
    copyFileSync(sessionFilePath(a.configDir, a.cwd, sessionId), target);
    mock.reset();
    const second = await runClaude(options(b, 'what did you do before?', { mode: 'resume', sessionId }), settings());
    expect(second.type, second.stderrTail).toBe('success');
    expect(second.sessionId).toBe(sessionId);
    const sent = JSON.stringify(mock.mainRequests().at(-1)?.body?.messages);
    expect(sent).toContain('please write out.txt');
    expect(sent).toContain('I wrote out.txt');
    expect(sent).toContain('contract-ok > out.txt');
    expect(sent).toContain('what did you do before?');
    // The resumed run appended to the same file: the copied bytes are its exact prefix.
    const before = readFileSync(sessionFilePath(a.configDir, a.cwd, sessionId));
    const after = readFileSync(target);
    expect(after.subarray(0, before.length).equals(before)).toBe(true);
    expect(after.length).toBeGreaterThan(before.length);
  });

  it('a missing session is session_not_found', async () => {
    const m = machine('m');
    const missing = randomUUID();
    const outcome = await runClaude(options(m, 'hello', { mode: 'resume', sessionId: missing }), settings());
    expect(outcome.type).toBe('session_not_found');
    if (outcome.type === 'session_not_found') expect(outcome.requestedSessionId).toBe(missing);
    expect(mock.mainRequests()).toHaveLength(0);
  });

  it('an API 500 with CLAUDE_CODE_MAX_RETRIES=0 is a retryable api_error', async () => {
    const m = machine('m');
    mock.enqueue({ error: { status: 500, message: 'mock outage' } });
    const outcome = await runClaude(options(m, 'hello', { mode: 'new', sessionId: randomUUID() }), settings());
    expect(outcome.type).toBe('api_error');
    if (outcome.type !== 'api_error') return;
    expect(outcome.httpStatus).toBe(500);
    expect(outcome.retryable).toBe(true);
    expect(outcome.exitCode).toBe(1);
  });

  it('cancellation during a tool call leaves no process behind', async () => {
    const m = machine('m');
    // Not a leading `sleep N`: CLI 2.1.332 refuses long sleeps in Bash ("Blocked: sleep ..."), 2.1.197 runs them.
    const marker = `timeout ${600 + Math.floor(Math.random() * 300)} tail -f /dev/null`;
    mock.enqueue({ toolUse: { name: 'Bash', input: { command: `${marker}; echo never` } } }, { text: 'unreachable' });
    const ac = new AbortController();
    let pgid = 0;
    const run = runClaude(options(m, 'run the long command', { mode: 'new', sessionId: randomUUID() }), settings(), {
      signal: ac.signal,
      onSpawn: (pid) => (pgid = pid),
    });
    // Cancel once the tool's own process is running.
    await waitUntil(() => liveProcesses().some((p) => p.cmdline.includes(marker)), 'the Bash tool started', 30_000);
    const toolPids = liveProcesses().filter((p) => p.cmdline.includes(marker));
    ac.abort(new Error('cancelled by test'));
    const outcome = await run;
    expect(outcome.type).toBe('cancelled');
    await waitUntil(() => groupMembers(pgid).length === 0, 'the process group is empty', 5000);
    const alive = new Set(liveProcesses().map((p) => p.pid));
    expect(toolPids.filter((p) => alive.has(p.pid))).toEqual([]);
  });
});
