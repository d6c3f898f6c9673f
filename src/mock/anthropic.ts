// The slice of the Anthropic Messages API wire format that the mock reads and writes.
// Types are deliberately loose ("what the CLI may send"), because the mock parses
// untrusted JSON from a CLI whose request shape changes between versions; only the
// fields the mock actually uses are named.

/** One content block of a message, as sent by the CLI or produced by the mock. */
export interface ContentBlock {
  type: string;
  text?: string;
  id?: string;
  name?: string;
  input?: unknown;
  tool_use_id?: string;
  content?: string | ContentBlock[];
  is_error?: boolean;
  [key: string]: unknown;
}

/** A message in `messages`. The CLI also puts `role: "system"` entries in the middle. */
export interface ApiMessage {
  role: string;
  content: string | ContentBlock[];
}

/** Body of `POST /v1/messages` (and of `/v1/messages/count_tokens`). */
export interface MessagesRequest {
  model: string;
  messages: ApiMessage[];
  system?: string | ContentBlock[];
  tools?: Array<{ name: string; [key: string]: unknown }>;
  max_tokens?: number;
  stream?: boolean;
  [key: string]: unknown;
}

export interface Usage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
}

export type StopReason = 'end_turn' | 'tool_use' | 'max_tokens' | 'stop_sequence';

/** A complete assistant message: the non-streaming response body. */
export interface AssistantMessage {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ContentBlock[];
  stop_reason: StopReason;
  stop_sequence: null;
  usage: Usage;
}

/** Anthropic's error body: `{type:"error", error:{type, message}}`. */
export interface ErrorBody {
  type: 'error';
  error: { type: string; message: string };
  request_id?: string;
}

/** Error `type` the real API uses for each HTTP status (used when a script gives none). */
export function errorTypeForStatus(status: number): string {
  switch (status) {
    case 400:
      return 'invalid_request_error';
    case 401:
      return 'authentication_error';
    case 403:
      return 'permission_error';
    case 404:
      return 'not_found_error';
    case 413:
      return 'request_too_large';
    case 429:
      return 'rate_limit_error';
    case 529:
      return 'overloaded_error';
    default:
      return 'api_error';
  }
}

/** Messages close to the real API's for common statuses. */
function defaultErrorMessage(status: number): string {
  switch (status) {
    case 400:
      return 'Invalid request';
    case 401:
      return 'invalid x-api-key';
    case 404:
      return 'Not found';
    case 429:
      return 'Rate limited';
    case 500:
      return 'Internal server error';
    case 529:
      return 'Overloaded';
    default:
      return `mock error ${status}`;
  }
}

export function errorBody(status: number, type?: string, message?: string, requestId?: string): ErrorBody {
  const body: ErrorBody = {
    type: 'error',
    error: { type: type ?? errorTypeForStatus(status), message: message ?? defaultErrorMessage(status) },
  };
  if (requestId !== undefined) body.request_id = requestId;
  return body;
}

/**
 * Rough token count (~4 characters per token, the usual rule of thumb). Good enough for
 * "realistic" usage numbers: the CLI only sums them into cost and context figures.
 */
export function estimateTokens(text: string): number {
  return Math.max(1, Math.ceil(text.length / 4));
}

/** Input tokens of a request: everything the model would read (system, tools, messages). */
export function estimateInputTokens(req: MessagesRequest): number {
  return estimateTokens(JSON.stringify([req.system ?? '', req.tools ?? [], req.messages]));
}

/** Output tokens of the content the mock produces. */
export function estimateOutputTokens(content: ContentBlock[]): number {
  let chars = 0;
  for (const block of content) {
    if (block.type === 'text') chars += (block.text ?? '').length;
    else if (block.type === 'tool_use') chars += (block.name ?? '').length + JSON.stringify(block.input ?? {}).length;
  }
  return Math.max(1, Math.ceil(chars / 4));
}

/** Narrow an unknown JSON value to a messages request (enough for the mock to answer it). */
export function isMessagesRequest(value: unknown): value is MessagesRequest {
  if (typeof value !== 'object' || value === null) return false;
  const v = value as Record<string, unknown>;
  return typeof v.model === 'string' && Array.isArray(v.messages);
}
