// The kept CLI process of a warm conversation (MultiTurnCli) with the fake CLI, and the
// runner's limits while such a process waits for its next message; plus the `warm` turn
// option's validation.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TurnInputError } from '../src/errors.js';
import { enqueueInputSchema, parseEnqueueInput } from '../src/queue/turnInput.js';
import type { ClaudeEvent } from '../src/runner/events.js';
import type { RunnerSettings } from '../src/runner/runClaude.js';
import { readFakeCliLog } from './helpers/fakeCliLog.js';
import { fakeCliSettings } from './helpers/infra.js';
import { MultiTurnCli } from '../src/worker/multiTurnCli.js';
import { warmOptionsKey } from '../src/worker/warmPolicy.js';
import { isAlive } from './helpers/processes.js';

let root: string;
let ws: string;
let logFile: string;
const clis: MultiTurnCli[] = [];

const settings = (over: Partial<RunnerSettings> = {}): RunnerSettings => fakeCliSettings(logFile, over);

function start(prompt: string, s = settings()): MultiTurnCli {
  const cli = new MultiTurnCli(
    { prompt, cwd: ws, configDir: path.join(root, 'cfg'), tmpDir: path.join(root, 'tmp'), session: { mode: 'new', sessionId: randomUUID() } },
    s,
  );
  clis.push(cli);
  return cli;
}

const pids = () => new Set(readFakeCliLog(logFile).map((r) => r.pid));

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-warmcli-'));
  ws = path.join(root, 'ws');
  mkdirSync(ws);
  logFile = path.join(root, 'fake.log');
});
afterEach(async () => {
  for (const c of clis.splice(0)) await c.close(500);
  rmSync(root, { recursive: true, force: true });
});

describe('a kept CLI process', () => {
  it('answers one message after another with its own outcome each; the per-process running cost is split per turn', async () => {
    const cli = start('#fake {"costUsd":0.25}\none');
    const signal = new AbortController().signal;
    const seen: ClaudeEvent[][] = [];
    const turn = async (prompt?: string) => {
      const events: ClaudeEvent[] = [];
      seen.push(events);
      return cli.turn(prompt, (e) => events.push(e), signal);
    };
    const a = await turn();
    const b = await turn('#fake {"costUsd":0.5}\ntwo');
    const c = await turn('three');
    expect([a, b, c].map((t) => [t.outcome.type, t.alive, t.outcome.resultText])).toEqual([
      ['success', true, 'fake reply to: one'],
      ['success', true, 'fake reply to: two'],
      ['success', true, 'fake reply to: three'],
    ]);
    expect([a, b, c].map((t) => t.outcome.costUsd)).toEqual([0.25, 0.5, 0.0001]);
    // Each turn got its own init … result, and only its own.
    for (const events of seen) expect(events.map((e) => e.kind).filter((k) => k === 'init' || k === 'result')).toEqual(['init', 'result']);
    expect(pids().size).toBe(1);
    const exit = await cli.close(2000);
    expect(exit.exitCode).toBe(0);
    expect(cli.isRunning).toBe(false);
  });

  it('a process that dies during a turn ends that turn with the process outcome (crashed), not alive', async () => {
    const cli = start('one');
    const signal = new AbortController().signal;
    expect((await cli.turn(undefined, () => undefined, signal)).alive).toBe(true);
    const t = await cli.turn('#fake {"crash":{"exitCode":3}}\ntwo', () => undefined, signal);
    expect(t.alive).toBe(false);
    expect(t.outcome.type).toBe('crashed');
  });

  it('aborting a turn kills the process: cancelled with the reason', async () => {
    const cli = start('one');
    const ac = new AbortController();
    await cli.turn(undefined, () => undefined, ac.signal);
    const pending = cli.turn('#fake {"delayMs":5000}\nslow', () => undefined, ac.signal);
    setTimeout(() => ac.abort('shutdown'), 200);
    const t = await pending;
    expect(t.outcome).toMatchObject({ type: 'cancelled', reason: 'shutdown' });
    const [pid] = [...pids()];
    expect(isAlive(pid!)).toBe(false);
  });

  it('the idle limit does not count while the process waits for its next message, and counts again during a turn', async () => {
    const cli = start('one', settings({ idleTimeoutMs: 300 }));
    const signal = new AbortController().signal;
    expect((await cli.turn(undefined, () => undefined, signal)).alive).toBe(true);
    // Idle between turns for well over the limit: still there.
    await new Promise((r) => setTimeout(r, 900));
    expect(cli.isRunning).toBe(true);
    expect((await cli.turn('two', () => undefined, signal)).outcome.type).toBe('success');
    // A turn that goes silent past the limit is stopped.
    const t = await cli.turn('#fake {"hang":true}\nthree', () => undefined, signal);
    expect(t.outcome).toMatchObject({ type: 'timed_out', timeout: 'idle' });
  });
});

describe('the warm turn option', () => {
  const schema = enqueueInputSchema(1000);
  it('accepts { idleMs } and false, refuses anything else naming the field', () => {
    expect(schema.safeParse({ conversationId: 'c', prompt: 'p', options: { warm: { idleMs: 60000 } } }).success).toBe(true);
    expect(schema.safeParse({ conversationId: 'c', prompt: 'p', options: { warm: false } }).success).toBe(true);
    for (const warm of [true, { idleMs: 5 }, { idleMs: 1000, extra: 1 }, { idle: 1000 }]) {
      let err: unknown;
      try {
        parseEnqueueInput({ conversationId: 'c', prompt: 'p', options: { warm } }, 1000);
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(warm)).toBeInstanceOf(TurnInputError);
      expect((err as Error).message).toContain('options.warm');
    }
  });

  it('turns that differ only in warm, streamInput or continueOnRetry share a process; other options do not', () => {
    expect(warmOptionsKey({ warm: { idleMs: 1000 }, streamInput: true, continueOnRetry: false })).toBe(warmOptionsKey({}));
    expect(warmOptionsKey({ model: 'a' })).not.toBe(warmOptionsKey({ model: 'b' }));
    expect(warmOptionsKey({ model: 'a', maxTurns: 3 })).toBe(warmOptionsKey({ maxTurns: 3, model: 'a' }));
  });
});
