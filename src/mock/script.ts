// What the mock answers: the reply kinds a test can script, and the DEFAULT reply used
// when no script entry applies. The default is derived from the conversation itself so
// that a prompt alone can drive a whole run (the offline demo relies on this):
//
//   1. The last non-system message carries `tool_result` blocks
//        -> text `Done: <first 200 chars of the first tool result>`
//   2. The user's text contains one or more directives `<<tool NAME JSON>>`, e.g.
//        <<tool Bash {"command":"echo hi > out.txt"}>>
//        -> one assistant turn with a tool_use block per directive (stop_reason tool_use)
//   3. The user's text contains `<<recall>>`
//        -> text `I remember: "<earlier prompt>" | "<earlier prompt>" ...`, every earlier
//           user prompt of the conversation (60 chars each): an answer that can only come
//           from the history the CLI sent, so a resumed session shows it knew its past
//   4. Otherwise
//        -> text `mock reply: <the user's text, trimmed to 200 chars>`
//
// "The user's text" is the text blocks of the last non-system message with the CLI's
// `<system-reminder>` blocks removed: the CLI injects role:"system" messages in the middle
// of `messages` and reminder blocks next to the prompt, neither of which is the prompt.
import type { ApiMessage, ContentBlock, MessagesRequest } from './anthropic.js';

export interface ToolUseSpec {
  name: string;
  input: unknown;
  /** Defaults to a generated `toolu_mock...` id. */
  id?: string;
}

interface ReplyBase {
  /** Wait this long before answering (before any response header is sent). */
  delayMs?: number;
}

/** An assistant turn with one text block, stop_reason end_turn. */
export interface TextReply extends ReplyBase {
  text: string;
}

/** An assistant turn with (optional text and) tool_use block(s), stop_reason tool_use. */
export interface ToolUseReply extends ReplyBase {
  toolUse: ToolUseSpec | ToolUseSpec[];
  text?: string;
}

/** An HTTP error with Anthropic's JSON error body. */
export interface ErrorReply extends ReplyBase {
  error: { status: number; type?: string; message?: string };
}

/**
 * Accept the request, send the response headers (and, when streaming, message_start),
 * then never finish, until the client goes away or the mock is closed.
 */
export interface StallReply extends ReplyBase {
  stall: true;
}

/** Only a delay: after it, answer with the default reply. */
export interface DelayReply extends ReplyBase {
  delayMs: number;
}

export type MockReply = TextReply | ToolUseReply | ErrorReply | StallReply | DelayReply;

/** A script: replies consumed in order, or a function of the request (undefined = default). */
export type MockScript =
  | MockReply[]
  | ((req: MessagesRequest, index: number) => MockReply | undefined | Promise<MockReply | undefined>);

/** Longest piece of user text or tool output echoed back by the default reply. */
export const ECHO_LIMIT = 200;

const SYSTEM_REMINDER = /<system-reminder>[\s\S]*?(?:<\/system-reminder>|$)/g;

/** Remove the CLI's `<system-reminder>...</system-reminder>` blocks from a text. */
export function stripSystemReminders(text: string): string {
  return text.replace(SYSTEM_REMINDER, '').trim();
}

/** The last message that is not role:"system" (the one the model is answering). */
export function lastNonSystemMessage(messages: ApiMessage[]): ApiMessage | undefined {
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i];
    if (m && m.role !== 'system') return m;
  }
  return undefined;
}

function blocksOf(message: ApiMessage): ContentBlock[] {
  return typeof message.content === 'string' ? [{ type: 'text', text: message.content }] : message.content;
}

/**
 * The human-written text of a message: its text blocks with system reminders removed,
 * empty ones dropped, joined by newlines (a prompt may span several text blocks).
 */
export function messageText(message: ApiMessage): string {
  return blocksOf(message)
    .filter((b) => b.type === 'text' && typeof b.text === 'string')
    .map((b) => stripSystemReminders(b.text ?? ''))
    .filter((t) => t !== '')
    .join('\n');
}

