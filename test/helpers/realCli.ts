// Running the real Claude Code CLI offline against the project's mock model. Which CLI:
// AGENTQ_TEST_CLI=<version>, one of the tested versions (src/runner/cliVersion.ts);
// default the pinned one. CI runs the real-CLI tests once with each (docs/cli-versions.md).
import path from 'node:path';
import { expect } from 'vitest';
import { loadConfig, type Config } from '../../src/config.js';
import { installedCliPath, PINNED_CLI_VERSION, TESTED_CLI_VERSIONS } from '../../src/runner/cliVersion.js';
import type { AgentqClient } from '../../src/queue/client.js';
import type { RunnerSettings } from '../../src/runner/runClaude.js';
import { createWorker } from '../../src/worker/worker.js';

function selectTestCli(asked: string | undefined): { version: string; path: string } {
  const version = asked === undefined || asked === '' ? PINNED_CLI_VERSION : asked;
  if (!TESTED_CLI_VERSIONS.includes(version)) throw new Error(`AGENTQ_TEST_CLI=${version}: must be one of ${TESTED_CLI_VERSIONS.join(', ')}`);
  return { version, path: installedCliPath(version) };
}

/** The real CLI these tests run (AGENTQ_TEST_CLI). */
export const testCli = selectTestCli(process.env.AGENTQ_TEST_CLI);

/** Whether the tests run the CLI `version` (for a test that can only hold for one version: say which, by name). */
export function testCliIs(version: string): boolean {
  return testCli.version === version;
}

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
    claudePath: testCli.path,
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
  return loadConfig(realCliMachineEnv(baseEnv, root, name, mockUrl, extra));
}

/** The environment of realCliMachine (for a worker started as its own process). */
export function realCliMachineEnv(baseEnv: Record<string, string>, root: string, name: string, mockUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {
    ...baseEnv,
    AGENTQ_WORKSPACE_ROOT: path.join(root, name, 'workspaces'),
    AGENTQ_RUNS_ROOT: path.join(root, name, 'runs'),
    ...offlineCliEnv(mockUrl),
    AGENTQ_CLI_ENV_ALLOW: '',
    AGENTQ_LOG_LEVEL: 'warn',
    AGENTQ_CLAUDE_PATH: testCli.path,
    ...extra,
  };
  delete env.FAKE_CLAUDE_LOG;
  return env;
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
