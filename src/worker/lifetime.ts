// How long a worker process lives: for ever (the long-lived worker), or until it has run
// `maxTurns` turns, or until it has been idle for `idleExitMs` (ephemeral workers,
// `agentq worker --once`). Only a claimed turn counts: a job whose turn was not ours to
// run (not the head, lease held elsewhere, already done) is no turn.
//
// The worker asks reserve() before it claims, so that with several jobs in flight no
// more than `maxTurns` claims can ever be made; the last claim stops fetching at once
// (onLastClaim), and the end of the last attempt ends the worker (onDone).

export type LifetimeEnd = 'max_turns' | 'idle';

export interface LifetimeOptions {
  /** Turns to run before the worker stops on its own. Default: no limit. */
  maxTurns?: number;
  /** Stop after this long with no turn running (from start, and after each turn). Default: never. */
  idleExitMs?: number;
}

export class WorkerLifetime {
  private reserved = 0;
  private claimed = 0;
  private running = 0;
  private idleTimer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    private readonly options: LifetimeOptions,
    private readonly hooks: { onLastClaim: () => void; onDone: (end: LifetimeEnd) => void },
  ) {}

  /** The worker is taking jobs: the idle clock starts. */
  started(): void {
    this.armIdle();
  }

  /** Before a claim: false when every allowed turn is taken (hand the job back untouched). */
  reserve(): boolean {
    if (this.ended || (this.options.maxTurns !== undefined && this.reserved >= this.options.maxTurns)) return false;
    this.reserved++;
    return true;
  }

  /** The reserved claim did not make a turn ours. */
  release(): void {
    this.reserved--;
  }

  /** A reserved claim made a turn ours: it runs now. */
  claimedTurn(): void {
    this.claimed++;
    this.running++;
    clearTimeout(this.idleTimer);
    if (this.claimed === this.options.maxTurns) this.hooks.onLastClaim();
  }

  /** A claimed turn's attempt ended: committed, handed back, or lost. */
  attemptEnded(): void {
    this.running--;
    if (this.running > 0 || this.ended) return;
    if (this.claimed === this.options.maxTurns) this.end('max_turns');
    else this.armIdle();
  }

  /** The worker is stopping for another reason (a signal): no timer may fire any more. */
  dispose(): void {
    this.ended = true;
    clearTimeout(this.idleTimer);
  }

  private armIdle(): void {
    const ms = this.options.idleExitMs;
    if (ms === undefined || this.ended) return;
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => {
      if (this.running === 0 && this.reserved === this.claimed) this.end('idle');
      // A claim is under way: the turn it makes resets the clock when it ends, or its release re-arms it.
      else this.armIdleLater();
    }, ms);
  }

  private armIdleLater(): void {
    // Rare: the idle deadline fell between a fetch and its claim. Look again shortly.
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(() => this.armIdleCheck(), 50);
  }

  private armIdleCheck(): void {
    if (this.ended) return;
    if (this.running === 0 && this.reserved === this.claimed) this.end('idle');
    else if (this.running === 0) this.armIdleLater();
  }

  private end(end: LifetimeEnd): void {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.idleTimer);
    this.hooks.onDone(end);
  }
}