/** Plain text of a tool_result block (its content is a string or an array of blocks). */
export function toolResultText(block: ContentBlock): string {
  const c = block.content;
  if (typeof c === 'string') return c;
  if (Array.isArray(c)) return c.map((b) => (b.type === 'text' ? (b.text ?? '') : `[${b.type}]`)).join('\n');
  return '';
}

/** The tool_result blocks of a message (empty for string content). */
export function toolResults(message: ApiMessage): ContentBlock[] {
  return blocksOf(message).filter((b) => b.type === 'tool_result');
}

/** The user's prompt for this request: text of the last user message, reminders stripped. */
export function userPrompt(req: MessagesRequest): string {
  const last = lastNonSystemMessage(req.messages);
  if (last && last.role === 'user') return messageText(last);
  // An assistant message last (a prefill) is rare; fall back to the latest user text.
  for (let i = req.messages.length - 1; i >= 0; i--) {
    const m = req.messages[i];
    if (m && m.role === 'user') return messageText(m);
  }
  return '';
}

/**
 * Every `<<tool NAME JSON>>` directive in a text, in order. The JSON ends at the first
 * `>>` after which the JSON parses, so `>>` inside the JSON (e.g. `echo hi >> f`) is fine.
 * Directives whose JSON never parses are skipped.
 */
export function parseToolDirectives(text: string): ToolUseSpec[] {
  const found: ToolUseSpec[] = [];
  const start = /<<tool\s+([A-Za-z0-9_.:-]+)\s+/g;
  let m: RegExpExecArray | null;
  while ((m = start.exec(text)) !== null) {
    const name = m[1] ?? '';
    const from = start.lastIndex;
    for (let end = text.indexOf('>>', from); end !== -1; end = text.indexOf('>>', end + 1)) {
      try {
        const input = JSON.parse(text.slice(from, end)) as unknown;
        found.push({ name, input });
        start.lastIndex = end + 2;
        break;
      } catch {
        // The `>>` belonged to the JSON; try the next one.
      }
    }
  }
  return found;
}

function truncate(text: string, limit = ECHO_LIMIT): string {
  const points = Array.from(text);
  return points.length <= limit ? text : points.slice(0, limit).join('');
}

const RECALL_DIRECTIVE = '<<recall>>';

/** The text of every user message before the last one that is a prompt (not tool results). */
function earlierPrompts(req: MessagesRequest): string[] {
  const last = lastNonSystemMessage(req.messages);
  return req.messages
    .filter((m) => m !== last && m.role === 'user' && toolResults(m).length === 0)
    .map((m) => messageText(m).replace(/<<tool\s[^]*?>>/g, '').trim())
    .filter((t) => t !== '');
}

/** The default reply for a request (see the rules at the top of this file). */
export function defaultReply(req: MessagesRequest): TextReply | ToolUseReply {
  const last = lastNonSystemMessage(req.messages);
  const results = last && last.role === 'user' ? toolResults(last) : [];
  const first = results[0];
  if (first) return { text: `Done: ${truncate(toolResultText(first))}` };
  const prompt = userPrompt(req);
  const directives = parseToolDirectives(prompt);
  if (directives.length > 0) return { toolUse: directives };
  if (prompt.includes(RECALL_DIRECTIVE)) return { text: `I remember: ${earlierPrompts(req).map((p) => JSON.stringify(truncate(p, 60))).join(' | ') || '(nothing)'}` };
  return { text: `mock reply: ${truncate(prompt)}` };
}

/** Which kind a reply is; `delay` means "default reply after the delay". */
export function replyKind(reply: MockReply): 'error' | 'stall' | 'toolUse' | 'text' | 'delay' {
  if ('error' in reply) return 'error';
  if ('stall' in reply) return 'stall';
  if ('toolUse' in reply) return 'toolUse';
  if ('text' in reply) return 'text';
  return 'delay';
}
