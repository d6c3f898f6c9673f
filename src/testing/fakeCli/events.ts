// Builders for the stdout events, copied in shape from the captured real-CLI output in
// shared/claude-cli/examples/, and the emitter that prints them per --output-format.
import { randomUUID } from 'node:crypto';
import type { OutputFormat } from './args.js';

export type Event = Record<string, unknown>;

export const FAKE_CLI_VERSION = 'fake-1';
export const DEFAULT_MODEL = 'claude-fake-model';

/** The tool list the real CLI 2.1.197 reported in system/init. */
const DEFAULT_TOOLS = [
  'Task', 'Bash', 'CronCreate', 'CronDelete', 'CronList', 'Edit', 'EnterWorktree', 'ExitWorktree',
  'NotebookEdit', 'Read', 'ReportFindings', 'ScheduleWakeup', 'SendMessage', 'Skill', 'TaskCreate',
  'TaskGet', 'TaskList', 'TaskOutput', 'TaskStop', 'TaskUpdate', 'WebFetch', 'WebSearch', 'Workflow', 'Write',
];

export interface InitInput {
  sessionId: string;
  cwd: string;
  model: string;
  permissionMode: string;
  disallowedTools: readonly string[];
  apiKeySource: string;
}

export function initEvent(i: InitInput): Event {
  return {
    type: 'system',
    subtype: 'init',
    cwd: i.cwd,
    session_id: i.sessionId,
    tools: DEFAULT_TOOLS.filter((t) => !i.disallowedTools.includes(t)),
    mcp_servers: [],
    model: i.model,
    permissionMode: i.permissionMode,
    slash_commands: [],
    apiKeySource: i.apiKeySource,
    claude_code_version: FAKE_CLI_VERSION,
    output_style: 'default',
    agents: [],
    skills: [],
    plugins: [],
    uuid: randomUUID(),
    fast_mode_state: 'off',
  };
}

export interface Tokens {
  input: number;
  output: number;
}

/** The API message as it appears inside assistant events and session entries. */
export function apiMessage(id: string, model: string, text: string, tokens: Tokens, stopReason: string | null): Event {
  return {
    id,
    type: 'message',
    role: 'assistant',
    model,
    content: [{ type: 'text', text }],
    stop_reason: stopReason,
    stop_sequence: null,
    usage: { input_tokens: tokens.input, output_tokens: tokens.output, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
  };
}

export function assistantEvent(sessionId: string, message: Event, extra: Event = {}): Event {
  return {
    type: 'assistant',
    message: { ...message, context_management: null },
    parent_tool_use_id: null,
    session_id: sessionId,
    uuid: randomUUID(),
    request_id: `req_${String(message.id)}`,
    ...extra,
  };
}

function streamEvent(sessionId: string, event: Event): Event {
  return { type: 'stream_event', event, session_id: sessionId, parent_tool_use_id: null, uuid: randomUUID() };
}

/** Splits text into a few deltas, as the API streams it. */
function chunks(text: string, size = 24): string[] {
  const out: string[] = [];
  for (let i = 0; i < text.length; i += size) out.push(text.slice(i, i + size));
  return out.length > 0 ? out : [''];
}

/**
 * The --include-partial-messages events around one text block, in the real order:
 * `before` precedes the assistant line, `after` follows it.
 */
export function partialEvents(sessionId: string, message: Event, text: string): { before: Event[]; after: Event[] } {
  const start = { ...message, content: [], stop_reason: null };
  const before: Event[] = [
    { type: 'system', subtype: 'status', status: 'requesting', uuid: randomUUID(), session_id: sessionId },
    streamEvent(sessionId, { type: 'message_start', message: start }),
    streamEvent(sessionId, { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }),
    ...chunks(text).map((t) =>
      streamEvent(sessionId, { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: t } }),
    ),
  ];
  const after: Event[] = [
    streamEvent(sessionId, { type: 'content_block_stop', index: 0 }),
    streamEvent(sessionId, {
      type: 'message_delta',
      delta: { stop_reason: 'end_turn', stop_sequence: null },
      usage: { output_tokens: 20 },
    }),
    streamEvent(sessionId, { type: 'message_stop' }),
  ];
  return { before, after };
}

const API_ERROR_NAMES: Record<number, string> = {
  400: 'invalid_request',
  401: 'authentication_failed',
  429: 'rate_limit',
  500: 'server_error',
  529: 'server_error',
};

export function apiErrorName(status: number): string {
  return API_ERROR_NAMES[status] ?? 'unknown';
}

export function apiRetryEvent(sessionId: string, attempt: number, maxRetries: number, status: number): Event {
  return {
    type: 'system',
    subtype: 'api_retry',
    attempt,
    max_retries: maxRetries,
    retry_delay_ms: 1,
    error_status: status,
    error: apiErrorName(status),
    session_id: sessionId,
    uuid: randomUUID(),
  };
}

