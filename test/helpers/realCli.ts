// Running the real, pinned Claude Code CLI offline against the project's mock model.
import path from 'node:path';
import { expect } from 'vitest';
import { bundledClaudePath, loadConfig, type Config } from '../../src/config.js';
import type { AgentqClient } from '../../src/queue/client.js';
import type { RunnerSettings } from '../../src/runner/runClaude.js';
import { createWorker } from '../../src/worker/worker.js';

/** The CLI's environment for offline runs: the mock as the API, no retries, root allowed. */
export function offlineCliEnv(mockUrl: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    LANG: 'C.UTF-8',
    ANTHROPIC_BASE_URL: mockUrl,
    ANTHROPIC_API_KEY: 'sk-test',
    CLAUDE_CODE_MAX_RETRIES: '0',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
    // As root, bypassPermissions needs this (shared/claude-cli/README.md).
    IS_SANDBOX: '1',
  };
}

/** Runner settings for the real CLI against the mock model. */
export function realCliSettings(mockUrl: string, env: Record<string, string> = {}): RunnerSettings {
  return {
    claudePath: bundledClaudePath(),
    env: { ...offlineCliEnv(mockUrl), ...env },
    maxLineBytes: 16 * 1024 * 1024,
    killGraceMs: 2000,
    idleTimeoutMs: 60_000,
    timeoutMs: 60_000,
    stderrTailBytes: 16 * 1024,
  };
}

/**
 * A worker configuration for the real CLI against the mock, as if on its own machine:
 * the test's database and queue (`baseEnv`), but workspace and runs roots of its own
 * under `root/name`, so two "machines" share nothing on disk.
 */
export function realCliMachine(baseEnv: Record<string, string>, root: string, name: string, mockUrl: string, extra: Record<string, string> = {}): Config {
  const env: Record<string, string> = {
    ...baseEnv,
    AGENTQ_WORKSPACE_ROOT: path.join(root, name, 'workspaces'),
    AGENTQ_RUNS_ROOT: path.join(root, name, 'runs'),
    ...offlineCliEnv(mockUrl),
    AGENTQ_CLI_ENV_ALLOW: '',
    AGENTQ_LOG_LEVEL: 'warn',
    ...extra,
  };
  // The real CLI: the config default when AGENTQ_CLAUDE_PATH is unset.
  delete env.AGENTQ_CLAUDE_PATH;
  delete env.FAKE_CLAUDE_LOG;
  return loadConfig(env);
}

/**
 * Enqueues one bypassPermissions turn and runs it on a worker of `config` that lives only
 * for it; the turn must succeed. Returns its id.
 */
export async function succeedOnOwnWorker(client: AgentqClient, config: Config, turn: { conversationId: string; prompt: string; maxTurns: number }): Promise<string> {
  const { turnId } = await client.enqueueTurn({ conversationId: turn.conversationId, prompt: turn.prompt, options: { permissionMode: 'bypassPermissions', maxTurns: turn.maxTurns } });
  const worker = createWorker(config, { concurrency: 1 });
  await worker.start();
  try {
    const done = await client.waitForTurn(turnId, 60_000);
    expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
    return turnId;
  } finally {
    await worker.stop();
  }
}
