// The shape of one entry of a turn's live stream: an event with its (attempt, seq), or
// the end marker the worker appends after the turn's commit.
import type { FeedEvent } from './storedEvents.js';

export type StreamEntry = { kind: 'event'; event: FeedEvent } | { kind: 'end'; status: string } | { kind: 'unknown' };

/** Field list of an event entry (XADD ... a <attempt> s <seq> t <type> p <payload>). */
export function eventFields(attempt: number, seq: number, type: string, payload: string): string[] {
  return ['a', String(attempt), 's', String(seq), 't', type, 'p', payload];
}

/** Field list of the end marker. */
export function endFields(status: string): string[] {
  return ['end', status];
}

/** Reads an entry's flat field list; anything else (a newer writer, a damaged entry) is `unknown` and skipped. */
export function parseStreamEntry(fields: readonly string[]): StreamEntry {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i]!, fields[i + 1]!);
  const end = f.get('end');
  if (end !== undefined) return { kind: 'end', status: end };
  const attempt = Number(f.get('a'));
  const seq = Number(f.get('s'));
  const type = f.get('t');
  const payload = f.get('p');
  if (!Number.isInteger(attempt) || attempt < 1 || !Number.isInteger(seq) || seq < 1 || type === undefined || payload === undefined) {
    return { kind: 'unknown' };
  }
  return { kind: 'event', event: { attempt, seq, type, payload } };
}
