// The public API, as a user's `import` sees it: the package's own exports map resolves
// `agentq`, `agentq/runner` and `agentq/store` to the built dist/. The lists are the
// contract; a change to one is a decision made here, not a side effect.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

function exportsOf(specifier: string): string[] {
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', `process.stdout.write(JSON.stringify(Object.keys(await import(${JSON.stringify(specifier)})).sort()))`], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out) as string[];
}

describe('the public API', () => {
  it('`agentq`: what users build on (client, worker, API, config, schedules, SDK store, errors)', () => {
    expect(exportsOf('agentq')).toEqual([
      'AgentFileRefusedError',
      'CgroupsUnavailableError',
      'ConfigError',
      'MigrationHistoryError',
      'RunOptionsError',
      'SandboxUnavailableError',
      'ScheduleExistsError',
      'ScheduleInputError',
      'SchemaNotMigratedError',
      'SchemaTooNewError',
      'SdkAttachConflictError',
      'SdkSessionBusyError',
      'SdkSessionNotFoundError',
      'SessionAttemptConflictError',
      'SessionConflictError',
      'SessionCorruptError',
      'SessionDivergedError',
      'SessionLineTooLongError',
      'SessionNotFoundError',
      'StaleLeaseError',
      'StoreInputError',
      'TERMINAL_STATUSES',
      'TurnInputError',
      'WorkspaceTooLargeError',
      'attachSdkSession',
      'buildApi',
      'collectStats',
      'combineObservers',
      'configVariables',
      'createClient',
      'createLogger',
      'createSchedule',
      'createSessionStore',
      'createWorker',
      'createWorkerMetrics',
      'getSchedule',
      'getSchedules',
      'loadConfig',
      'migrate',
      'reconcile',
      'registerQueueDepth',
      'removeSchedule',
      'schemaStatus',
      'sdkProjectKey',
      'sdkResumeTarget',
      'startWorkerTelemetry',
      'tracingObserver',
      'turnErrorClasses',
      'turnOptionsSchema',
      'updateSchedule',
    ]);
  });

  it('`agentq/runner`: one CLI run, without queue or database', () => {
    expect(exportsOf('agentq/runner')).toEqual([
      'PINNED_CLI_VERSION',
      'PREVIOUS_CLI_VERSION',
      'TESTED_CLI_VERSIONS',
      'assertNever',
      'buildArgv',
      'bundledClaudePath',
      'cliEnvironment',
      'describeCliVersion',
      'emptyFacts',
      'encodeCwd',
      'installedCliPath',
      'isRetryableApiStatus',
      'isTestedCliVersion',
      'parseCliVersion',
      'parseRunOptions',
      'permissionDenialsOf',
      'permissionModes',
      'probeCliVersion',
      'projectDir',
      'runClaude',
      'runnerSettings',
      'sessionFilePath',
      'startClaude',
      'userMessageLine',
    ]);
  });

  it('`agentq/store`: sessions and workspaces in Postgres, without the lease checks', () => {
    const store = exportsOf('agentq/store');
    expect(store).toEqual(expect.arrayContaining(['hydrateSession', 'persistSession', 'commitSessionLines', 'packWorkspace', 'schema']));
    // The parts that skip the lease check are not in the root.
    const root = exportsOf('agentq');
    for (const lowLevel of ['persistSession', 'commitSessionLines', 'hydrateSession', 'buildArgv', 'runClaude']) expect(root).not.toContain(lowLevel);
  });
});