const DEFAULT_API_ERROR_TEXT: Record<number, string> = {
  400: 'Bad request (fake)',
  401: 'Invalid API key (fake) · Please run /login',
  429: 'Rate limited (fake)',
  500: 'Internal server error (fake)',
  529: 'Overloaded (fake)',
};

export function apiErrorText(status: number, message: string | undefined): string {
  return `API Error: ${status} ${message ?? DEFAULT_API_ERROR_TEXT[status] ?? 'Error (fake)'}`;
}

/** The synthetic assistant message the CLI emits when it gives up on the API. */
export function syntheticErrorMessage(text: string): Event {
  return {
    id: randomUUID(),
    container: null,
    model: '<synthetic>',
    role: 'assistant',
    stop_details: null,
    stop_reason: 'stop_sequence',
    stop_sequence: '',
    type: 'message',
    usage: { input_tokens: 0, output_tokens: 0, cache_creation_input_tokens: 0, cache_read_input_tokens: 0 },
    content: [{ type: 'text', text }],
  };
}

export function resultUsage(tokens: Tokens): Event {
  return {
    input_tokens: tokens.input,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    output_tokens: tokens.output,
    server_tool_use: { web_search_requests: 0, web_fetch_requests: 0 },
    service_tier: 'standard',
    cache_creation: { ephemeral_1h_input_tokens: 0, ephemeral_5m_input_tokens: 0 },
    inference_geo: '',
    iterations: [],
    speed: 'standard',
  };
}

export function modelUsage(model: string, tokens: Tokens, costUsd: number): Event {
  return {
    [model]: {
      inputTokens: tokens.input,
      outputTokens: tokens.output,
      cacheReadInputTokens: 0,
      cacheCreationInputTokens: 0,
      webSearchRequests: 0,
      costUSD: costUsd,
      contextWindow: 200000,
      maxOutputTokens: 64000,
    },
  };
}

export interface ResultInput {
  subtype: 'success' | 'error_max_turns' | 'error_during_execution' | 'error_max_budget_usd';
  isError: boolean;
  sessionId: string;
  numTurns: number;
  durationMs: number;
  durationApiMs: number;
  costUsd: number;
  usage: Event;
  modelUsage: Event;
  /** Omitted for error_* subtypes, as the real CLI does. */
  result?: string;
  apiErrorStatus?: number | null;
  stopReason?: string | null;
  terminalReason?: string;
  errors?: string[];
  permissionDenials?: Event[];
}

export function resultEvent(r: ResultInput): Event {
  const event: Event = {
    type: 'result',
    subtype: r.subtype,
    is_error: r.isError,
    api_error_status: r.apiErrorStatus ?? null,
    duration_ms: r.durationMs,
    duration_api_ms: r.durationApiMs,
    num_turns: r.numTurns,
  };
  if (r.result !== undefined) event.result = r.result;
  Object.assign(event, {
    stop_reason: r.stopReason ?? null,
    session_id: r.sessionId,
    total_cost_usd: r.costUsd,
    usage: r.usage,
    modelUsage: r.modelUsage,
    permission_denials: r.permissionDenials ?? [],
  });
  if (r.terminalReason !== undefined) event.terminal_reason = r.terminalReason;
  event.fast_mode_state = 'off';
  event.uuid = randomUUID();
  if (r.errors) event.errors = r.errors;
  return event;
}

/** The result the CLI prints when --resume names no session file. */
export function missingSessionResult(sessionId: string): Event {
  const message = `No conversation found with session ID: ${sessionId}`;
  const event = resultEvent({
    subtype: 'error_during_execution',
    isError: true,
    sessionId,
    numTurns: 0,
    durationMs: 0,
    durationApiMs: 0,
    costUsd: 0,
    usage: resultUsage({ input: 0, output: 0 }),
    modelUsage: {},
    errors: [message],
  });
  // The captured line has neither of these.
  delete event.api_error_status;
  delete event.fast_mode_state;
  return event;
}

/**
 * Prints events according to --output-format: stream-json prints every event, json only
 * the final result object, text only the result text.
 */
export class Emitter {
  constructor(private readonly format: OutputFormat) {}

  get streaming(): boolean {
    return this.format === 'stream-json';
  }

  event(event: Event): void {
    if (this.streaming) this.raw(JSON.stringify(event));
  }

  /** A line printed verbatim (garbage or oversized lines); stream-json only. */
  raw(line: string): void {
    if (this.format === 'stream-json') process.stdout.write(`${line}\n`);
  }

  result(event: Event): void {
    if (this.format === 'text') {
      const errors = Array.isArray(event.errors) ? event.errors.join('\n') : '';
      const text = typeof event.result === 'string' ? event.result : errors;
      process.stdout.write(`${text}\n`);
    } else {
      process.stdout.write(`${JSON.stringify(event)}\n`);
    }
  }
}
