// Runs started through the spawn helper (src/runner/spawnHelper.ts): the CLI is the
// helper's child, not the worker's; nothing it writes before its pipes reach the worker is
// lost, with many starting at once; a run cancelled while it starts is stopped; a helper
// that dies fails its runs (and a new one serves the next); the helper dies with its worker.
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ClaudeEvent } from '../src/runner/events.js';
import type { RunOptions } from '../src/runner/options.js';
import { startClaude, type RunnerSettings } from '../src/runner/runClaude.js';
import { fakeCliSettings } from './helpers/infra.js';
import { isAlive, waitUntil } from './helpers/processes.js';

let root: string;
let ws: string;

beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-spawn-helper-'));
  ws = path.join(root, 'ws');
  mkdirSync(ws);
});

afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

const opts = (over: Partial<RunOptions> = {}): RunOptions => ({
  prompt: 'hello',
  cwd: ws,
  configDir: path.join(root, 'cfg'),
  tmpDir: path.join(root, 'tmp'),
  session: { mode: 'new', sessionId: randomUUID() },
  ...over,
});

/** A stand-in CLI: a shell script with `body`. */
function script(name: string, body: string, over: Partial<RunnerSettings> = {}): RunnerSettings {
  const file = path.join(root, name);
  writeFileSync(file, `#!/bin/sh\n${body}\n`);
  chmodSync(file, 0o755);
  return fakeCliSettings(path.join(root, 'unused.log'), { claudePath: file, ...over });
}

const parentOf = (pid: number): number => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
};
const cmdlineOf = (pid: number): string => readFileSync(`/proc/${pid}/cmdline`, 'latin1').replaceAll('\0', ' ');

/** Starts a run and resolves with its pid once it exists. */
function started(options: RunOptions, settings: RunnerSettings, onEvent?: (e: ClaudeEvent) => void, signal?: AbortSignal) {
  let pidSeen: (pid: number) => void;
  const pid = new Promise<number>((r) => (pidSeen = r));
  const run = startClaude(options, settings, { onSpawn: (p) => pidSeen(p), ...(onEvent ? { onEvent } : {}), ...(signal ? { signal } : {}) });
  return { run, pid };
}

