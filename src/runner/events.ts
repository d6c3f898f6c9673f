// Typed stdout events of `--output-format stream-json`. Schemas are loose: unknown
// fields are kept, and an unknown or malformed line becomes an `other`/`invalid` event
// that is passed on, never a crash (new CLI versions add types and fields).
import { z } from 'zod';

const usageSchema = z.looseObject({
  input_tokens: z.number().optional(),
  output_tokens: z.number().optional(),
  cache_read_input_tokens: z.number().optional(),
  cache_creation_input_tokens: z.number().optional(),
});
export type Usage = z.infer<typeof usageSchema>;

export const initEventSchema = z.looseObject({
  type: z.literal('system'),
  subtype: z.literal('init'),
  session_id: z.string(),
  cwd: z.string().optional(),
  tools: z.array(z.string()).optional(),
  model: z.string().optional(),
  permissionMode: z.string().optional(),
  claude_code_version: z.string().optional(),
});

export const apiRetryEventSchema = z.looseObject({
  type: z.literal('system'),
  subtype: z.literal('api_retry'),
  attempt: z.number().optional(),
  max_retries: z.number().optional(),
  retry_delay_ms: z.number().optional(),
  error_status: z.number().nullable().optional(),
});

const messageSchema = z.looseObject({
  id: z.string().optional(),
  role: z.string().optional(),
  content: z.union([z.string(), z.array(z.looseObject({ type: z.string() }))]).optional(),
});

export const assistantEventSchema = z.looseObject({
  type: z.literal('assistant'),
  message: messageSchema,
  session_id: z.string().optional(),
  parent_tool_use_id: z.string().nullable().optional(),
});

export const userEventSchema = z.looseObject({
  type: z.literal('user'),
  message: messageSchema,
  session_id: z.string().optional(),
  parent_tool_use_id: z.string().nullable().optional(),
});

export const streamEventSchema = z.looseObject({
  type: z.literal('stream_event'),
  event: z.looseObject({ type: z.string() }),
  session_id: z.string().optional(),
});

export const resultEventSchema = z.looseObject({
  type: z.literal('result'),
  subtype: z.string(),
  is_error: z.boolean(),
  api_error_status: z.number().nullable().optional(),
  result: z.string().optional(),
  session_id: z.string().optional(),
  num_turns: z.number().optional(),
  duration_ms: z.number().optional(),
  total_cost_usd: z.number().optional(),
  usage: usageSchema.optional(),
  errors: z.array(z.string()).optional(),
  terminal_reason: z.string().optional(),
  /** Tool calls the CLI refused (its permission mode or rules): `[{tool_name, tool_use_id, tool_input}]`. Read with permissionDenialsOf. */
  permission_denials: z.unknown().optional(),
  /** With `terminal_reason: "tool_deferred"`: the call a PreToolUse hook deferred, `{id, name, input}`. Read with deferredToolUseOf. */
  deferred_tool_use: z.unknown().optional(),
});

export type InitEvent = z.infer<typeof initEventSchema>;
export type ApiRetryEvent = z.infer<typeof apiRetryEventSchema>;
export type AssistantEvent = z.infer<typeof assistantEventSchema>;
export type UserEvent = z.infer<typeof userEventSchema>;
export type StreamEvent = z.infer<typeof streamEventSchema>;
export type ResultEvent = z.infer<typeof resultEventSchema>;

/** One stdout line of the CLI. `line` is the exact text (without the newline). */
export type ClaudeEvent =
  | { kind: 'init'; data: InitEvent; line: string }
  | { kind: 'api_retry'; data: ApiRetryEvent; line: string }
  | { kind: 'assistant'; data: AssistantEvent; line: string }
  | { kind: 'user'; data: UserEvent; line: string }
  | { kind: 'stream_event'; data: StreamEvent; line: string }
  | { kind: 'result'; data: ResultEvent; line: string }
  /** Valid JSON of a type (or shape) this version does not know; passed on raw. */
  | { kind: 'other'; data: Record<string, unknown>; line: string }
  /** Not JSON at all (the CLI printed something unexpected); passed on, never fatal. */
  | { kind: 'invalid'; line: string };

export type ClaudeEventKind = ClaudeEvent['kind'];

function asKnown(obj: Record<string, unknown>, line: string): ClaudeEvent | undefined {
  const attempt = <K extends ClaudeEvent['kind'], S extends z.ZodType>(kind: K, schema: S) => {
    const r = schema.safeParse(obj);
    return r.success ? ({ kind, data: r.data, line } as ClaudeEvent) : undefined;
  };
  switch (obj.type) {
    case 'system':
      if (obj.subtype === 'init') return attempt('init', initEventSchema);
      if (obj.subtype === 'api_retry') return attempt('api_retry', apiRetryEventSchema);
      return undefined;
    case 'assistant':
      return attempt('assistant', assistantEventSchema);
    case 'user':
      return attempt('user', userEventSchema);
    case 'stream_event':
      return attempt('stream_event', streamEventSchema);
    case 'result':
      return attempt('result', resultEventSchema);
    default:
      return undefined;
  }
}

/** Parses one stdout line (without its newline) into an event; never throws. */
export function parseEventLine(line: string): ClaudeEvent {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return { kind: 'invalid', line };
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return { kind: 'invalid', line };
  const obj = value as Record<string, unknown>;
  return asKnown(obj, line) ?? { kind: 'other', data: obj, line };
}

/** A tool call the CLI refused to run. */
export interface PermissionDenial {
  tool: string;
  toolUseId: string | null;
}

/** The refused tool calls a result event reports (2.1.197: `permission_denials`); malformed entries are skipped. */
export function permissionDenialsOf(result: ResultEvent | undefined): PermissionDenial[] {
  const list = result?.permission_denials;
  if (!Array.isArray(list)) return [];
  const out: PermissionDenial[] = [];
  for (const d of list as unknown[]) {
    if (typeof d !== 'object' || d === null) continue;
    const { tool_name: tool, tool_use_id: id } = d as { tool_name?: unknown; tool_use_id?: unknown };
    if (typeof tool === 'string') out.push({ tool, toolUseId: typeof id === 'string' ? id : null });
  }
  return out;
}

/** A tool call a hook deferred: the CLI stopped before running it (docs/approvals.md). */
export interface DeferredToolUse {
  id: string;
  name: string;
  input: Record<string, unknown>;
}

/** The deferred call a result reports, when the run stopped for one (`terminal_reason: "tool_deferred"`). */
export function deferredToolUseOf(result: ResultEvent | undefined): DeferredToolUse | undefined {
  if (result?.terminal_reason !== 'tool_deferred') return undefined;
  const d = result.deferred_tool_use;
  if (typeof d !== 'object' || d === null) return undefined;
  const { id, name, input } = d as { id?: unknown; name?: unknown; input?: unknown };
  if (typeof id !== 'string' || id === '' || typeof name !== 'string') return undefined;
  const inputObject = typeof input === 'object' && input !== null && !Array.isArray(input) ? (input as Record<string, unknown>) : {};
  return { id, name, input: inputObject };
}

/** Adds the ids of the tool calls in an assistant event to `seen` (the CLI may print one message more than once). */
export function collectToolUses(event: ClaudeEvent, seen: Set<string>): void {
  if (event.kind !== 'assistant') return;
  const content = event.data.message.content;
  if (!Array.isArray(content)) return;
  for (const block of content) {
    if (block.type !== 'tool_use') continue;
    const id = (block as { id?: unknown }).id;
    seen.add(typeof id === 'string' ? id : `#${seen.size}`);
  }
}
