// What Postgres knows about a turn, for the feed and the input route: its status, tenant
// and options, and its stored events after a cursor, in order.
import { and, asc, eq, sql } from 'drizzle-orm';
import type { StoreDb } from '../store/db.js';
import { conversations, turnEvents, turns } from '../store/schema.js';
import type { EventCursor } from './cursor.js';

export interface FeedEvent extends EventCursor {
  type: string;
  /** The stored line, byte-exact. */
  payload: string;
}

export interface TurnHead {
  status: string;
  tenantId: string;
  options: Record<string, unknown>;
}

const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

export function isTerminalStatus(status: string): boolean {
  return TERMINAL.has(status);
}

/** The turn's status, tenant and options; undefined if it does not exist. */
export async function getTurnHead(db: StoreDb, turnId: string): Promise<TurnHead | undefined> {
  const rows = await db
    .select({ status: turns.status, tenantId: conversations.tenantId, options: turns.options })
    .from(turns)
    .innerJoin(conversations, eq(conversations.id, turns.conversationId))
    .where(eq(turns.id, turnId))
    .limit(1);
  const row = rows[0];
  return row && { status: row.status, tenantId: row.tenantId, options: (row.options ?? {}) as Record<string, unknown> };
}

/** Up to `limit` stored events after `after`, in (attempt, seq) order. Index: turn_events_turn_attempt_seq_uq. */
export async function storedEventsAfter(db: StoreDb, turnId: string, after: EventCursor, limit: number): Promise<FeedEvent[]> {
  return db
    .select({ attempt: turnEvents.attempt, seq: turnEvents.seq, type: turnEvents.type, payload: turnEvents.payload })
    .from(turnEvents)
    .where(and(eq(turnEvents.turnId, turnId), sql`(${turnEvents.attempt}, ${turnEvents.seq}) > (${after.attempt}, ${after.seq})`))
    .orderBy(asc(turnEvents.attempt), asc(turnEvents.seq))
    .limit(limit);
}
