// One attempt of one turn, holding the conversation's lease. Read top to bottom it is the
// turn protocol after the claim: prepare (./sessionStart.ts: workspace, session, prompt),
// run (./cliTurn.ts: the CLI, cold or warm, with checkpoints, ./checkpoint.ts), then
// commit or requeue (./commitAttempt.ts). Every write goes through a transaction that
// first checks the fencing token, so an attempt that lost its lease writes nothing.
// Nothing else in the code base decides when a turn is committed.
import { removeAgentDir } from '../agentFiles/removeTree.js';
import { safeErrorMessage, StaleLeaseError } from '../errors.js';
import type { InputOutcome, InputTarget } from '../live/inputs.js';
import type { RunOutcome } from '../runner/outcome.js';
import { HANDED_BACK_SUBTYPE, type TurnError } from '../store/turns.js';
import { AttemptContext, LEASE_LOST, type AttemptOptions, type AttemptVerdict } from './attemptContext.js';
import { Checkpoints } from './checkpoint.js';
import { CliTurn } from './cliTurn.js';
import { commitTurn, endUnstored, requeueAttempt, retryOrFail } from './commitAttempt.js';
import { attemptsExhausted } from './endUnstored.js';
import { deferredCall } from './gate.js';
import { backoffMs, decide, type TurnDecision } from './retryPolicy.js';
import { prepareCold, prepareWarm, whenSessionMissing } from './sessionStart.js';
import { isTransientDbError } from './transient.js';

export type { AttemptDeps, AttemptOptions, AttemptVerdict, MultiTurnPlan, ClaimedTurn } from './attemptContext.js';

/** What the run's end means: the retry policy's decision, or the lease lost, or drained on shutdown. */
type AfterRun = TurnDecision | { kind: 'lease_lost' } | { kind: 'drained' };

export class Attempt implements InputTarget {
  private readonly ctx: AttemptContext;
  private readonly checkpoints: Checkpoints;
  private readonly cli: CliTurn;

  constructor(options: AttemptOptions) {
    this.ctx = new AttemptContext(options);
    this.checkpoints = new Checkpoints(this.ctx);
    this.cli = new CliTurn(this.ctx, this.checkpoints);
  }

  /** Stops the run: `reason` is 'cancelled', 'shutdown' or why the lease was lost. */
  abort(reason: string): void {
    this.ctx.abort(reason);
  }

  /** A user message for the running CLI (POST /v1/turns/:id/input; ./cliTurn.ts). */
  acceptInput(text: string): Promise<InputOutcome> {
    return this.cli.acceptInput(text);
  }

  /** Runs the attempt to its verdict. Throws only when not even a hand-back could be stored (Postgres away). */
  async run(): Promise<AttemptVerdict> {
    try {
      return await this.runTurn();
    } catch (err) {
      if (err instanceof StaleLeaseError || this.ctx.lease.lost) return LEASE_LOST;
      return await this.failedInWorker(err);
    } finally {
      await this.settleProcess();
    }
  }

  private async runTurn(): Promise<AttemptVerdict> {
    const { ctx } = this;
    // What the conversation's last turn here left to do after its ack comes first (./afterTurns.ts).
    await ctx.deps.afterTurns?.settled(ctx.conversation.id);
    const exhausted = await attemptsExhausted(ctx.deps.db, ctx.turn.id, ctx.roundAttempt, ctx.config.worker.maxAttempts);
    if (exhausted) return endUnstored(ctx, exhausted);
    const taken = ctx.multiTurn?.kept;
    let plan = taken ? await prepareWarm(ctx, taken) : await prepareCold(ctx);
    for (;;) {
      if (plan.kind === 'fail') return commitTurn(ctx, { status: 'failed', error: plan.error });
      const { session } = plan;
      const outcome = await this.cli.run(session, plan.prompt);
      const decision = await this.decideAfterRun(outcome);
      if (decision.kind === 'session_missing') {
        // The CLI could not resume the session: the missing-session policy says whether to run again, fresh.
        plan = await whenSessionMissing(ctx, {
          sessionId: session.sessionId,
          reportedBy: 'cli',
          cliError: decision.error,
          mayStartFresh: session.mode === 'resume' && !ctx.controller.signal.aborted,
        });
        if (plan.kind === 'fail') return commitTurn(ctx, { outcome, status: 'failed', error: plan.error });
        continue;
      }
      return this.conclude(outcome, decision);
    }
  }

  /** After the CLI exited: wait for the last checkpoint, then what its outcome means for the turn. */
  private async decideAfterRun(outcome: RunOutcome): Promise<AfterRun> {
    const { ctx } = this;
    ctx.mark('run');
    await this.checkpoints.settled();
    if (ctx.lease.lost) return { kind: 'lease_lost' };
    // Only a run the drain actually interrupted is handed back; one that finished first commits.
    if (outcome.type === 'cancelled' && ctx.controller.signal.reason === 'shutdown') return { kind: 'drained' };
    const decision = this.refusedSessionDecision(decide(outcome));
    ctx.log().info({ outcome: outcome.type, decision: decision.kind }, 'attempt finished');
    return decision;
  }

