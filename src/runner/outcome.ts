// The closed set of results of one CLI run. Every way a run can end maps to exactly one
// of these; callers switch over `type` exhaustively (see assertNever).
import type { DeferredToolUse, PermissionDenial, ResultEvent, Usage } from './events.js';

/** What every outcome carries, whatever happened. */
export interface RunFacts {
  /** The session id the CLI reported (system/init or result); undefined if it never said. */
  sessionId: string | undefined;
  costUsd: number;
  usage: Usage | undefined;
  numTurns: number;
  durationMs: number;
  exitCode: number | undefined;
  signal: string | undefined;
  stderrTail: string;
  /** The `result` text of the last result event, if any. */
  resultText: string | undefined;
  /** Tool calls the model made in this run (each tool_use block once). */
  toolCalls: number;
  /** The tool calls the CLI refused (permission mode or rules), from the result event. */
  permissionDenials: PermissionDenial[];
  /** The tool call the run stopped before, deferred by the approval gate; undefined when it did not stop for one. */
  deferredToolUse: DeferredToolUse | undefined;
}

/** The facts of a run that reported nothing (yet). */
export function emptyFacts(durationMs = 0): RunFacts {
  return {
    sessionId: undefined,
    costUsd: 0,
    usage: undefined,
    numTurns: 0,
    durationMs,
    exitCode: undefined,
    signal: undefined,
    stderrTail: '',
    resultText: undefined,
    toolCalls: 0,
    permissionDenials: [],
    deferredToolUse: undefined,
  };
}

export type RunOutcome = RunFacts &
  (
    | { type: 'success' }
    | { type: 'max_turns' }
    | { type: 'budget_exceeded' }
    /** The Messages API failed after the CLI's own retries. `httpStatus` null = no connection. */
    | { type: 'api_error'; httpStatus: number | null; retryable: boolean; message: string }
    /** The Messages API (or the CLI, before asking it) refused the worker's credentials: a configuration error, never retried. */
    | { type: 'auth'; httpStatus: number | null; message: string }
    | { type: 'session_not_found'; requestedSessionId: string }
    | { type: 'cli_not_found'; path: string; message: string }
    | { type: 'timed_out'; timeout: 'idle' | 'wall'; limitMs: number }
    | { type: 'cancelled'; reason: string }
    | { type: 'crashed'; message: string }
    /** The kernel killed the CLI for going over its run's memory limit (AGENTQ_RUN_MEMORY_MAX_MB). */
    | { type: 'resource_limit'; limit: 'memory'; message: string }
    | { type: 'protocol_error'; message: string }
  );

export type RunOutcomeType = RunOutcome['type'];

export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${JSON.stringify(value)}`);
}

/** API statuses worth retrying: rate limits, overload, server errors, no connection. */
export function isRetryableApiStatus(status: number | null): boolean {
  return status === null || status === 408 || status === 409 || status === 429 || status >= 500;
}

const SESSION_NOT_FOUND = /No conversation found with session ID/i;
/** What the CLI says when it has no usable credentials (measured with 2.1.197: no key at all, HTTP 401, 403). */
const AUTH_FAILURE = /Not logged in|Please run \/login|Invalid API key|Failed to authenticate|OAuth token has expired|authentication_error|permission_error/i;

/** What the operator must do about refused credentials: the variables, by name. */
export function authAdvice(detail: string): string {
  return (
    `the model API did not accept the worker's credentials (${detail}). Set ANTHROPIC_API_KEY ` +
    '(or ANTHROPIC_AUTH_TOKEN / CLAUDE_CODE_OAUTH_TOKEN) in the worker\'s environment, or ANTHROPIC_BASE_URL for a gateway; ' +
    'to run offline against the built-in mock model, start the worker with AGENTQ_MODEL=mock'
  );
}

/** Why the runner itself ended the run, if it did. */
export type Termination =
  | { kind: 'cancelled'; reason: string }
  | { kind: 'timed_out'; timeout: 'idle' | 'wall'; limitMs: number }
  | { kind: 'protocol_error'; message: string };

