// real_cli_turn_tax_ms: what a durable turn through agentq costs over the same real CLI
// resuming the same kind of session from its own disk, one turn at a time, the two
// alternating in one run. The CLI is the pinned (or `--cli`) one against the mock
// Messages API (a process of its own, as a model is not in the worker's process),
// unsandboxed; both sides get the same one-line reply, so the mock's own time cancels out.
//
// - agentq: enqueueTurn() → the BullMQ 'completed' event of its job (after the commit),
//   `warm: false`, so every turn spawns the CLI and resumes the session the worker keeps.
// - bare: the same argv and environment the runner builds (`buildArgv`, `buildRunEnv`),
//   resuming a session of its own in a fixed directory: spawn → exit, stdout drained.
//
// Value: the median of the per-pair differences (agentq − bare, adjacent in time);
// baseline: the bare run's median. The worker's phase log of the measured turns and the
// CLI's own time in the worker are printed (medians) to show where the difference goes.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config.js';
import { buildArgv } from '../runner/argv.js';
import { buildRunEnv } from '../runner/env.js';
import { parseRunOptions } from '../runner/options.js';
import { runnerSettings } from '../runner/runClaude.js';
import { median, round, type BenchContext, type Benchmark, type Figure } from './harness.js';
import { withRealCliRig } from './realCliRig.js';

const MEASURED_TURNS = 30;

/**
 * A bare CLI on a session of its own: each call resumes it with one more prompt and returns
 * spawn → exit in ms. `forkMs` gets how long each spawn held this process's event loop
 * (the fork; agentq's worker forks from its spawn helper instead, docs/runner.md).
 */
function bareCli(config: Config, dir: string, forkMs: number[]): (prompt: string) => Promise<number> {
  const sessionId = randomUUID();
  const cwd = path.join(dir, 'cwd');
  let started = false;
  return async (prompt) => {
    const o = parseRunOptions({
      prompt,
      cwd,
      configDir: path.join(dir, 'config'),
      tmpDir: path.join(dir, 'tmp'),
      session: started ? { mode: 'resume', sessionId } : { mode: 'new', sessionId },
    });
    for (const d of [cwd, o.configDir, o.tmpDir]) mkdirSync(d, { recursive: true });
    const t0 = performance.now();
    const child = execa(config.claudePath, buildArgv(o), {
      cwd,
      env: buildRunEnv(runnerSettings(config).env, o),
      extendEnv: false,
      // An open stdin the CLI is not fed costs it a 3 s wait (shared/claude-cli/README.md).
      stdin: 'ignore',
      reject: false,
    });
    forkMs.push(performance.now() - t0);
    const r = await child;
    const ms = performance.now() - t0;
    if (r.exitCode !== 0) throw new Error(`the bare CLI exited ${r.exitCode}: ${String(r.stderr).slice(-500)}`);
    started = true;
    return ms;
  };
}

async function run(ctx: BenchContext): Promise<Figure[]> {
  const phases: Record<string, number>[] = [];
  let measuring = false;
  const onLogLine = (line: string) => {
    if (!measuring || !line.includes('"turn committed"')) return;
    const p = (JSON.parse(line) as { phasesMs?: Record<string, number> }).phasesMs;
    if (p) phases.push(p);
  };
  // The CLI's own time (spawn → exit) in the worker, as the runner measured it.
  const cliMs: number[] = [];
  const observeAttempt = () => ({ cliExited: (outcome: { durationMs: number }) => void (measuring && cliMs.push(outcome.durationMs)) });
  return withRealCliRig(ctx, { name: 'tax', concurrency: 1, onLogLine, observeAttempt }, async (rig) => {
    const forkMs: number[] = [];
    const bare = bareCli(rig.config, path.join(rig.root, 'bare'), forkMs);
    const turn = async (prompt: string): Promise<number> => {
      const t0 = Date.now();
      const { turnId } = await rig.client.enqueueTurn({ conversationId: 'bench-tax', prompt, options: { warm: false } });
      const t1 = await rig.completedAt(turnId);
      const status = (await rig.client.getTurn(turnId))?.status;
      if (status !== 'succeeded') throw new Error(`turn ${turnId} ended ${status}`);
      return t1 - t0;
    };
    // Unmeasured: each side's session starts.
    await turn('first turn');
    await bare('first turn');
    measuring = true;
    const agentq: number[] = [];
    const bareMs: number[] = [];
    const diffs: number[] = [];
    for (let i = 0; i < MEASURED_TURNS; i++) {
      // Alternate which goes first, so a drifting load hits both.
      let through: number;
      let b: number;
      if (i % 2 === 0) {
        through = await turn(`turn ${i + 1}`);
        b = await bare(`turn ${i + 1}`);
      } else {
        b = await bare(`turn ${i + 1}`);
        through = await turn(`turn ${i + 1}`);
      }
      agentq.push(through);
      bareMs.push(b);
      diffs.push(through - b);
    }
    measuring = false;
    ctx.log(
      `the worker spawns runs ${rig.config.cli.spawn === 'direct' ? 'itself (AGENTQ_CLI_SPAWN=direct)' : 'through its spawn helper'}; ` +
        `each bare spawn held this process (RSS ${round(process.memoryUsage().rss / 2 ** 20, 0)} MB) for a median ${round(median(forkMs), 1)} ms (the fork, part of the bare run's time)`,
    );
    ctx.log(`agentq turn (enqueue → completed) ${agentq.map((v) => round(v, 0)).join(' ')}`);
    ctx.log(`bare CLI resume (spawn → exit)    ${bareMs.map((v) => round(v, 0)).join(' ')}`);
    ctx.log(`the CLI in the worker (spawn → exit) ${cliMs.map((v) => round(v, 0)).join(' ')}`);
    ctx.log(`medians: agentq ${round(median(agentq), 1)}, its CLI ${round(median(cliMs), 1)}, bare ${round(median(bareMs), 1)} ms`);
    const names = [...new Set(phases.flatMap((p) => Object.keys(p)))];
    ctx.log(`worker phases, median ms: ${names.map((n) => `${n} ${round(median(phases.map((p) => p[n] ?? 0)), 1)}`).join(', ')}`);
    return [
      {
        bench: 'real_cli_turn_tax_ms',
        value: round(median(diffs), 1),
        unit: 'ms',
        baseline: round(median(bareMs), 1),
        target: `≤ 25 ms (a turn through agentq minus the bare CLI resuming from its disk; baseline: the bare run): ${median(diffs) <= 25 ? 'met' : 'missed'}`,
      },
    ];
  });
}

export const realCliTaxBench: Benchmark = {
  name: 'turn-real-cli',
  description: 'the durability tax: a real-CLI turn through agentq vs the same CLI resuming from its own disk (mock model)',
  realCli: true,
  run,
};
