// Server-Sent Events exactly as the Anthropic streaming Messages API sends them:
// message_start, ping, then per content block content_block_start / content_block_delta
// (text_delta or input_json_delta) / content_block_stop, then message_delta (stop_reason
// and final usage) and message_stop. The CLI always streams its conversation requests,
// so this is the mock's main output format. `parseSse` reads the format back (tests).
import type { AssistantMessage, ContentBlock } from './anthropic.js';

export interface SseEvent {
  event: string;
  data: unknown;
}

/** One event on the wire: `event: <name>\ndata: <json>\n\n`. */
export function encodeSseEvent(e: SseEvent): string {
  return `event: ${e.event}\ndata: ${JSON.stringify(e.data)}\n\n`;
}

/**
 * Split text into small pieces at whitespace, as a model streams it, so that clients
 * see several deltas (and reassemble them) rather than one. Concatenating the pieces
 * gives back the input exactly.
 */
export function chunkText(text: string, maxLen = 24): string[] {
  if (text === '') return [];
  const words = text.match(/\s*\S+\s*|\s+/g) ?? [text];
  const chunks: string[] = [];
  let current = '';
  for (const word of words) {
    if (current !== '' && current.length + word.length > maxLen) {
      chunks.push(current);
      current = '';
    }
    current += word;
  }
  if (current !== '') chunks.push(current);
  return chunks;
}

/**
 * Split JSON text into fixed-size fragments (by code point, so no surrogate pair is cut),
 * like the real API's input_json_delta fragments, which ignore token boundaries.
 */
export function chunkJson(json: string, size = 16): string[] {
  const points = Array.from(json);
  const chunks: string[] = [];
  for (let i = 0; i < points.length; i += size) chunks.push(points.slice(i, i + size).join(''));
  return chunks;
}

/** The `message` of message_start: the final message with no content and no stop reason yet. */
function startedMessage(message: AssistantMessage): Record<string, unknown> {
  return {
    ...message,
    content: [],
    stop_reason: null,
    stop_sequence: null,
    // The real API reports input tokens up front and a placeholder output count.
    usage: { ...message.usage, output_tokens: 1 },
  };
}

export function messageStartEvent(message: AssistantMessage): SseEvent {
  return { event: 'message_start', data: { type: 'message_start', message: startedMessage(message) } };
}

export const pingEvent: SseEvent = { event: 'ping', data: { type: 'ping' } };

/** content_block_start .. content_block_stop for one block. */
export function contentBlockEvents(block: ContentBlock, index: number): SseEvent[] {
  const events: SseEvent[] = [];
  const delta = (d: Record<string, unknown>): void => {
    events.push({ event: 'content_block_delta', data: { type: 'content_block_delta', index, delta: d } });
  };
  if (block.type === 'tool_use') {
    // The block starts with an empty input; the input arrives as JSON text fragments.
    events.push({
      event: 'content_block_start',
      data: { type: 'content_block_start', index, content_block: { type: 'tool_use', id: block.id, name: block.name, input: {} } },
    });
    delta({ type: 'input_json_delta', partial_json: '' });
    for (const part of chunkJson(JSON.stringify(block.input ?? {}))) delta({ type: 'input_json_delta', partial_json: part });
  } else {
    events.push({
      event: 'content_block_start',
      data: { type: 'content_block_start', index, content_block: { type: 'text', text: '' } },
    });
    for (const part of chunkText(block.text ?? '')) delta({ type: 'text_delta', text: part });
  }
  events.push({ event: 'content_block_stop', data: { type: 'content_block_stop', index } });
  return events;
}

/** message_delta (stop reason, final usage) and message_stop. */
export function messageEndEvents(message: AssistantMessage): SseEvent[] {
  return [
    {
      event: 'message_delta',
      data: {
        type: 'message_delta',
        delta: { stop_reason: message.stop_reason, stop_sequence: null },
        usage: { output_tokens: message.usage.output_tokens },
      },
    },
    { event: 'message_stop', data: { type: 'message_stop' } },
  ];
}

/** The complete event sequence for a message, in wire order. */
export function messageToSseEvents(message: AssistantMessage): SseEvent[] {
  return [
    messageStartEvent(message),
    pingEvent,
    ...message.content.flatMap((block, i) => contentBlockEvents(block, i)),
    ...messageEndEvents(message),
  ];
}

/** Parse an SSE stream (complete text) back into events; `data` is JSON-parsed. */
export function parseSse(text: string): SseEvent[] {
  const events: SseEvent[] = [];
  for (const frame of text.replace(/\r\n/g, '\n').split('\n\n')) {
    if (frame.trim() === '') continue;
    let event = 'message';
    const data: string[] = [];
    for (const line of frame.split('\n')) {
      if (line.startsWith('event:')) event = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    events.push({ event, data: JSON.parse(data.join('\n')) as unknown });
  }
  return events;
}

/**
 * Rebuild the final message from a parsed event stream, as an SDK client would:
 * text deltas are concatenated, input_json fragments joined and parsed.
 */
export function assembleMessage(events: SseEvent[]): AssistantMessage {
  let message: AssistantMessage | undefined;
  const jsonParts = new Map<number, string>();
  for (const { data } of events) {
    const d = data as Record<string, unknown>;
    switch (d.type) {
      case 'message_start':
        message = structuredClone(d.message) as AssistantMessage;
        break;
      case 'content_block_start':
        if (message) message.content[d.index as number] = structuredClone(d.content_block) as ContentBlock;
        break;
      case 'content_block_delta': {
        const block = message?.content[d.index as number];
        const delta = d.delta as Record<string, string>;
        if (!block) break;
        if (delta.type === 'text_delta') block.text = (block.text ?? '') + delta.text;
        else if (delta.type === 'input_json_delta') jsonParts.set(d.index as number, (jsonParts.get(d.index as number) ?? '') + delta.partial_json);
        break;
      }
      case 'content_block_stop': {
        const block = message?.content[d.index as number];
        const json = jsonParts.get(d.index as number);
        if (block && json !== undefined) block.input = json === '' ? {} : (JSON.parse(json) as unknown);
        break;
      }
      case 'message_delta':
        if (message) {
          const delta = d.delta as { stop_reason: AssistantMessage['stop_reason'] };
          message.stop_reason = delta.stop_reason;
          message.usage = { ...message.usage, ...(d.usage as object) };
        }
        break;
    }
  }
  if (!message) throw new Error('no message_start event in stream');
  return message;
}
