// The runner against the fake CLI: every outcome of the closed set, with assertions that
// fail if the outcome is misclassified, plus env, process-group and back-pressure checks.
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import { RunOptionsError } from '../src/errors.js';
import type { ClaudeEvent } from '../src/runner/events.js';
import { runClaude, startClaude, type RunnerSettings } from '../src/runner/runClaude.js';
import type { RunOptions } from '../src/runner/options.js';
import type { RunOutcome } from '../src/runner/outcome.js';
import { fakeCliSettings } from './helpers/infra.js';
import { readFakeCliLog, type FakeCliRecord } from './helpers/fakeCliLog.js';
import { isAlive, waitUntil } from './helpers/processes.js';

let root: string;
let ws: string;
let logFile: string;

const settings = (over: Partial<RunnerSettings> = {}): RunnerSettings => fakeCliSettings(logFile, over);

const opts = (prompt: string, over: Partial<RunOptions> = {}): RunOptions => ({
  prompt,
  cwd: ws,
  configDir: path.join(root, 'cfg'),
  tmpDir: path.join(root, 'tmp'),
  session: { mode: 'new', sessionId: randomUUID() },
  ...over,
});

const fake = (script: object, text = 'hello') => `#fake ${JSON.stringify(script)}\n${text}`;

const readLog = (): FakeCliRecord[] => readFakeCliLog(logFile);

async function collect(o: RunOptions, s = settings()): Promise<{ outcome: RunOutcome; events: ClaudeEvent[] }> {
  const events: ClaudeEvent[] = [];
  const outcome = await runClaude(o, s, { onEvent: (e) => void events.push(e) });
  return { outcome, events };
}

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-runner-'));
  ws = path.join(root, 'ws');
  mkdirSync(ws);
  logFile = path.join(root, 'fake.log');
});

afterEach(() => {
  // Leak guard: every process a test started must be gone.
  for (const r of readLog()) {
    expect(isAlive(r.pid), `fake CLI ${r.pid} still alive`).toBe(false);
    if (r.childPid) expect(isAlive(r.childPid), `tool child ${r.childPid} still alive`).toBe(false);
  }
  rmSync(root, { recursive: true, force: true });
});

