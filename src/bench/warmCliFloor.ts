// The floor under warm_turn_overhead_p50_ms: the same CLI, kept running in
// stream-json input mode exactly as a warm worker keeps it (same argv, same allow-listed
// environment, same mock), but driven by a bare loop with no agentq around it: write one
// user message to stdin, wait for that message's `result` line on stdout. Its time minus
// the mock's own time is what the CLI alone spends per message; a warm turn can never
// cost less than that.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Config } from '../config.js';
import { buildArgv } from '../runner/argv.js';
import { buildRunEnv } from '../runner/env.js';
import { parseRunOptions } from '../runner/options.js';
import { runnerSettings, userMessageLine } from '../runner/runClaude.js';
import type { MockLog } from './realCliRig.js';

const RESULT_TIMEOUT_MS = 60_000;

/** Milliseconds the mock spent answering between `from` and `to` (overlapping requests counted once). */
export function mockTime(mock: MockLog, from: number, to: number): number {
  const spans = mock.requests
    .filter((r) => r.time >= from && r.time <= to && r.finishedAt !== undefined)
    .map((r) => [r.time, r.finishedAt!] as const)
    .sort((a, b) => a[0] - b[0]);
  let total = 0;
  let end = -Infinity;
  for (const [s, e] of spans) {
    const start = Math.max(s, end);
    if (e > start) total += e - start;
    end = Math.max(end, e);
  }
  return total;
}

function isResultLine(line: string): boolean {
  try {
    return (JSON.parse(line) as { type?: unknown }).type === 'result';
  } catch {
    return false;
  }
}

/**
 * Per measured message: ms from the stdin write to its `result` line, minus the mock's
 * time in that window (`mockTime`). One unmeasured message first (the process's start).
 */
export async function cliFloorSamples(
  config: Config,
  mock: MockLog,
  dir: string,
  messages: number,
): Promise<number[]> {
  const cwd = path.join(dir, 'cwd');
  mkdirSync(cwd, { recursive: true });
  const o = parseRunOptions({
    prompt: 'first message',
    cwd,
    configDir: path.join(dir, 'config'),
    tmpDir: path.join(dir, 'tmp'),
    session: { mode: 'new', sessionId: randomUUID() },
    streamInput: true,
    env: { CLAUDE_CODE_EAGER_FLUSH: '1' },
  });
  for (const d of [o.configDir, o.tmpDir]) mkdirSync(d, { recursive: true });
  const child = spawn(config.claudePath, buildArgv(o), {
    cwd,
    env: buildRunEnv(runnerSettings(config).env, o),
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  const exited = new Promise<never>((_, reject) =>
    child.once('exit', (code, signal) => reject(new Error(`the CLI exited (${signal ?? code}) during the floor measurement`))),
  );
  exited.catch(() => undefined);
  let pending = '';
  let onResult: ((at: number) => void) | undefined;
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    pending += chunk;
    for (let nl = pending.indexOf('\n'); nl >= 0; nl = pending.indexOf('\n')) {
      const line = pending.slice(0, nl);
      pending = pending.slice(nl + 1);
      // A result line (2.1.197 prints `{"type":"result",...`; 2.1.332 puts `type` later in the object).
      if (line.includes('"type":"result"') && isResultLine(line)) onResult?.(Date.now());
    }
  });
  const send = (text: string): Promise<number> => {
    const result = new Promise<number>((resolve) => (onResult = resolve));
    child.stdin.write(userMessageLine(text));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no result within ${RESULT_TIMEOUT_MS} ms`)), RESULT_TIMEOUT_MS);
    });
    return Promise.race([result, exited, timeout]).finally(() => clearTimeout(timer));
  };
  try {
    await send(o.prompt ?? '');
    const samples: number[] = [];
    for (let i = 0; i < messages; i++) {
      const t0 = Date.now();
      const t1 = await send(`floor message ${i + 1}`);
      samples.push(t1 - t0 - mockTime(mock, t0, t1));
    }
    return samples;
  } finally {
    child.stdin.end();
    if (child.exitCode === null && child.signalCode === null) {
      const gone = new Promise((r) => child.once('exit', r));
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      await gone;
      clearTimeout(timer);
    }
  }
}
