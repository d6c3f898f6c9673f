// The worker's job processor: claim → (hydrate → run → checkpoint → commit, in ./attempt.ts)
// → ack. A job whose turn is not ours to run now is acknowledged (done, not the head) or
// handed back (later, warm elsewhere); a warm conversation's turn is first offered to the
// worker that keeps its CLI. Turns that worker takes over arrive through acceptHandoff.
import type { Job } from 'bullmq';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { dispatchTurn } from '../queue/dispatch.js';
import { parseTurnJob, type TurnJobData } from '../queue/jobs.js';
import { claimTurn, type ClaimResult } from '../store/turns.js';
import type { AfterTurns } from './afterTurns.js';
import { Attempt, type AttemptVerdict } from './attempt.js';
import { endJob, type JobEnd } from './jobEnd.js';
import type { WorkerLifetime } from './lifetime.js';
import type { LocalCache } from './localCache.js';
import type { WorkerResources } from './resources.js';
import { warmIdleMsFor, warmOptionsKey } from './warmPolicy.js';
import type { TurnEnding, WorkerEnd, WorkerOptions } from './workerTypes.js';
import { approvalPolicyOf } from './gate.js';

/** An options key no kept process has (warmOptionsKey gives JSON arrays): the kept process is let go. */
const NEVER_REUSED = 'gated';

export interface TurnJobsDeps {
  config: Config;
  log: Logger;
  workerId: string;
  options: WorkerOptions;
  resources: WorkerResources;
  cache: LocalCache;
  /** What follows each commit, after its ack. */
  afterTurns: AfterTurns;
  lifetime: WorkerLifetime;
  /** The attempts running here, by turn id (for cancel and mid-run input). */
  attempts: Map<string, Attempt>;
  /** Every claimed turn's ending, in order. */
  endings: WorkerEnd['turns'];
  /** The worker is stopping: start no CLI, keep nothing warm, take no handoff. */
  stopping: () => boolean;
}

type Claimed = Extract<ClaimResult, { kind: 'claimed' }>;

export class TurnJobs {
  /** Turns taken over from another worker's request (no BullMQ job here): stop() waits for them. */
  readonly handoffRuns = new Set<Promise<void>>();

  constructor(private readonly deps: TurnJobsDeps) {}

  /** BullMQ's processor for a turn job. */
  readonly process = async (job: Job<TurnJobData>, token?: string): Promise<string> => {
    const { turnId } = parseTurnJob(job.name, job.data);
    const { lifetime } = this.deps;
    // Every turn this worker may run is taken: leave the job to other workers, untouched.
    if (!lifetime.reserve()) return endJob(job, token, { kind: 'hand_back', runAt: Date.now(), reason: 'this worker has taken its last turn' });
    let reserved = true;
    try {
      const end = await this.claimAndRun(turnId, () => {
        reserved = false;
        lifetime.claimedTurn();
      });
      return await endJob(job, token, end);
    } finally {
      if (reserved) lifetime.release();
    }
  };

  /**
   * Another worker fetched a turn of a conversation kept warm here and asks us to run it.
   * Taken only if its process is here and idle and this worker is not stopping; the turn is
   * claimed as any other (fencing included). Its job stays with the asking worker, delayed:
   * a requeue here is picked up when that job comes due.
   */
  readonly acceptHandoff = (turnId: string, conversationId: string): boolean => {
    const { lifetime, resources, log, config, workerId } = this.deps;
    if (this.deps.stopping() || !resources.warmPool?.hasIdle(conversationId) || !lifetime.reserve()) return false;
    const run = (async () => {
      let reserved = true;
      try {
        const claimedAt = performance.now();
        const claim = await claimTurn(resources.db, { turnId, workerId, leaseMs: config.worker.leaseMs });
        if (claim.kind !== 'claimed') return;
        await this.runClaimed(claim, claimedAt, () => {
          reserved = false;
          lifetime.claimedTurn();
        });
      } catch (err) {
        log.warn({ err, turnId }, 'a handed-over warm turn failed; its job runs it again');
      } finally {
        if (reserved) lifetime.release();
      }
    })();
    this.handoffRuns.add(run);
    void run.finally(() => this.handoffRuns.delete(run));
    return true;
  };

