// Reading a turn's events for GET /v1/turns/:id/events: what Postgres stored first, then
// the live stream, with no gap and no duplicate across the switch.
//
// Why not plain pub/sub: the worker writes events to Postgres only at checkpoints (every
// AGENTQ_CHECKPOINT_INTERVAL_MS), so an event published before a reader subscribed and
// not yet stored would be lost. Instead the worker appends every event to a per-turn
// Redis Stream as it arrives (src/live/publisher.ts), and a reader:
//   1. reads the turn's status, then sends the stored events after its cursor (the
//      `Last-Event-ID`, or the start). If the status was terminal, that is everything
//      (the commit stores the last events and the status in one transaction): end.
//   2. reads the stream from its first entry and sends only what follows its cursor. An
//      event id is `<attempt>-<seq>`; seqs run 1, 2, 3... within an attempt and attempts
//      only grow, so "already sent" is `id <= cursor` and "nothing missing" is "the next
//      seq, or seq 1 of a later attempt".
//   3. when an entry does not directly follow the cursor (the stream dropped an event:
//      a Redis error, an oversized payload, trimming), it sends what Postgres has after
//      the cursor and, if the hole is still there (not checkpointed yet), waits and reads
//      the same entries again. Postgres is the record; the stream only makes it fast.
//   4. ends at the end marker the worker appends after the commit, or when a blocking
//      read times out and Postgres says the turn is terminal (no marker: a turn cancelled
//      while queued, a worker killed right after its commit, Redis lost). Either way the
//      remaining stored events are sent first.
// A `result` event is not the end: an attempt whose result is an API error is retried,
// and the next attempt's events follow in the same feed. The end is the turn's commit.
//
// Caveat: events of an attempt that lost its lease (a frozen worker) may be streamed
// live and then never stored, because the attempt's writes are fenced off.
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import type { StoreDb } from '../store/db.js';
import { compareCursors, isSuccessor, type EventCursor } from './cursor.js';
import { parseStreamEntry } from './streamEntry.js';
import type { SharedStreamReader, StreamEntries } from './streamReader.js';
import { getTurnHead, isTerminalStatus, storedEventsAfter, type FeedEvent } from './storedEvents.js';

export type FeedItem = { kind: 'event'; event: FeedEvent } | { kind: 'end'; status: string };

export interface FeedOptions {
  db: StoreDb;
  /** The process's one blocking Redis reader, shared by every feed (src/live/streamReader.ts). */
  reader: SharedStreamReader;
  streamKey: string;
  turnId: string;
  /** Send only events after this one (`Last-Event-ID`). */
  after: EventCursor;
  /** Aborting ends the feed at once. */
  signal: AbortSignal;
  log: Logger;
  /** How long one blocking stream read waits before Postgres is asked whether the turn ended. Default 5000. */
  pollMs?: number;
}

const PAGE = 500;
const STREAM_COUNT = 500;
/** First wait for a hole to be checkpointed; doubles up to pollMs while nothing moves. */
const HOLE_WAIT_MS = 100;

export async function* turnFeed(o: FeedOptions): AsyncGenerator<FeedItem, void, undefined> {
  const pollMs = o.pollMs ?? 5000;
  let cursor: EventCursor = { attempt: o.after.attempt, seq: o.after.seq };

  const take = (e: FeedEvent): FeedItem => {
    cursor = { attempt: e.attempt, seq: e.seq };
    return { kind: 'event', event: e };
  };
  async function* stored(): AsyncGenerator<FeedItem, void, undefined> {
    for (;;) {
      const page = await storedEventsAfter(o.db, o.turnId, cursor, PAGE);
      for (const e of page) yield take(e);
      if (page.length < PAGE) return;
    }
  }
  /** Ends the feed (returns true) when the turn is terminal or gone; status first, then events. */
  async function* endIfTerminal(): AsyncGenerator<FeedItem, boolean, undefined> {
    const head = await getTurnHead(o.db, o.turnId);
    if (head && !isTerminalStatus(head.status)) return false;
    yield* stored();
    yield { kind: 'end', status: head?.status ?? 'deleted' };
    return true;
  }

  if (yield* endIfTerminal()) return;
  yield* stored();

  let lastId = '0';
  let holeWaitMs = HOLE_WAIT_MS;
  while (!o.signal.aborted) {
    const before = cursor;
    let raw: StreamEntries | null;
    try {
      raw = await o.reader.read(o.streamKey, lastId, { count: STREAM_COUNT, blockMs: pollMs, signal: o.signal });
    } catch (err) {
      if (o.signal.aborted) return;
      // Redis is away: carry on from Postgres alone, a checkpoint at a time.
      o.log.warn({ err, turnId: o.turnId }, 'live events: reading the Redis stream failed; following Postgres');
      yield* stored();
      if (yield* endIfTerminal()) return;
      await pause(pollMs, o.signal);
      continue;
    }
    if (o.signal.aborted) return;
    if (!raw) {
      if (yield* endIfTerminal()) return;
      continue;
    }
    let hole = false;
    for (const [id, fields] of raw) {
      const entry = parseStreamEntry(fields);
      if (entry.kind === 'end') {
        // Written after the commit: Postgres holds every event of the turn.
        yield* stored();
        yield { kind: 'end', status: entry.status };
        return;
      }
      if (entry.kind === 'event' && compareCursors(entry.event, cursor) > 0) {
        if (!isSuccessor(cursor, entry.event)) yield* stored();
        if (compareCursors(entry.event, cursor) > 0) {
          if (!isSuccessor(cursor, entry.event)) {
            hole = true;
            break;
          }
          yield take(entry.event);
        }
      }
      lastId = id;
    }
    if (!hole) {
      holeWaitMs = HOLE_WAIT_MS;
      continue;
    }
    // The missing events are not checkpointed yet: read the same entries again shortly.
    if (cursor !== before) holeWaitMs = HOLE_WAIT_MS;
    if (yield* endIfTerminal()) return;
    await pause(holeWaitMs, o.signal);
    holeWaitMs = Math.min(pollMs, holeWaitMs * 2);
  }
}

async function pause(ms: number, signal: AbortSignal): Promise<void> {
  await delay(ms, undefined, { signal }).catch(() => undefined);
}