describe('runner outcomes', () => {
  it('success: typed events in order, the session id, cost and turns, and the session file', async () => {
    const o = opts(fake({ costUsd: 0.25 }, 'first turn'));
    const { outcome, events } = await collect(o);
    expect(outcome.type).toBe('success');
    const sid = (o.session as { sessionId: string }).sessionId;
    expect(outcome.sessionId).toBe(sid);
    expect(outcome.costUsd).toBe(0.25);
    expect(outcome.numTurns).toBe(1);
    expect(outcome.exitCode).toBe(0);
    expect(outcome.resultText).toBe('fake reply to: first turn');
    expect(events[0]?.kind).toBe('init');
    expect(events.at(-1)?.kind).toBe('result');
    expect(events.map((e) => e.kind)).toContain('assistant');
    expect(existsSync(sessionFilePath(o.configDir, ws, sid))).toBe(true);
  });

  it('resume: a later run appends to the same session', async () => {
    const first = opts('one');
    const sid = (first.session as { sessionId: string }).sessionId;
    expect((await runClaude(first, settings())).type).toBe('success');
    const second = await runClaude(opts('two', { session: { mode: 'resume', sessionId: sid } }), settings());
    expect(second.type).toBe('success');
    expect(second.sessionId).toBe(sid);
    const file = readFileSync(sessionFilePath(first.configDir, ws, sid), 'utf8');
    expect(file).toContain('"one"');
    expect(file).toContain('"two"');
  });

  it('max_turns', async () => {
    const { outcome } = await collect(opts(fake({ maxTurns: true })));
    expect(outcome.type).toBe('max_turns');
    expect(outcome.exitCode).toBe(1);
    expect(outcome.sessionId).toBeDefined();
  });

  it('budget_exceeded', async () => {
    const { outcome } = await collect(opts(fake({ budget: true })));
    expect(outcome.type).toBe('budget_exceeded');
  });

  it.each([
    [500, true],
    [529, true],
    [429, true],
    [400, false],
  ])('api_error %i is retryable=%s', async (status, retryable) => {
    const { outcome } = await collect(opts(fake({ apiError: { status } })));
    expect(outcome.type).toBe('api_error');
    if (outcome.type !== 'api_error') return;
    expect(outcome.httpStatus).toBe(status);
    expect(outcome.retryable).toBe(retryable);
    expect(outcome.message).toMatch(/^API Error/);
  });

  it.each([401, 403])('HTTP %i is an auth failure: not retried, and the message names the variable to set', async (status) => {
    const { outcome } = await collect(opts(fake({ apiError: { status } })));
    expect(outcome.type).toBe('auth');
    if (outcome.type !== 'auth') return;
    expect(outcome.httpStatus).toBe(status);
    expect(outcome.message).toMatch(/ANTHROPIC_API_KEY/);
    expect(outcome.message).not.toMatch(/\(success\)/);
  });

  it('session_not_found: resuming a missing session, and the bogus id is not reported', async () => {
    const missing = randomUUID();
    const { outcome } = await collect(opts('x', { session: { mode: 'resume', sessionId: missing } }));
    expect(outcome.type).toBe('session_not_found');
    if (outcome.type === 'session_not_found') expect(outcome.requestedSessionId).toBe(missing);
    expect(outcome.sessionId).toBeUndefined();
  });

  it('cli_not_found: a missing binary and a file that is not executable', async () => {
    const missing = await runClaude(opts('x'), settings({ claudePath: path.join(root, 'nope', 'claude') }));
    expect(missing.type).toBe('cli_not_found');
    if (missing.type === 'cli_not_found') expect(missing.message).toMatch(/AGENTQ_CLAUDE_PATH/);
    const notExec = path.join(root, 'claude-not-exec');
    writeFileSync(notExec, '#!/bin/sh\necho hi\n');
    chmodSync(notExec, 0o644);
    expect((await runClaude(opts('x'), settings({ claudePath: notExec }))).type).toBe('cli_not_found');
  });

  it('timed_out idle: no output for the idle limit kills the whole group', async () => {
    const { outcome } = await collect(opts(fake({ hang: true, spawnChild: true })), settings({ idleTimeoutMs: 300 }));
    expect(outcome.type).toBe('timed_out');
    if (outcome.type === 'timed_out') {
      expect(outcome.timeout).toBe('idle');
      expect(outcome.limitMs).toBe(300);
    }
  });

  it('timed_out wall: the wall-clock limit applies even while output flows', async () => {
    const { outcome } = await collect(opts(fake({ delayMs: 10_000 })), settings({ timeoutMs: 300 }));
    expect(outcome.type).toBe('timed_out');
    if (outcome.type === 'timed_out') expect(outcome.timeout).toBe('wall');
  });

  it('cancelled: aborting mid-run signals the process group, tool children included', async () => {
    const ac = new AbortController();
    let pid = 0;
    const run = startClaude(opts(fake({ hang: true, spawnChild: true })), settings(), {
      signal: ac.signal,
      onSpawn: (p) => (pid = p),
      onEvent: (e) => {
        if (e.kind === 'init') ac.abort(new Error('user asked'));
      },
    });
    const outcome = await run.outcome;
    expect(outcome.type).toBe('cancelled');
    if (outcome.type === 'cancelled') expect(outcome.reason).toBe('user asked');
    expect(outcome.exitCode ?? outcome.signal).toBeDefined();
    const child = readLog().find((r) => r.event === 'start')?.childPid;
    expect(child).toBeGreaterThan(0);
    expect(isAlive(pid)).toBe(false);
    await waitUntil(() => !isAlive(child!), 'tool child gone');
  });

  it('a tool process in its own session, left running after a normal end, is killed with the run', async () => {
    const { outcome } = await collect(opts(fake({ backgroundChild: true })));
    expect(outcome.type).toBe('success');
    const child = readLog().find((r) => r.event === 'start')?.childPid;
    expect(child).toBeGreaterThan(0);
    await waitUntil(() => !isAlive(child!), 'background child gone');
  });

  it('cancelled: a tool process in its own session is signalled too', async () => {
    const ac = new AbortController();
    const outcome = await runClaude(opts(fake({ hang: true, backgroundChild: true })), settings(), {
      signal: ac.signal,
      onEvent: (e) => {
        if (e.kind === 'init') ac.abort();
      },
    });
    expect(outcome.type).toBe('cancelled');
    const child = readLog().find((r) => r.event === 'start')?.childPid;
    await waitUntil(() => !isAlive(child!), 'background child gone');
  });

  it('cancelled: a CLI that ignores SIGTERM is SIGKILLed after the grace period', async () => {
    const ac = new AbortController();
    const started = Date.now();
    const outcome = await runClaude(opts(fake({ hang: true, ignoreSigterm: true })), settings({ killGraceMs: 300 }), {
      signal: ac.signal,
      onEvent: (e) => {
        if (e.kind === 'init') ac.abort();
      },
    });
    expect(outcome.type).toBe('cancelled');
    expect(outcome.signal).toBe('SIGKILL');
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('cancelled before start: nothing is spawned', async () => {
    const ac = new AbortController();
    ac.abort();
    const outcome = await runClaude(opts('x'), settings(), { signal: ac.signal });
    expect(outcome.type).toBe('cancelled');
    expect(readLog()).toEqual([]);
  });

  it('crashed: an exit code before a result, with the stderr tail', async () => {
    const { outcome } = await collect(opts(fake({ crash: { afterInit: true, exitCode: 3 }, stderr: 'boom: out of cheese' })));
    expect(outcome.type).toBe('crashed');
    expect(outcome.exitCode).toBe(3);
    expect(outcome.stderrTail).toContain('out of cheese');
    if (outcome.type === 'crashed') expect(outcome.message).toContain('exit code 3');
  });

  it('crashed: killed by a signal', async () => {
    const { outcome } = await collect(opts(fake({ crash: { afterInit: true, signal: 'SIGSEGV' } })));
    expect(outcome.type).toBe('crashed');
    expect(outcome.signal).toBe('SIGSEGV');
  });

  it('protocol_error: a stdout line over the cap ends the run instead of growing memory', async () => {
    const { outcome } = await collect(opts(fake({ oversizedLineBytes: 200_000, delayMs: 5000 })), settings({ maxLineBytes: 64 * 1024 }));
    expect(outcome.type).toBe('protocol_error');
    if (outcome.type === 'protocol_error') expect(outcome.message).toMatch(/65536 bytes/);
  });

  it('protocol_error: exit 0 without a result event', async () => {
    const { outcome } = await collect(opts(fake({ crash: { afterInit: true, exitCode: 0 } })));
    expect(outcome.type).toBe('protocol_error');
  });

  it('a line just under the cap is fine', async () => {
    const { outcome, events } = await collect(opts(fake({ oversizedLineBytes: 60_000 })), settings({ maxLineBytes: 64 * 1024 }));
    expect(outcome.type).toBe('success');
    expect(events.some((e) => e.line.length === 60_000)).toBe(true);
  });
});

describe('runner observation', () => {
  it('passes garbage and unknown event types on without failing the run', async () => {
    const { outcome, events } = await collect(opts(fake({ garbageLine: true, unknownEvent: true })));
    expect(outcome.type).toBe('success');
    expect(events.some((e) => e.kind === 'invalid')).toBe(true);
    expect(events.some((e) => e.kind === 'other' && e.data.type === 'some_future_type')).toBe(true);
  });

  it('the CLI sees only the allow-listed environment and its own dirs', async () => {
    const ac = new AbortController();
    let environ = '';
    const o = opts(fake({ hang: true }));
    await runClaude(
      o,
      settings({ env: { PATH: '/usr/bin:/bin', FAKE_CLAUDE_LOG: logFile, ANTHROPIC_API_KEY: 'sk-test' } }),
      {
        signal: ac.signal,
        onEvent: (e) => {
          if (e.kind !== 'init') return;
          const pid = readLog().find((r) => r.event === 'start')!.pid;
          environ = readFileSync(`/proc/${pid}/environ`, 'utf8');
          ac.abort();
        },
      },
    );
    const env = Object.fromEntries(environ.split('\0').filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
    expect(env.CLAUDE_CONFIG_DIR).toBe(o.configDir);
    expect(env.HOME).toBe(o.configDir);
    expect(env.CLAUDE_CODE_TMPDIR).toBe(o.tmpDir);
    expect(env.ANTHROPIC_API_KEY).toBe('sk-test');
    // The test process itself has these; the CLI must not.
    for (const name of Object.keys(process.env)) {
      if (!['PATH', 'HOME', 'TMPDIR'].includes(name)) expect(env, name).not.toHaveProperty(name);
    }
  });

  it('back-pressure: no further line is read while the handler is busy', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const seen: string[] = [];
    const run = startClaude(opts('x'), settings(), {
      onEvent: async (e) => {
        seen.push(e.kind);
        if (e.kind === 'init') await gate;
      },
    });
    // The fake CLI finishes and logs its end while our handler still holds the first event.
    await waitUntil(() => readLog().some((r) => r.event === 'end'), 'fake CLI finished');
    expect(seen).toEqual(['init']);
    release();
    const outcome = await run.outcome;
    expect(outcome.type).toBe('success');
    expect(seen.at(-1)).toBe('result');
  });

  it('a throwing event handler stops the run and rejects the outcome', async () => {
    const run = startClaude(opts(fake({ delayMs: 10_000 })), settings(), {
      onEvent: () => {
        throw new Error('database is down');
      },
    });
    await expect(run.outcome).rejects.toThrow('database is down');
  });

  it('keeps only the configured stderr tail', async () => {
    const { outcome } = await collect(opts(fake({ stderr: `${'a'.repeat(5000)}THE-END`, crash: { afterInit: true, exitCode: 2 } })), settings({ stderrTailBytes: 100 }));
    expect(outcome.stderrTail.length).toBeLessThanOrEqual(100);
    expect(outcome.stderrTail).toContain('THE-END');
  });

  it('stream-json input: each message is its own turn, EOF ends the run', async () => {
    const results: string[] = [];
    const run = startClaude(opts('first', { streamInput: true }), settings(), {
      onEvent: (e) => {
        if (e.kind === 'result') results.push(e.data.result ?? '');
      },
    });
    await waitUntil(() => results.length === 1, 'first result');
    await run.sendUserMessage('second');
    await waitUntil(() => results.length === 2, 'second result');
    run.endInput();
    const outcome = await run.outcome;
    expect(outcome.type).toBe('success');
    expect(results).toEqual(['fake reply to: first', 'fake reply to: second']);
  });

  it('bad options are refused by field before anything is spawned', () => {
    expect(() => startClaude({ ...opts('x'), cwd: path.join(root, 'missing') }, settings())).toThrow(RunOptionsError);
    expect(() => startClaude({ ...opts('x'), maxTurns: -1 }, settings())).toThrow(/maxTurns/);
    expect(readLog()).toEqual([]);
  });
});
