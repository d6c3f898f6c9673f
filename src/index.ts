// The public API of agentq: what users build on (client, worker, HTTP API, config,
// schedules, the Agent SDK store, errors, types). Lower-level parts have subpaths of their
// own: `agentq/runner` (one CLI run) and `agentq/store` (sessions and workspaces in
// Postgres, without the lease checks of the turn protocol). test/publicApi.test.ts lists
// every export, so a change here is a decision.
export { loadConfig, configVariables, type Config } from './config.js';
export { createLogger, type Logger } from './logger.js';
export {
  ConfigError,
  RunOptionsError,
  TurnInputError,
  StaleLeaseError,
  SchemaNotMigratedError,
  SchemaTooNewError,
  MigrationHistoryError,
  SandboxUnavailableError,
  CgroupsUnavailableError,
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
export { ScheduleExistsError, ScheduleInputError } from './schedules/errors.js';
export { migrate, schemaStatus, type MigrateOptions, type SchemaStatus } from './store/migrate.js';
export {
  createClient,
  TERMINAL_STATUSES,
  type AgentqClient,
  type CancelOutcome,
  type ConversationView,
  type EnqueuedTurnInfo,
  type TurnSummary,
} from './queue/client.js';
export type { PermissionDenials } from './queue/denials.js';
export { turnOptionsSchema, type EnqueueTurnInput, type TurnOptions } from './queue/turnInput.js';
export { turnErrorClasses, type TurnError, type TurnErrorClass } from './store/turns.js';
export { reconcile } from './queue/reconciler.js';
export { collectStats, type AgentqStats, type StatsSources } from './queue/stats.js';
export { createWorker, type TurnWorker, type WorkerOptions } from './worker/worker.js';
export type { AttemptInfo, AttemptObserver, ObserveAttempt, RequeueReason, WarmObserver } from './worker/observer.js';
export type { RunOutcome, RunOutcomeType } from './runner/outcome.js';
export { createWorkerMetrics, type WorkerMetrics } from './metrics/workerMetrics.js';
export { registerQueueDepth } from './metrics/queueDepth.js';
export { tracingObserver, combineObservers } from './metrics/tracing.js';
export { startWorkerTelemetry, type WorkerTelemetry } from './metrics/workerEndpoint.js';
export { buildApi, type Api, type ApiApp, type ApiDeps } from './api/server.js';
export {
  createSchedule,
  getSchedule,
  getSchedules,
  updateSchedule,
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
