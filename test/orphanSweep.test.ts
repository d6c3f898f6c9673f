// A worker killed with SIGKILL cannot stop its CLI (the CLI runs in a session of its own).
// sweepOrphanedRuns finds such leftovers by their run marker and dead parent pid.
import { spawn } from 'node:child_process';
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
