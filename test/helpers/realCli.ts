// Running the real, pinned Claude Code CLI offline against the project's mock model.
import { bundledClaudePath } from '../../src/config.js';
import type { RunnerSettings } from '../../src/runner/runClaude.js';

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
