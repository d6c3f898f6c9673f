// Event ids of the feed: `<attempt>-<seq>`. Within an attempt the worker numbers events
// 1, 2, 3... without holes, and attempts only grow, so the ids are totally ordered and a
// reader can tell whether an event directly follows the last one it sent.

export interface EventCursor {
  attempt: number;
  seq: number;
}

/** Before every event of a turn. */
export const START: EventCursor = { attempt: 0, seq: 0 };

export function formatEventId(c: EventCursor): string {
  return `${c.attempt}-${c.seq}`;
}

/** Parses a `Last-Event-ID`; undefined if it is not `<attempt>-<seq>` with whole numbers. */
export function parseEventId(id: string): EventCursor | undefined {
  const m = /^(\d{1,9})-(\d{1,9})$/.exec(id.trim());
  if (!m) return undefined;
  return { attempt: Number(m[1]), seq: Number(m[2]) };
}

export function compareCursors(a: EventCursor, b: EventCursor): number {
  return a.attempt !== b.attempt ? a.attempt - b.attempt : a.seq - b.seq;
}

/**
 * True when `next` is the event right after `last`: the next seq of the same attempt, or
 * the first event of a later attempt (an attempt may have produced no event at all).
 */
export function isSuccessor(last: EventCursor, next: EventCursor): boolean {
  if (next.attempt === last.attempt) return next.seq === last.seq + 1;
  return next.attempt > last.attempt && next.seq === 1;
}
