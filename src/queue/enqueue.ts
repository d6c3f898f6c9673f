// Enqueueing a turn: validate, record it in Postgres, and dispatch it if it is its
// conversation's head. Shared by the producer client and the schedule ticks.
import type { Queue } from 'bullmq';
import type { StoreDb } from '../store/db.js';
import type { TurnSource } from '../store/schema.js';
import { insertTurn } from '../store/turns.js';
import { dispatchTurn } from './dispatch.js';
import type { TurnJobData } from './jobs.js';
import { parseEnqueueInput } from './turnInput.js';

export interface EnqueuedTurnInfo {
  turnId: string;
  conversationId: string;
  seq: number;
  status: string;
  /** False when the idempotency key matched an earlier turn. */
  created: boolean;
}

/** Throws TurnInputError naming each bad field (nothing stored) or StoreInputError. */
export async function enqueueTurn(
  db: StoreDb,
  queue: Queue<TurnJobData>,
  raw: unknown,
  options: { maxPromptChars: number; defaultSource: TurnSource },
): Promise<EnqueuedTurnInfo> {
  const input = parseEnqueueInput(raw, options.maxPromptChars);
  const { turn, created, isHead } = await insertTurn(db, {
    externalId: input.conversationId,
    tenantId: input.tenantId,
    haltOnFailure: input.haltOnFailure,
    approvals: input.approvals,
    prompt: input.prompt,
    options: input.options ?? {},
    idempotencyKey: input.idempotencyKey,
    priority: input.priority ?? 0,
    delayMs: input.delayMs ?? 0,
    source: input.source ?? options.defaultSource,
  });
  // Only the head of a conversation gets a job; the previous turn's commit dispatches
  // the next. If this add is lost (crash, Redis down), the reconciler adds it.
  if (created && isHead) await dispatchTurn(queue, turn);
  return { turnId: turn.id, conversationId: input.conversationId, seq: turn.seq, status: turn.status, created };
}
