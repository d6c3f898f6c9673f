// The public API of agentq, named export by export. Anything not listed here is internal.
export { loadConfig, configVariables, cliEnvironment, bundledClaudePath, type Config } from './config.js';
export { ConfigError, RunOptionsError } from './errors.js';
export { createLogger, type Logger } from './logger.js';
export { encodeCwd, projectDir, sessionFilePath } from './claude/sessionPath.js';
export {
  runClaude,
  startClaude,
  runnerSettings,
  userMessageLine,
  type ClaudeRun,
  type RunHooks,
  type RunnerSettings,
} from './runner/runClaude.js';
export { parseRunOptions, permissionModes, type RunOptions, type ValidRunOptions } from './runner/options.js';
export { buildArgv } from './runner/argv.js';
export type { ClaudeEvent, ClaudeEventKind, InitEvent, ResultEvent, Usage } from './runner/events.js';
export {
  assertNever,
  isRetryableApiStatus,
  type RunFacts,
  type RunOutcome,
  type RunOutcomeType,
} from './runner/outcome.js';
export {
  SchemaTooNewError,
  MigrationHistoryError,
  StoreInputError,
  SessionLineTooLongError,
  SessionDivergedError,
  SessionNotFoundError,
  SessionCorruptError,
  SessionAttemptConflictError,
  SessionConflictError,
  WorkspaceTooLargeError,
  AgentFileRefusedError,
  type AgentFileRefusal,
} from './errors.js';
export {
  createStoreDb,
  migrate,
  schemaStatus,
  defaultMigrationsFolder,
  parseConversationId,
  parseTenantId,
  parseSessionId,
  workspaceDirName,
  ensureConversation,
  findConversation,
  deleteConversation,
  hydrateSession,
  persistSession,
  commitSessionLines,
  discardUncommitted,
  getSessionHead,
  packWorkspace,
  unpackWorkspace,
  storeWorkspace,
  restoreWorkspace,
  pruneTurnEvents,
  type StoreDb,
  type Executor,
  type HydrateInput,
  type HydrateResult,
  type PersistInput,
  type PersistResult,
  type PackedWorkspace,
} from './store/index.js';
export { TurnInputError, StaleLeaseError } from './errors.js';
export {
  createClient,
  TERMINAL_STATUSES,
  type AgentqClient,
  type CancelOutcome,
  type ConversationView,
  type EnqueuedTurnInfo,
  type TurnSummary,
} from './queue/client.js';
export { turnOptionsSchema, type EnqueueTurnInput, type TurnOptions } from './queue/turnInput.js';
export { reconcile } from './queue/reconciler.js';
export { createWorker, type TurnWorker, type WorkerOptions } from './worker/worker.js';
export type { AttemptInfo, AttemptObserver, ObserveAttempt, RequeueReason, WarmObserver } from './worker/observer.js';
export { createWorkerMetrics, type WorkerMetrics } from './metrics/workerMetrics.js';
export { registerQueueDepth } from './metrics/queueDepth.js';
export { tracingObserver, combineObservers } from './metrics/tracing.js';
export { startWorkerTelemetry, type WorkerTelemetry } from './metrics/workerEndpoint.js';
export { decide, backoffMs, type TurnDecision, type TurnError } from './worker/retryPolicy.js';
export { buildApi, type Api, type ApiApp, type ApiDeps } from './api/server.js';
export { collectStats, type AgentqStats, type StatsSources } from './queue/stats.js';
export {
  createSchedule,
  getSchedule,
  getSchedules,
  removeSchedule,
  type ScheduleHandles,
  type ScheduleView,
} from './schedules/service.js';
export {
  createSessionStore,
  attachSdkSession,
  sdkResumeTarget,
  sdkProjectKey,
  SdkAttachConflictError,
  SdkSessionBusyError,
  SdkSessionNotFoundError,
  type AgentqSessionStore,
  type AgentqSessionStoreOptions,
  type AttachSdkSessionInput,
  type AttachSdkSessionResult,
  type SdkResumeTarget,
  type SdkResumeTargetInput,
  type SdkSessionEntry,
  type SdkSessionKey,
  type SdkSessionListing,
} from './sdk/index.js';
