// An attempt's hold on its conversation: the fencing token its claim got, the lease it
// renews, and the transactions that commit only while that token is still current.
// Losing the lease (another worker took the conversation over) is sticky: the attempt is
// told once and writes nothing more.
import { StaleLeaseError } from '../errors.js';
import type { StoreDb, StoreTx } from '../store/db.js';
import { lazyTransaction } from '../store/lazyTransaction.js';
import { assertFence, renewLease, type Fence } from '../store/turns.js';

export interface LeaseHooks {
  /** The lease is gone (called once): stop the run, write nothing more. */
  onLost(): void;
  /** A renewal found a cancel request on the turn. */
  onCancelRequested(): void;
  /** A renewal failed (Postgres unreachable): the run goes on, the commit waits for it. */
  onRenewError(err: unknown): void;
}

/** What a fenced transaction's work gets. */
export interface FencedTx {
  tx: StoreTx;
  /** Checks the fence now (before the first write to the conversation or turn rows). */
  checkFence: () => Promise<void>;
  /** For a statement of the work that checks the fence itself (and throws StaleLeaseError). */
  markFenceChecked: () => void;
  /** Runs `f` once the transaction committed: what its work learned about the store. */
  afterCommit: (f: () => void) => void;
  /**
   * The next statement is the work's last (and checks the fence itself): when it is also
   * its first, it runs alone, one round trip without BEGIN and COMMIT (lazyTransaction).
   */
  lastStatementNext: () => void;
}

export type FencedWork<T> = (fenced: FencedTx) => Promise<T>;

export interface LeaseGuardOptions {
  db: StoreDb;
  fence: Fence;
  turnId: string;
  leaseMs: number;
  /** performance.now() taken before the claim that granted the lease. */
  claimedAt: number;
  hooks: LeaseHooks;
}

export class LeaseGuard {
  readonly fence: Fence;
  private readonly db: StoreDb;
  private readonly turnId: string;
  private readonly leaseMs: number;
  private readonly hooks: LeaseHooks;
  private lostFlag = false;
  /** performance.now() when our lease was last granted or renewed (the request's start). */
  private confirmedAt: number;

  constructor({ db, fence, turnId, leaseMs, claimedAt, hooks }: LeaseGuardOptions) {
    this.db = db;
    this.fence = fence;
    this.turnId = turnId;
    this.leaseMs = leaseMs;
    this.hooks = hooks;
    this.confirmedAt = claimedAt;
  }

  get lost(): boolean {
    return this.lostFlag;
  }

  /** Marks the lease lost (a refused write, a renewal that was not ours); tells the hooks once. */
  lose(): void {
    if (this.lostFlag) return;
    this.lostFlag = true;
    this.hooks.onLost();
  }

  /**
   * Makes sure the lease is still ours before a step with effects outside Postgres. No
   * other worker can take a lease before it expires, so if our last claim or renewal began
   * less than half a lease ago there is nothing to ask; a worker that was frozen (SIGSTOP,
   * a stalled VM) sees the time that passed and asks. Throws StaleLeaseError if it is lost.
   */
  async ensure(): Promise<void> {
    if (performance.now() - this.confirmedAt < this.leaseMs / 2) return;
    const asked = performance.now();
    const r = await renewLease(this.db, this.fence, this.turnId, this.leaseMs);
    if (r.ours) this.confirmedAt = asked;
    if (!r.ours) {
      this.lose();
      throw new StaleLeaseError(this.fence.conversationId, this.fence.fencingToken, -1);
    }
  }

  /** One renewal, on a timer while the CLI runs. Never throws. */
  async heartbeat(): Promise<void> {
    try {
      const asked = performance.now();
      const r = await renewLease(this.db, this.fence, this.turnId, this.leaseMs);
      if (r.ours) this.confirmedAt = asked;
      if (!r.ours) this.lose();
      else if (r.cancelRequested) this.hooks.onCancelRequested();
    } catch (err) {
      this.hooks.onRenewError(err);
    }
  }

  /**
   * Runs `work` in a transaction that commits only if our fencing token is still current.
   * The check locks the conversation row until COMMIT, so no claim can slip in between
   * it and the commit; a claim that came before it changed the token and the whole
   * transaction rolls back. `work` calls `checkFence()` before its first write to the
   * conversation or turn rows (so every transaction takes the session row before the
   * conversation row, then the turn row: one lock order, no deadlock); otherwise it is
   * checked last. Either way the conversation row, which producers lock to enqueue, is held
   * only for the end of the transaction, not while session bytes are read and written.
   */
  async fenced<T>(work: FencedWork<T>): Promise<T> {
    // What the work learned about the store, applied only once the transaction committed
    // (a rolled-back or retried transaction must not leave "already stored" behind).
    let committed: (() => void)[] = [];
    const result = await lazyTransaction(this.db, async (tx, lastStatementNext) => {
      committed = [];
      let checked = false;
      const checkFence = async () => {
        if (checked) return;
        await assertFence(tx, this.fence);
        checked = true;
      };
      const markFenceChecked = () => {
        checked = true;
      };
      const value = await work({ tx, checkFence, markFenceChecked, afterCommit: (f) => committed.push(f), lastStatementNext });
      await checkFence();
      return value;
    });
    for (const f of committed) f();
    return result;
  }
}