export interface ClassifyInput {
  facts: RunFacts;
  requestedSessionId: string;
  claudePath: string;
  spawnError: (Error & { code?: string }) | undefined;
  termination: Termination | undefined;
  result: ResultEvent | undefined;
  /** The run's memory limit in bytes, when the OOM killer acted in its cgroup; else undefined. */
  oomKilledAtBytes?: number | undefined;
}

/** Maps everything observed about a finished run to exactly one outcome. */
export function classifyRun(input: ClassifyInput): RunOutcome {
  const { facts, result, termination, spawnError } = input;
  if (spawnError) {
    const code = spawnError.code ?? '';
    if (code === 'ENOENT' || code === 'EACCES' || code === 'ENOTDIR' || code === 'EISDIR') {
      return {
        ...facts,
        type: 'cli_not_found',
        path: input.claudePath,
        message: `cannot execute the Claude Code CLI at ${input.claudePath} (${code}); set AGENTQ_CLAUDE_PATH or reinstall @anthropic-ai/claude-code`,
      };
    }
    const why = code === 'E2BIG' ? ' (an argument is over the 128 KiB Linux allows one: a system prompt or an option too long)' : '';
    return { ...facts, type: 'crashed', message: `spawn failed: ${spawnError.message}${why}` };
  }
  if (termination) {
    switch (termination.kind) {
      case 'cancelled':
        return { ...facts, type: 'cancelled', reason: termination.reason };
      case 'timed_out':
        return { ...facts, type: 'timed_out', timeout: termination.timeout, limitMs: termination.limitMs };
      case 'protocol_error':
        return { ...facts, type: 'protocol_error', message: termination.message };
      default:
        return assertNever(termination);
    }
  }
  const notFound =
    (result?.errors ?? []).some((e) => SESSION_NOT_FOUND.test(e)) || SESSION_NOT_FOUND.test(facts.stderrTail);
  if (notFound) {
    // The CLI reports a random id for a session it could not find: never keep it.
    return { ...facts, sessionId: undefined, type: 'session_not_found', requestedSessionId: input.requestedSessionId };
  }
  if (result) {
    if (result.subtype === 'error_max_turns') return { ...facts, type: 'max_turns' };
    if (result.subtype === 'error_max_budget_usd') return { ...facts, type: 'budget_exceeded' };
    if (!result.is_error && result.subtype === 'success') return { ...facts, type: 'success' };
    const text = result.result ?? result.errors?.join('; ') ?? '';
    const status = result.api_error_status ?? null;
    if (status === 401 || status === 403 || AUTH_FAILURE.test(text)) {
      return { ...facts, type: 'auth', httpStatus: status, message: authAdvice(status === null ? text : `HTTP ${status}: ${text}`) };
    }
    if (result.api_error_status !== undefined && (result.api_error_status !== null || /^API Error/.test(text))) {
      const status = result.api_error_status;
      return { ...facts, type: 'api_error', httpStatus: status, retryable: isRetryableApiStatus(status), message: text };
    }
    return { ...facts, type: 'crashed', message: `the CLI reported an error: ${text || `(${result.subtype}, no text)`}` };
  }
  if (input.oomKilledAtBytes !== undefined && facts.exitCode !== 0) {
    const mib = Math.round(input.oomKilledAtBytes / (1024 * 1024));
    return { ...facts, type: 'resource_limit', limit: 'memory', message: `the run went over its memory limit of ${mib} MiB (AGENTQ_RUN_MEMORY_MAX_MB) and the CLI was killed` };
  }
  if (facts.exitCode === 0) {
    return { ...facts, type: 'protocol_error', message: 'the CLI exited 0 without a result event' };
  }
  const how = facts.signal ? `signal ${facts.signal}` : `exit code ${facts.exitCode}`;
  const tail = facts.stderrTail.trim();
  return { ...facts, type: 'crashed', message: `the CLI ended with ${how} before a result${tail ? `: ${tail.slice(-500)}` : ''}` };
}
