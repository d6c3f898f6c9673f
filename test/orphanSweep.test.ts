// A worker killed with SIGKILL cannot stop its CLI (the CLI runs in a session of its own).
// sweepOrphanedRuns finds such leftovers by their run marker and dead parent pid.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { sweepOrphanedRuns } from '../src/runner/processTree.js';
import { isAlive, waitUntil } from './helpers/processes.js';

const dist = path.resolve(import.meta.dirname, '../dist');
let root = '';
const leftovers: number[] = [];

afterEach(() => {
  for (const pid of leftovers) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
  leftovers.length = 0;
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A stand-in worker: starts a hanging fake-CLI run through the runner and prints the CLI pid. */
const WORKER_SCRIPT = (ws: string) => `
  const { runClaude } = await import(${JSON.stringify(pathToFileURL(path.join(dist, 'runner/runClaude.js')).href)});
  const { fakeCliPath } = await import(${JSON.stringify(pathToFileURL(path.join(dist, 'testing/fakeCliPath.js')).href)});
  const { randomUUID } = await import('node:crypto');
  let cliPid = 0;
  let told = false;
  void runClaude(
    { prompt: '#fake {"hang":true}\\nx', cwd: ${JSON.stringify(ws)}, configDir: ${JSON.stringify(path.join(ws, '..', 'cfg'))},
      tmpDir: ${JSON.stringify(path.join(ws, '..', 'tmp'))}, session: { mode: 'new', sessionId: randomUUID() } },
    { claudePath: fakeCliPath(), env: { PATH: process.env.PATH }, maxLineBytes: 1 << 20, killGraceMs: 500,
      idleTimeoutMs: 0, timeoutMs: 0, stderrTailBytes: 1024 },
    // The pid is printed once the CLI has read its prompt and started its turn: killed
    // before that, the CLI would end by itself on its stdin's EOF and prove nothing here.
    { onSpawn: (pid) => { cliPid = pid; }, onEvent: () => { if (!told) process.stdout.write(cliPid + '\\n'); told = true; } },
  );
  setInterval(() => {}, 1000);
`;

describe('sweepOrphanedRuns', () => {
  it('kills the CLI of a worker that died by SIGKILL, and nothing of a live one', async () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'agentq-orphan-'));
    const ws = path.join(root, 'ws');
    mkdirSync(ws);
    const worker = spawn(process.execPath, ['--input-type=module', '-e', WORKER_SCRIPT(ws)], { stdio: ['ignore', 'pipe', 'inherit'] });
    leftovers.push(worker.pid!);
    const cliPid = await new Promise<number>((resolve, reject) => {
      worker.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      worker.once('exit', () => reject(new Error('the stand-in worker exited')));
    });
    leftovers.push(cliPid);
    // While its worker lives, the run is not an orphan.
    expect(sweepOrphanedRuns()).not.toContain(cliPid);
    expect(isAlive(cliPid)).toBe(true);

    worker.kill('SIGKILL');
    await waitUntil(() => !isAlive(worker.pid!), 'stand-in worker dead');
    // Sweeps are machine-wide: a worker of a test file running alongside may sweep this
    // orphan first, which is the same function at work. Nothing else ends it.
    await waitUntil(() => {
      sweepOrphanedRuns();
      return !isAlive(cliPid);
    }, 'orphaned CLI killed by a sweep');
  });
});

/**
 * Inside a pid namespace of its own (so setting the next pid disturbs nothing else): a
 * stand-in CLI waits on its hook synchronously, as the CLI waits on a PreToolUse hook, and
 * writes down that it saw the hook end. The hook gets a pid below the CLI's, as after pids
 * wrapped around, and 600 more processes of the run lie between them in pid order.
 * Prints what it found as JSON.
 */
const NAMESPACE_SCRIPT = (saw: string) => `
  const { spawn } = await import('node:child_process');
  const { existsSync, readdirSync, readFileSync, writeFileSync } = await import('node:fs');
  const { once } = await import('node:events');
  const { killProcessesWithEnv } = await import(${JSON.stringify(pathToFileURL(path.join(dist, 'runner/processTree.js')).href)});
  const nextPidAfter = (n) => writeFileSync('/proc/sys/kernel/ns_last_pid', String(n));
  const env = { PATH: process.env.PATH, AGENTQ_TEST_RUN: 'r1' };
  const cliCode = ${JSON.stringify(`process.stdout.write('ready'); process.stdin.once('data', () => { const r = require('child_process').spawnSync('sleep', ['60']); require('fs').writeFileSync(${JSON.stringify(saw)}, String(r.signal)); });`)};
  nextPidAfter(20000);
  const cli = spawn(process.execPath, ['-e', cliCode], { env, stdio: ['pipe', 'pipe', 'inherit'] });
  await once(cli.stdout, 'data');
  nextPidAfter(100);
  cli.stdin.write('go');
  const ppid = (pid) => { try { const s = readFileSync('/proc/' + pid + '/stat', 'latin1'); return Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]); } catch { return -1; } };
  let hook;
  while (hook === undefined) {
    hook = readdirSync('/proc').filter((n) => /^[0-9]+$/.test(n)).map(Number).find((pid) => ppid(pid) === cli.pid && readFileSync('/proc/' + pid + '/cmdline', 'latin1').startsWith('sleep'));
    await new Promise((r) => setTimeout(r, 5));
  }
  for (let i = 0; i < 600; i++) spawn('sleep', ['60'], { env, stdio: 'ignore' });
  const killed = killProcessesWithEnv('AGENTQ_TEST_RUN', 'r1');
  const [, signal] = await once(cli, 'exit');
  process.stdout.write(JSON.stringify({ cli: cli.pid, hook, killed: killed.length, signal, sawHookEnd: existsSync(${JSON.stringify(saw)}) }));
  process.exit(0);
`;

const canUnshare = process.getuid?.() === 0 && spawnSync('unshare', ['--pid', '--fork', '--mount-proc', 'true']).status === 0;

describe('killing what is left of a run', () => {
  it.skipIf(!canUnshare)('kills its processes together: a CLI never sees its hook die first, even with the hook below it in pid order', () => {
    root = mkdtempSync(path.join(os.tmpdir(), 'agentq-killorder-'));
    const saw = path.join(root, 'saw-hook-end');
    const out = execFileSync('unshare', ['--pid', '--fork', '--mount-proc', process.execPath, '--input-type=module', '-e', NAMESPACE_SCRIPT(saw)], { encoding: 'utf8', timeout: 60_000 });
    const r = JSON.parse(out) as { cli: number; hook: number; killed: number; signal: string; sawHookEnd: boolean };
    expect(r.hook).toBeLessThan(r.cli);
    expect(r.killed).toBe(602);
    expect(r.signal).toBe('SIGKILL');
    // A hook killed first is a non-blocking error, after which the CLI would run the call.
    expect(r.sawHookEnd).toBe(false);
  });
});
