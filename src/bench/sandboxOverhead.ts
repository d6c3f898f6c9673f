// sandbox_overhead_ms: the start-up time bubblewrap (namespaces, mounts, socat, the API
// forwarder) adds to one CLI run: the same run through the runner with and without the
// sandbox, alternating so drift hits both. Measured with the fake CLI (a ~50 ms node
// script, so the difference is not lost in the noise), then with the real CLI against
// the mock model as a check on a whole turn.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../config.js';
import { startMockModel } from '../mock/mockModel.js';
import { runClaude, type RunnerSettings } from '../runner/runClaude.js';
import type { RunOptions } from '../runner/options.js';
import { probeSandbox } from '../sandbox/probe.js';
import { fakeCliPath } from '../testing/fakeCliPath.js';
import { median, round, type Benchmark, type Figure } from './harness.js';

const FAKE_ITERATIONS = 30;
const REAL_ITERATIONS = 8;

async function pairs(settings: RunnerSettings, root: string, prompt: string, n: number): Promise<{ on: number; off: number }> {
  const options = (): RunOptions => {
    const dir = path.join(root, randomUUID().slice(0, 8));
    mkdirSync(path.join(dir, 'w'), { recursive: true });
    return {
      prompt,
      cwd: path.join(dir, 'w'),
      configDir: path.join(dir, 'cfg'),
      tmpDir: path.join(dir, 'tmp'),
      session: { mode: 'new', sessionId: randomUUID() },
      permissionMode: 'bypassPermissions',
      maxTurns: 3,
    };
  };
  const off = { ...settings, sandbox: undefined };
  const on: number[] = [];
  const bare: number[] = [];
  for (let i = 0; i < 2; i++) {
    await runClaude(options(), off);
    await runClaude(options(), settings);
  }
  for (let i = 0; i < n; i++) {
    for (const [s, into] of [[off, bare], [settings, on]] as const) {
      const t = performance.now();
      const outcome = await runClaude(options(), s, { onEvent: () => undefined });
      into.push(performance.now() - t);
      if (outcome.type !== 'success') throw new Error(`benchmark run ended ${outcome.type}: ${outcome.stderrTail}`);
    }
  }
  return { on: median(on), off: median(bare) };
}

export const sandboxOverhead: Benchmark = {
  name: 'sandbox',
  description: 'one CLI run through the runner inside bubblewrap vs the same run unsandboxed',
  realCli: true,
  async run(ctx) {
    const { bwrapPath, socatPath } = loadConfig(process.env).sandbox;
    const probe = await probeSandbox(bwrapPath, socatPath);
    if (!probe.ok) throw new Error(`the sandbox is not usable here: ${probe.reason}`);
    const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-sandbox-'));
    const mock = await startMockModel();
    const base = { maxLineBytes: 16 * 1024 * 1024, killGraceMs: 3000, idleTimeoutMs: 60_000, timeoutMs: 60_000, stderrTailBytes: 16 * 1024, sandbox: probe.settings };
    try {
      const fake = await pairs({ ...base, claudePath: fakeCliPath(), env: { PATH: '/usr/bin:/bin', IS_SANDBOX: '1' } }, root, 'benchmark turn', FAKE_ITERATIONS);
      ctx.log(`fake CLI: sandboxed median ${fake.on.toFixed(1)} ms, unsandboxed ${fake.off.toFixed(1)} ms over ${FAKE_ITERATIONS} runs each`);
      const env = { PATH: '/usr/bin:/bin', LANG: 'C.UTF-8', ANTHROPIC_BASE_URL: mock.url, ANTHROPIC_API_KEY: 'sk-bench', CLAUDE_CODE_MAX_RETRIES: '0', IS_SANDBOX: '1' };
      const real = await pairs({ ...base, claudePath: ctx.cli.path, env }, root, 'bench <<tool Bash {"command":"echo hi > f.txt"}>>', REAL_ITERATIONS);
      ctx.log(`real CLI (tool round trip): sandboxed median ${real.on.toFixed(1)} ms, unsandboxed ${real.off.toFixed(1)} ms over ${REAL_ITERATIONS} runs each`);
      const figures: Figure[] = [
        { bench: 'sandbox_overhead_ms', value: round(fake.on - fake.off, 1), unit: 'ms', baseline: round(fake.off, 1), target: '<= 50' },
        { bench: 'sandbox_real_cli_overhead_ms', value: round(real.on - real.off, 1), unit: 'ms', baseline: round(real.off, 1), target: 'informational' },
        // The real CLI's own time for a turn with one tool round trip, unsandboxed (no baseline: compare versions).
        { bench: 'real_cli_turn_ms', value: round(real.off, 1), unit: 'ms', baseline: null, target: 'informational' },
        { bench: 'sandbox_probe_ms', value: probe.ms, unit: 'ms', baseline: 0, target: 'informational' },
      ];
      return figures;
    } finally {
      await mock.close();
      rmSync(root, { recursive: true, force: true });
    }
  },
};