describe('the spawn helper', () => {
  it('starts the CLI as its own child, not the worker’s; `direct` starts it from the worker', async () => {
    const s = script('wait.sh', 'read line; echo done');
    const viaHelper = started(opts({ streamInput: true }), s);
    const pid = await viaHelper.pid;
    const helper = parentOf(pid);
    expect(helper).not.toBe(process.pid);
    expect(parentOf(helper)).toBe(process.pid);
    expect(cmdlineOf(helper)).toContain('spawnHelperMain.js');
    viaHelper.run.endInput();
    await viaHelper.run.outcome;

    const direct = started(opts({ streamInput: true }), { ...s, spawn: 'direct' });
    expect(parentOf(await direct.pid)).toBe(process.pid);
    direct.run.endInput();
    await direct.run.outcome;
  });

  it('loses nothing a run writes before its pipes reach the worker, with eight starting at once', async () => {
    // 3000 lines at once from the first instant, stderr before and after them.
    const s = script(
      'burst.sh',
      'echo first-on-stderr >&2; i=0; while [ $i -lt 3000 ]; do echo "{\\"type\\":\\"burst\\",\\"n\\":$i}"; i=$((i+1)); done; echo last-on-stderr >&2',
    );
    const runs = Array.from({ length: 8 }, () => {
      const seen: number[] = [];
      const { run } = started(opts(), s, (e) => {
        if (e.kind === 'other') seen.push((e.data as { n: number }).n);
      });
      return { seen, outcome: run.outcome };
    });
    for (const { seen, outcome } of runs) {
      const o = await outcome;
      expect(seen).toEqual(Array.from({ length: 3000 }, (_, i) => i));
      expect(o.stderrTail).toContain('first-on-stderr');
      expect(o.stderrTail).toContain('last-on-stderr');
      expect(o.exitCode).toBe(0);
    }
  });

  it('the CLI inherits nothing of the helper but its pipes: no socket past fd 2, so not the channel to the worker', async () => {
    const s = script('fds.sh', 'exec /bin/ls -l /proc/self/fd');
    const lines: string[] = [];
    const outcome = await startClaude(opts(), s, { onEvent: (e) => void (e.kind === 'invalid' && lines.push(e.line)) }).outcome;
    expect(outcome.exitCode).toBe(0);
    const sockets = lines.map((l) => / (\d+) -> (socket:\[\d+\])$/.exec(l)).filter((m) => m !== null);
    // stdout and stderr are the pipes the worker reads (socket pairs, as Node makes them).
    expect(sockets.map((m) => Number(m[1])).sort()).toEqual([1, 2]);
  });

  it('a run cancelled before the helper has answered is stopped once it exists', async () => {
    const s = script('sleeper.sh', 'exec sleep 30');
    const controller = new AbortController();
    const { run, pid } = started(opts(), s, undefined, controller.signal);
    controller.abort('changed my mind');
    const outcome = await run.outcome;
    expect(outcome.type).toBe('cancelled');
    expect(isAlive(await pid)).toBe(false);
  });

  it('a helper killed under a running CLI fails the run as crashed, the CLI is stopped, and a new helper serves the next run', async () => {
    const s = script('sleeper.sh', 'exec sleep 30');
    const first = started(opts(), s);
    const pid = await first.pid;
    const helper = parentOf(pid);
    process.kill(helper, 'SIGKILL');
    const outcome = await first.run.outcome;
    expect(outcome.type).toBe('crashed');
    expect(outcome.type === 'crashed' && outcome.message).toMatch(/spawn helper \(pid \d+\) exited \(SIGKILL\)/);
    await waitUntil(() => !isAlive(pid), 'the orphaned CLI is stopped');

    const next = started(opts({ streamInput: true }), script('wait.sh', 'read line; echo done'));
    const nextHelper = parentOf(await next.pid);
    expect(nextHelper).not.toBe(helper);
    next.run.endInput();
    expect((await next.run.outcome).exitCode).toBe(0);
  });

  it('a CLI that kills its helper as it starts ends crashed, and what it started is stopped', async () => {
    const childPidFile = path.join(root, 'child.pid');
    const s = script('parricide.sh', `sleep 30 & echo $! > ${childPidFile}; kill -9 $PPID; wait`);
    const outcome = await startClaude(opts(), s).outcome;
    expect(outcome.type).toBe('crashed');
    expect(outcome.type === 'crashed' && outcome.message).toMatch(/spawn helper/);
    const child = Number(readFileSync(childPidFile, 'utf8'));
    await waitUntil(() => !isAlive(child), 'the run’s own child is stopped');
  });

  it("a run whose config link leads to another attempt's directory is not started, through the helper or directly", async () => {
    // Another attempt took the conversation over and re-pointed the link after this one's lease check.
    const mine = path.join(root, 'attempt-1');
    const theirs = path.join(root, 'attempt-2');
    for (const d of [mine, theirs]) mkdirSync(d);
    const link = path.join(root, 'conversation-link');
    symlinkSync(theirs, link);
    const ran = path.join(root, 'ran');
    for (const spawnMode of ['helper', 'direct'] as const) {
      const s = script('records.sh', `echo "$CLAUDE_CONFIG_DIR" >> ${ran}`, spawnMode === 'direct' ? { spawn: 'direct' } : {});
      const outcome = await startClaude(opts({ configDir: link, attemptLink: { link, target: mine } }), s).outcome;
      expect(outcome.type).toBe('crashed');
      expect(outcome.type === 'crashed' && outcome.message).toContain('another attempt took the conversation over');
    }
    expect(existsSync(ran)).toBe(false);
    // Leading to this attempt's directory, it starts.
    rmSync(link);
    symlinkSync(mine, link);
    const ok = await startClaude(opts({ configDir: link, attemptLink: { link, target: mine } }), script('records.sh', `echo "$CLAUDE_CONFIG_DIR" >> ${ran}`)).outcome;
    expect(ok.type).not.toBe('cli_not_found');
    expect(readFileSync(ran, 'utf8').trim()).toBe(link);
  });

  it('a CLI that cannot be executed is cli_not_found, as when spawned directly', async () => {
    const outcome = await startClaude(opts(), fakeCliSettings(path.join(root, 'unused.log'), { claudePath: path.join(root, 'missing') })).outcome;
    expect(outcome.type).toBe('cli_not_found');
  });

  it('dies with its worker (kill -9)', async () => {
    // A process of its own that starts a run through the compiled helper, prints the run's
    // pid, and waits.
    const runner = fileURLToPath(new URL('../dist/runner/spawnHelper.js', import.meta.url));
    const code = `
      import { spawnThroughHelper } from ${JSON.stringify(runner)};
      const run = await spawnThroughHelper({ file: '/bin/sleep', args: ['30'], cwd: '/', env: {}, stdin: false });
      console.log(run.pid);
      setInterval(() => undefined, 1000);
    `;
    const worker = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
    const runPid = await new Promise<number>((resolve, reject) => {
      worker.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
      worker.once('exit', (c) => reject(new Error(`the worker exited with ${c}`)));
    });
    const helper = parentOf(runPid);
    expect(parentOf(helper)).toBe(worker.pid);
    worker.kill('SIGKILL');
    await waitUntil(() => !isAlive(helper), 'the helper exits with its worker');
    // The unsandboxed run it started outlives both, as it did the worker before: the
    // orphan sweep's (test/orphanSweep.test.ts); here it is ended by hand.
    expect(isAlive(runPid)).toBe(true);
    execFileSync('kill', ['-9', String(runPid)]);
  });
});
