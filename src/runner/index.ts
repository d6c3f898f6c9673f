// `agentq/runner`: one CLI run without queue or database (the runner's public surface).
// The root export (`agentq`) is for what users build on; this is for running and reading
// the CLI directly, and for tools around it.
export { runClaude, startClaude, runnerSettings, userMessageLine, type ClaudeRun, type RunHooks, type RunnerSettings } from './runClaude.js';
export { parseRunOptions, permissionModes, type RunOptions, type ValidRunOptions } from './options.js';
export { buildArgv } from './argv.js';
export { permissionDenialsOf, type ClaudeEvent, type ClaudeEventKind, type InitEvent, type PermissionDenial, type ResultEvent, type Usage } from './events.js';
export { assertNever, emptyFacts, isRetryableApiStatus, type RunFacts, type RunOutcome, type RunOutcomeType } from './outcome.js';
export { encodeCwd, projectDir, sessionFilePath } from '../claude/sessionPath.js';
export { cliEnvironment, bundledClaudePath } from '../config.js';
export { describeCliVersion, installedCliPath, isTestedCliVersion, parseCliVersion, PINNED_CLI_VERSION, PREVIOUS_CLI_VERSION, probeCliVersion, TESTED_CLI_VERSIONS, type CliVersionProbe } from './cliVersion.js';