  /** Claims the turn and runs it, or says why not; `claimed` is called once the lease is ours. */
  private async claimAndRun(turnId: string, claimed: () => void): Promise<JobEnd> {
    const { config, resources, workerId, log } = this.deps;
    const { leaseMs, warmHandoffTimeoutMs, warmHandoffDelayMs } = config.worker;
    const claimedAt = performance.now();
    let claim = await claimTurn(resources.db, { turnId, workerId, leaseMs });
    if (claim.kind === 'warm') {
      // Another worker keeps the conversation's CLI running: it takes the turn, or we take
      // the lease over (it is dead, frozen or busy) and run the turn cold.
      const answer = await resources.handoff.ask(claim.owner, turnId, claim.conversationId, warmHandoffTimeoutMs);
      this.deps.options.observeWarm?.handoff?.(answer);
      // Its commit comes before this job completes: a later delivery finds the turn done.
      if (answer === 'accepted') return { kind: 'hand_back', runAt: Date.now() + warmHandoffDelayMs, reason: `handed to ${claim.owner}, which keeps the conversation warm` };
      log.info({ turnId, owner: claim.owner, answer }, 'the warm owner did not take the turn: taking the conversation over');
      claim = await claimTurn(resources.db, { turnId, workerId, leaseMs, stealWarmFrom: claim.owner });
    }
    switch (claim.kind) {
      case 'done':
      case 'not_head':
        return { kind: 'ack', result: claim.kind };
      case 'later':
        return { kind: 'hand_back', runAt: Math.max(Date.now(), claim.retryAt.getTime()) + 50, reason: claim.reason };
      case 'warm':
        return { kind: 'hand_back', runAt: Date.now() + warmHandoffDelayMs + 50, reason: 'the conversation is warm elsewhere' };
      case 'claimed': {
        const verdict = await this.runClaimed(claim, claimedAt, claimed);
        if (verdict.kind === 'requeued') return { kind: 'hand_back', runAt: verdict.runAt.getTime(), reason: 'requeued' };
        return { kind: 'ack', result: verdict.kind === 'committed' ? verdict.status : verdict.kind };
      }
    }
  }

  /** Runs a claimed turn to its verdict; after a commit, dispatches the conversation's next turn. */
  private async runClaimed(claim: Claimed, claimedAt: number, claimed: () => void): Promise<AttemptVerdict> {
    const { config, resources, options, attempts, lifetime, endings, cache, afterTurns, log, workerId } = this.deps;
    const { warmPool, live } = resources;
    const turnId = claim.turn.id;
    const turnOptions = (claim.turn.options ?? {}) as Record<string, unknown>;
    const optionsKey = warmOptionsKey(turnOptions);
    // A gated turn runs cold: its gate's decisions are given to each CLI process when it
    // starts (./gate.ts), and a process kept from an ungated turn has no gate at all (the
    // policy may be the conversation's, set after that turn): it is let go, never used.
    const gated = approvalPolicyOf(claim.turn, claim.conversation) !== undefined || claim.turn.approvalRounds > 0;
    // A process kept here is used only if it is still current (claimed from our own warm lease).
    const handle = await warmPool?.take(claim.conversation.id, claim.warmToken, gated ? NEVER_REUSED : optionsKey);
    const keepIdleMs = warmPool && !this.deps.stopping() && !gated ? warmIdleMsFor(turnOptions, config) : undefined;
    if (handle || keepIdleMs !== undefined) options.observeWarm?.turn?.(handle ? 'hit' : 'miss');
    const observer = options.observeAttempt?.({
      turnId,
      conversationId: claim.conversation.externalId,
      tenantId: claim.conversation.tenantId,
      attempt: claim.attempt,
      claimMs: performance.now() - claimedAt,
    });
    const multiTurn = handle || keepIdleMs !== undefined ? { kept: handle, keepIdleMs, optionsKey } : undefined;
    const settled = multiTurn ? warmPool?.begin(claim.conversation.id) : undefined;
    const deps = { config, db: resources.db, cache, runner: resources.runner, log, workerId, live: live.publisher, warmPool, observer, afterTurns };
    const attempt = new Attempt({ deps, claim, claimedAt, multiTurn });
    claimed();
    attempts.set(turnId, attempt);
    // Shutdown may have begun between the fetch and here: do not start a CLI then.
    if (this.deps.stopping()) attempt.abort('shutdown');
    let verdict: AttemptVerdict | undefined;
    try {
      verdict = await attempt.run();
    } finally {
      settled?.();
      attempts.delete(turnId);
      observer?.ended?.(verdict, performance.now() - claimedAt);
      endings.push({ turnId, ending: verdict === undefined ? 'error' : verdict.kind === 'committed' ? (verdict.status as TurnEnding) : verdict.kind });
      lifetime.attemptEnded();
    }
    // A turn that waits for an approval is not over: its live stream goes on when it runs again.
    if (verdict.kind === 'committed' && verdict.status !== 'awaiting_approval') {
      // SSE readers of the turn stop here (src/live/feed.ts).
      live.publisher.finished(turnId, verdict.status);
      const next = verdict.next;
      // After the commit: if this add is lost, the reconciler dispatches it.
      if (next) await dispatchTurn(resources.queue, next).catch((err: unknown) => log.warn({ err, turnId: next.id }, 'dispatch of the next turn failed'));
    }
    return verdict;
  }
}
