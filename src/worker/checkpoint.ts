// Checkpoint: while the CLI runs, its new session lines (uncommitted) and buffered events
// are stored every AGENTQ_CHECKPOINT_INTERVAL_MS under the fencing token, so a retry on
// any worker continues from them (invariant 5 of docs/design.md). Checkpoints never overlap.
import { StaleLeaseError } from '../errors.js';
import { appendTurnEvents, recordCliVersion, setRunSessionId } from '../store/turns.js';
import type { AttemptContext, BufferedEvent } from './attemptContext.js';
import type { FencedTx } from './leaseGuard.js';
import type { SessionOnDisk } from './runFiles.js';

export class Checkpoints {
  private chain: Promise<void> = Promise.resolve();

  constructor(private readonly ctx: AttemptContext) {}

  /** Saves new session lines and buffered events after any checkpoint still running. A final one throws its failure. */
  schedule(final: boolean): Promise<void> {
    this.chain = this.chain.then(() => this.checkpoint(final));
    return this.chain;
  }

  /** Settles once no checkpoint is running. */
  settled(): Promise<void> {
    return this.chain;
  }

  private async checkpoint(final: boolean): Promise<void> {
    const { ctx } = this;
    if (ctx.lease.lost) return;
    const events = ctx.events;
    ctx.events = [];
    try {
      const started = performance.now();
      ctx.runSessionId = await ctx.fenced((f) => writeProgress(ctx, f, events));
      ctx.deps.observer?.checkpointed?.(performance.now() - started);
    } catch (err) {
      ctx.events = [...events, ...ctx.events];
      if (err instanceof StaleLeaseError) return ctx.lease.lose();
      if (final) throw err;
      ctx.log().warn({ err }, 'checkpoint failed; will retry');
    }
  }
}

/**
 * Stores new session lines (uncommitted) and `events`, then checks the fence and records
 * which session the attempt runs in. Returns that session id (the caller keeps it once
 * the transaction committed).
 */
export async function writeProgress(ctx: AttemptContext, f: FencedTx, events: BufferedEvent[]): Promise<string | null> {
  const current = await saveProgress(ctx, f, events);
  await f.checkFence();
  if (current && current.sessionId !== ctx.runSessionId) await setRunSessionId(f.tx, ctx.turn.id, current.sessionId);
  const cliVersion = ctx.cliVersionToStore();
  if (cliVersion) {
    await recordCliVersion(f.tx, ctx.turn.id, cliVersion);
    f.afterCommit(() => (ctx.cliVersionStored = true));
  }
  return current?.sessionId ?? ctx.runSessionId;
}

/** New session lines (uncommitted) and events; returns the session written, if any. */
export async function saveProgress(ctx: AttemptContext, { tx, afterCommit }: FencedTx, events: BufferedEvent[]): Promise<SessionOnDisk | undefined> {
  const current = await ctx.currentSession();
  if (current) await ctx.files.save(tx, current, afterCommit);
  await appendTurnEvents(tx, ctx.turn.id, ctx.attempt, events);
  return current;
}
