// A bare run of the fake CLI, the baseline of the turn benchmarks: the worker's argv and
// allow-listed env, its own workspace and config dir, spawned with execa and nothing
// around it.
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { Config } from '../config.js';
import { buildArgv } from '../runner/argv.js';
import { buildRunEnv } from '../runner/env.js';
import { parseRunOptions, type RunOptions } from '../runner/options.js';

/** One lane of bare runs: its own workspace and config dir, the worker's argv and env. */
export class BareLane {
  private readonly cwd: string;
  private readonly configDir: string;
  private readonly tmpDir: string;
  private readonly sessionId = randomUUID();
  private started = false;

  constructor(
    dir: string,
    private readonly config: Config,
    private readonly extraEnv: Record<string, string> = {},
  ) {
    this.cwd = path.join(dir, 'ws');
    this.configDir = path.join(dir, 'config');
    this.tmpDir = path.join(dir, 'tmp');
    mkdirSync(this.cwd, { recursive: true });
  }

  /** One run: a new session first, then resumes of it (as a conversation's turns do). Returns its wall time. */
  async run(prompt: string): Promise<{ ms: number; prompt: string }> {
    const options: RunOptions = {
      prompt,
      cwd: this.cwd,
      configDir: this.configDir,
      tmpDir: this.tmpDir,
      session: this.started ? { mode: 'resume', sessionId: this.sessionId } : { mode: 'new', sessionId: this.sessionId },
    };
    const o = parseRunOptions(options);
    mkdirSync(this.tmpDir, { recursive: true });
    const argv = buildArgv(o);
    const env = { ...buildRunEnv(this.config.cli.env, o), ...this.extraEnv };
    const t = performance.now();
    const r = await execa(this.config.claudePath, argv, { cwd: this.cwd, env, extendEnv: false, stdin: 'ignore', reject: false });
    const ms = performance.now() - t;
    if (r.exitCode !== 0) throw new Error(`bare fake CLI exited ${r.exitCode}: ${String(r.stderr).slice(-500)}`);
    this.started = true;
    return { ms, prompt };
  }
}


/**
 * Runs each prompt on a lane no other run is using, for callers that never have more runs
 * in flight than lanes (a worker whose concurrency is the number of lanes).
 */
export function freeLaneRunner(lanes: readonly BareLane[]): (prompt: string) => Promise<{ ms: number; prompt: string }> {
  const free = [...lanes];
  return async (prompt) => {
    const lane = free.pop();
    if (!lane) throw new Error(`more runs in flight than the ${lanes.length} lanes`);
    try {
      return await lane.run(prompt);
    } finally {
      free.push(lane);
    }
  };
}
