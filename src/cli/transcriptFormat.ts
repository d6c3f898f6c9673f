// How `agentq transcript` prints a conversation: a header per turn (its prompt), one line
// per stored event (assistant text, tool calls, tool results, the result, agentq's own
// events), a footer with the turn's status and cost. `--json` prints the same as objects.
import { denialsNote, permissionDenials } from '../queue/denials.js';
import type { TurnRow } from '../store/turns.js';

/** The longest tool input or tool result printed in text mode; --json has everything. */
const TEXT_CLIP_CHARS = 600;

export interface StoredEvent {
  attempt: number;
  seq: number;
  type: string;
  payload: string;
}

function clip(text: string, max = TEXT_CLIP_CHARS): string {
  return text.length > max ? `${text.slice(0, max)}… (${text.length - max} more characters)` : text;
}

function indent(text: string, prefix: string): string {
  return text
    .split('\n')
    .map((line, i) => (i === 0 ? line : `${' '.repeat(prefix.length)}${line}`))
    .join('\n');
}

function parse(payload: string): Record<string, unknown> | undefined {
  try {
    const v = JSON.parse(payload) as unknown;
    return typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** The text of a tool_result's content: a string or an array of text blocks. */
function toolResultText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((b) => (typeof b === 'object' && b !== null && (b as { type?: unknown }).type === 'text' ? String((b as { text?: unknown }).text ?? '') : '[non-text block]'))
      .join('\n');
  }
  return JSON.stringify(content ?? null);
}

function contentBlocks(e: Record<string, unknown>): Record<string, unknown>[] {
  const content = (e.message as { content?: unknown } | undefined)?.content;
  if (typeof content === 'string') return [{ type: 'text', text: content }];
  return Array.isArray(content) ? content.filter((b): b is Record<string, unknown> => typeof b === 'object' && b !== null) : [];
}

/** Text lines for one stored event; empty for events not worth a line (partial stream deltas). */
export function eventLines(event: StoredEvent): string[] {
  const e = parse(event.payload);
  if (!e) return [`  [unparsed ${event.type} line] ${clip(event.payload, 200)}`];
  switch (e.type) {
    case 'system':
      if (e.subtype === 'init') return [`  · session ${String(e.session_id ?? '?')}${e.model ? ` (${String(e.model)})` : ''}`];
      return [`  · system ${String(e.subtype ?? '')}${e.subtype === 'api_retry' ? ` (attempt ${String(e.attempt ?? '?')}, status ${String(e.error_status ?? '?')})` : ''}`];
    case 'assistant':
      return contentBlocks(e).flatMap((b) => {
        if (b.type === 'text') return [`  assistant: ${indent(String(b.text ?? ''), '  assistant: ')}`];
        if (b.type === 'tool_use') return [`  tool call ${String(b.name ?? '?')}: ${clip(JSON.stringify(b.input ?? {}))}`];
        if (b.type === 'thinking') return ['  (thinking)'];
        return [`  assistant ${String(b.type ?? 'block')}`];
      });
    case 'user':
      return contentBlocks(e).flatMap((b) => {
        if (b.type === 'tool_result') {
          const label = b.is_error === true ? '  tool error: ' : '  tool result: ';
          return [`${label}${indent(clip(toolResultText(b.content)), label)}`];
        }
        if (b.type === 'text') return [`  user: ${indent(String(b.text ?? ''), '  user: ')}`];
        return [];
      });
    case 'result': {
      const cost = typeof e.total_cost_usd === 'number' ? ` · $${e.total_cost_usd.toFixed(4)}` : '';
      const turns = typeof e.num_turns === 'number' ? ` · ${e.num_turns} model turns` : '';
      const text = typeof e.result === 'string' ? e.result : '';
      return [`  result (${String(e.subtype ?? '?')}${e.is_error === true ? ', error' : ''}${cost}${turns}): ${indent(text, '    ')}`];
    }
    case 'agentq': {
      const { type: _t, subtype, ...rest } = e;
      return [`  [agentq ${String(subtype ?? '')}] ${JSON.stringify(rest)}`];
    }
    case 'stream_event':
      return [];
    default:
      return [`  [${String(e.type ?? event.type)}]`];
  }
}

export function turnHeaderLines(turn: TurnRow): string[] {
  return [`── turn ${turn.seq} · ${turn.id}`, `> ${indent(turn.prompt, '> ')}`];
}

export function attemptLine(attempt: number): string {
  return `  — attempt ${attempt} —`;
}

export function turnFooterLines(turn: TurnRow): string[] {
  const cost = turn.costUsd === null ? '' : ` · $${Number(turn.costUsd).toFixed(4)}`;
  const lines = [`── turn ${turn.seq} ${turn.status}${cost} · ${turn.attempts} attempt${turn.attempts === 1 ? '' : 's'}`];
  const denied = permissionDenials(turn.toolCalls, turn.permissionDenials);
  if (denied) lines.push(`   ${denialsNote(denied)}`);
  if (turn.error) lines.push(`   error: ${JSON.stringify(turn.error)}`);
  return lines;
}

/** The --json objects: one per turn start, per event, per turn end. */
export function turnJson(turn: TurnRow): Record<string, unknown> {
  return { kind: 'turn', turnId: turn.id, seq: turn.seq, prompt: turn.prompt, queuedAt: turn.queuedAt.toISOString() };
}

export function eventJson(turn: TurnRow, event: StoredEvent): Record<string, unknown> {
  return { kind: 'event', turnId: turn.id, turnSeq: turn.seq, attempt: event.attempt, seq: event.seq, type: event.type, event: parse(event.payload) ?? event.payload };
}

export function turnEndJson(turn: TurnRow): Record<string, unknown> {
  return {
    kind: 'turn_end',
    turnId: turn.id,
    seq: turn.seq,
    status: turn.status,
    attempts: turn.attempts,
    result: turn.result,
    costUsd: turn.costUsd === null ? null : Number(turn.costUsd),
    usage: turn.usage,
    error: turn.error,
    toolCalls: turn.toolCalls,
    permissionDenials: permissionDenials(turn.toolCalls, turn.permissionDenials),
    finishedAt: turn.finishedAt?.toISOString() ?? null,
  };
}