  /** Commit, retry (requeue with backoff) or hand back. */
  private conclude(outcome: RunOutcome, decision: Exclude<AfterRun, { kind: 'session_missing' }>): Promise<AttemptVerdict> {
    const { ctx } = this;
    switch (decision.kind) {
      case 'lease_lost':
        return Promise.resolve(LEASE_LOST);
      case 'drained':
        // Drained on shutdown: hand the turn back at once; another worker continues it.
        ctx.record({ type: 'agentq', subtype: HANDED_BACK_SUBTYPE, reason: 'shutdown' });
        return requeueAttempt(ctx, 0, null);
      case 'finish': {
        // Stopped before a gated call: commit what ran and wait for a person (./gate.ts).
        const deferred = deferredCall(ctx, outcome);
        if (deferred) return commitTurn(ctx, { outcome, status: 'awaiting_approval', error: null, deferred });
        return commitTurn(ctx, { outcome, status: decision.status, error: decision.error ?? null, keepWarm: this.mayKeepWarm(outcome) });
      }
      case 'retry':
        return retryOrFail(ctx, outcome, decision.error);
    }
  }

  /**
   * A run whose session file was refused (./runFiles.ts) cannot succeed: what it did is
   * not stored, so the turn is retried like a failed attempt (and fails at the last).
   */
  private refusedSessionDecision(decision: TurnDecision): TurnDecision {
    const reason = this.ctx.files.sessionRefusal;
    if (reason === undefined || decision.kind !== 'finish' || decision.status !== 'succeeded') return decision;
    return { kind: 'retry', error: { class: 'session_not_saved', message: reason, retryable: true } };
  }

  /** A successful turn whose process still waits for input, and took no mid-run message, can stay warm. */
  private mayKeepWarm(outcome: RunOutcome): boolean {
    const { ctx } = this;
    return (
      ctx.multiTurn?.keepIdleMs !== undefined &&
      ctx.deps.warmPool !== undefined &&
      outcome.type === 'success' &&
      ctx.cli?.isRunning === true &&
      !ctx.gotInput &&
      !ctx.controller.signal.aborted &&
      ctx.files.sessionRefusal === undefined
    );
  }

  /**
   * A failure of this worker rather than of the turn (a full disk, an unreadable archive,
   * a bug): hand the turn back with backoff instead of keeping its lease. If even that
   * fails (Postgres down), the job fails and the reconciler re-dispatches it.
   */
  private async failedInWorker(err: unknown): Promise<AttemptVerdict> {
    const { ctx } = this;
    ctx.log().error({ err }, 'the attempt failed inside the worker; handing the turn back');
    const { retryBaseMs, retryMaxMs, maxAttempts } = ctx.config.worker;
    const last = ctx.roundAttempt >= maxAttempts;
    const message = safeErrorMessage(err);
    const error: TurnError = { class: 'worker_error', message: last ? `${message} (after ${ctx.roundAttempt} attempts)` : message, retryable: true };
    const delayMs = backoffMs(ctx.roundAttempt, retryBaseMs, retryMaxMs);
    try {
      return last ? await commitTurn(ctx, { status: 'failed', error }) : await requeueAttempt(ctx, delayMs, error);
    } catch (again) {
      if (again instanceof StaleLeaseError || ctx.lease.lost) return LEASE_LOST;
      // Postgres away: the job fails and the reconciler dispatches the turn again later.
      if (isTransientDbError(again)) throw again;
      // Storing failed again for what it holds: end without what the run wrote (./endUnstored.ts).
      ctx.log().error({ err: again }, 'storing the attempt failed again; ending it without what the run wrote');
      return await endUnstored(ctx, error, last ? undefined : delayMs);
    }
  }

  /**
   * After the attempt: the warm process goes to the pool, or is closed; the session file is
   * kept for a next turn and the run dir goes, once the job is acknowledged.
   */
  private async settleProcess(): Promise<void> {
    const { ctx } = this;
    const { warmPool } = ctx.deps;
    if (ctx.keepHandle && warmPool) {
      warmPool.keep(ctx.keepHandle);
      return;
    }
    const taken = ctx.multiTurn?.kept;
    // The lease is not warm any more (committed cold, requeued or lost): nothing to release.
    if (taken && warmPool) return warmPool.discard(taken, 'not_reusable', false);
    await ctx.cli?.close(ctx.config.cli.killGraceMs);
    const keep = ctx.keepAfterCommit;
    const tidy = async () => {
      await keep?.();
      await removeAgentDir(ctx.runDir);
    };
    // After the ack: the turn's outcome is stored already, and nothing of this is part of it.
    if (ctx.deps.afterTurns) ctx.deps.afterTurns.add(ctx.conversation.id, tidy);
    else await tidy();
  }
}
