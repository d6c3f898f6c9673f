// runner_overhead_ratio: one fake-CLI run through the runner (argv, env, process group,
// line parsing, typed events, outcome) against a bare child_process.spawn of the same
// fake CLI with the same argv that only drains stdout. Runs alternate so drift hits both.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildArgv } from '../runner/argv.js';
import { buildRunEnv } from '../runner/env.js';
import { parseRunOptions, type RunOptions } from '../runner/options.js';
import { runClaude, type RunnerSettings } from '../runner/runClaude.js';
import { fakeCliPath } from '../testing/fakeCliPath.js';
import { median, round, type Benchmark, type Figure } from './harness.js';

const ITERATIONS = 40;

function bareRun(file: string, argv: string[], env: Record<string, string>, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, { cwd, env, stdio: ['ignore', 'pipe', 'ignore'] });
    child.stdout.on('data', () => undefined);
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`fake CLI exited ${code}`))));
  });
}

export const runnerOverhead: Benchmark = {
  name: 'runner',
  description: 'fake-CLI run through the runner vs a bare spawn of the same fake CLI',
  async run(ctx) {
    const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-runner-'));
    const settings: RunnerSettings = {
      claudePath: fakeCliPath(),
      env: { PATH: '/usr/bin:/bin' },
      maxLineBytes: 16 * 1024 * 1024,
      killGraceMs: 3000,
      idleTimeoutMs: 60_000,
      timeoutMs: 60_000,
      stderrTailBytes: 16 * 1024,
    };
    const options = (): RunOptions => ({
      prompt: 'benchmark turn',
      cwd: root,
      configDir: path.join(root, 'cfg'),
      tmpDir: path.join(root, 'tmp'),
      session: { mode: 'new', sessionId: randomUUID() },
    });
    try {
      const runner: number[] = [];
      const bare: number[] = [];
      // Warm both paths (file cache, JIT) before measuring.
      for (let i = 0; i < 3; i++) await runClaude(options(), settings);
      for (let i = 0; i < ITERATIONS; i++) {
        const o = parseRunOptions(options());
        let t = performance.now();
        await bareRun(settings.claudePath, buildArgv(o), buildRunEnv(settings.env, o), root);
        bare.push(performance.now() - t);
        t = performance.now();
        const outcome = await runClaude(options(), settings, { onEvent: () => undefined });
        runner.push(performance.now() - t);
        if (outcome.type !== 'success') throw new Error(`benchmark run ended ${outcome.type}`);
      }
      const r = median(runner);
      const b = median(bare);
      ctx.log(`runner median ${r.toFixed(1)} ms, bare spawn median ${b.toFixed(1)} ms over ${ITERATIONS} runs each`);
      const figures: Figure[] = [
        { bench: 'runner_overhead_ratio', value: round(r / b), unit: 'ratio', baseline: 1, target: '<= 1.10' },
        { bench: 'runner_run_p50_ms', value: round(r, 1), unit: 'ms', baseline: round(b, 1), target: 'informational' },
      ];
      return figures;
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  },
};
