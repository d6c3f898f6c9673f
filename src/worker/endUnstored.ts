// The last way out of an attempt whose commit (or hand-back) failed twice for what it
// tried to store, not for where Postgres is. Left to itself, such an attempt would fail its
// job, be re-dispatched, run the CLI (and call the model) again and fail the same way,
// for ever, whatever AGENTQ_MAX_ATTEMPTS says. This ends it storing nothing the run wrote:
// the session's uncommitted lines (of every attempt) are dropped, one event says why, and
// the turn is handed back, or failed once the attempts are used up. Fenced like any write.
// The same end awaits a turn claimed past AGENTQ_MAX_ATTEMPTS (attemptsExhausted).
import type { StoreDb, StoreTx } from '../store/db.js';
import { discardSessionTails } from '../store/sessions.js';
import { appendTurnEvents, countHandBacks, finishTurn, requeueTurn, type DueTurn, type TurnError } from '../store/turns.js';
import type { LeaseGuard } from './leaseGuard.js';

export interface UnstoredEnd {
  turnId: string;
  conversationId: string;
  attempt: number;
  /** The next free event seq of this attempt. */
  eventSeq: number;
  /** Sessions whose uncommitted tails go (the run's, the conversation's). */
  sessionIds: readonly (string | null | undefined)[];
  /** The conversation's session, which stays what it was. */
  conversationSessionId: string | null;
  error: TurnError;
}

async function dropAndRecord(tx: StoreTx, end: UnstoredEnd): Promise<void> {
  for (const id of new Set(end.sessionIds)) if (id) await discardSessionTails(tx, end.conversationId, id);
  const payload = JSON.stringify({ type: 'agentq', subtype: 'run_not_stored', message: end.error.message });
  await appendTurnEvents(tx, end.turnId, end.attempt, [{ seq: end.eventSeq, type: 'agentq', payload }]);
}

/** Fails the turn with `end.error`, storing nothing of the run. Returns the next turn due. */
export function failUnstored(lease: LeaseGuard, end: UnstoredEnd): Promise<DueTurn | undefined> {
  return lease.fenced(async ({ tx, markFenceChecked }) => {
    await dropAndRecord(tx, end);
    // finishTurn checks the fence itself (it locks the conversation row).
    markFenceChecked();
    return finishTurn(tx, {
      turnId: end.turnId,
      conversationId: end.conversationId,
      fence: lease.fence,
      conversationSessionId: undefined,
      runSessionId: undefined,
      status: 'failed',
      result: null,
      error: end.error,
      costUsd: 0,
      usage: null,
      numTurns: 0,
      toolCalls: 0,
      permissionDenials: [],
      sessionIdAfter: end.conversationSessionId,
      inputTokens: 0,
      outputTokens: 0,
      keepWarmMs: undefined,
    });
  });
}

/** Hands the turn back to run again after `delayMs`, storing nothing of the run. */
export async function requeueUnstored(lease: LeaseGuard, end: UnstoredEnd, delayMs: number): Promise<Date> {
  const row = await lease.fenced(async ({ tx, checkFence }) => {
    await dropAndRecord(tx, end);
    await checkFence();
    return requeueTurn(tx, { turnId: end.turnId, conversationId: end.conversationId, delayMs, error: end.error });
  });
  return row.runAt;
}

/**
 * Why claim `attempt` of the turn must not run, when it is past `maxAttempts`: every
 * earlier attempt ended without a verdict (its worker died, or could not store what its
 * run wrote), so running the CLI again would only repeat that. Attempts handed back by a
 * stopping worker do not count. No query below the cap.
 */
export async function attemptsExhausted(db: StoreDb, turnId: string, attempt: number, maxAttempts: number): Promise<TurnError | undefined> {
  if (attempt <= maxAttempts) return undefined;
  if (attempt - (await countHandBacks(db, turnId)) <= maxAttempts) return undefined;
  return {
    class: 'attempts_exhausted',
    message: `claimed ${attempt} times (AGENTQ_MAX_ATTEMPTS=${maxAttempts}), and the earlier attempts ended without storing an outcome; not run again`,
    retryable: false,
  };
}
