// The conversations a worker keeps warm: each one's CLI process (waiting on stdin for the
// next turn), the per-process config dir it writes its session file in, and the warm
// lease that keeps other workers from running the conversation meanwhile. An idle entry
// is let go after its idleMs, when its CLI exits, when its lease is found lost, when the
// pool is over its cap (least recently used first) and on shutdown; letting go closes the
// CLI, removes its dir and releases the warm lease if it is still ours.
import { removeAgentDir } from '../agentFiles/removeTree.js';
import type { Logger } from 'pino';
import type { StoreDb } from '../store/db.js';
import type { Fence } from '../store/turns.js';
import { releaseWarmLease, renewWarmLease } from '../store/warmLease.js';
import type { MultiTurnCli } from './multiTurnCli.js';

/** What a committed warm turn hands over to the pool, and a warm claim takes back. */
export interface WarmHandle {
  /** The conversation's internal id. */
  conversationId: string;
  cli: MultiTurnCli;
  /** The per-process dir (config dir, tmp) the CLI runs with; removed when let go. */
  runDir: string;
  /** The session the process works in. */
  sessionId: string;
  /** The warm lease: the token and owner of the commit that kept it. */
  fence: Fence;
  /** The stored workspace archive's digest after that commit (null: none). */
  workspaceSha: string | null;
  /** The turn options the process was started with; a turn with others runs cold. */
  optionsKey: string;
  idleMs: number;
}

export type WarmReleaseReason = 'idle' | 'cli_exited' | 'lease_lost' | 'evicted' | 'shutdown' | 'stale' | 'not_reusable';

export interface WarmPoolOptions {
  db: StoreDb;
  log: Logger;
  leaseMs: number;
  /** Most warm conversations (idle and in use) this worker keeps. */
  max: number;
  killGraceMs: number;
  /** Called with the number of warm conversations whenever it changes. */
  onSize?: (n: number) => void;
  onReleased?: (reason: WarmReleaseReason) => void;
}

interface IdleEntry {
  handle: WarmHandle;
  lastUsed: number;
  timer: NodeJS.Timeout;
}

export class WarmPool {
  private readonly idle = new Map<string, IdleEntry>();
  /** Taken by a running attempt; it puts them back or lets them go. */
  private readonly inUse = new Map<string, WarmHandle>();
  private readonly closing = new Set<Promise<void>>();
  /**
   * Conversations whose attempt may still hand its process over: its commit is visible in
   * Postgres (the next turn can be claimed) a moment before the process is in the pool.
   */
  private readonly settling = new Map<string, Promise<void>>();
  private renewTimer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly o: WarmPoolOptions) {
    this.renewTimer = setInterval(() => void this.renewAll(), Math.max(200, Math.floor(o.leaseMs / 3)));
  }

  /** Warm conversations now: idle plus in use. */
  get size(): number {
    return this.idle.size + this.inUse.size;
  }

  /** True when the conversation's process is here and idle, or about to be (a handoff can be taken). */
  hasIdle(conversationId: string): boolean {
    return this.idle.has(conversationId) || this.settling.has(conversationId);
  }

  /** An attempt of the conversation that may keep its process runs; call the returned function when it is over. */
  begin(conversationId: string): () => void {
    let done!: () => void;
    const p = new Promise<void>((resolve) => (done = resolve));
    this.settling.set(conversationId, p);
    return () => {
      if (this.settling.get(conversationId) === p) this.settling.delete(conversationId);
      done();
    };
  }

  /**
   * Takes the idle process of a conversation this worker has just claimed from its own
   * warm lease (`warmToken`: the token it held). A process that does not match (another
   * token: someone else ran a turn since; other options; exited) is let go instead.
   */
  async take(conversationId: string, warmToken: number | undefined, optionsKey: string): Promise<WarmHandle | undefined> {
    // Only the claim that follows our own warm commit can use the process: wait for it to be handed over.
    if (warmToken !== undefined) await this.settling.get(conversationId);
    const entry = this.idle.get(conversationId);
    if (!entry) return undefined;
    this.idle.delete(conversationId);
    clearTimeout(entry.timer);
    const h = entry.handle;
    if (warmToken === undefined || h.fence.fencingToken !== warmToken || !h.cli.isRunning) {
      void this.letGo(h, 'stale', false);
      return undefined;
    }
    if (h.optionsKey !== optionsKey) {
      void this.letGo(h, 'not_reusable', false);
      return undefined;
    }
    this.inUse.set(conversationId, h);
    this.changed();
    return h;
  }

  /** Keeps a committed conversation warm (its lease is warm now). False when it cannot be kept: it is let go. */
  keep(h: WarmHandle): boolean {
    this.inUse.delete(h.conversationId);
    if (this.closed || !h.cli.isRunning) {
      void this.letGo(h, this.closed ? 'shutdown' : 'cli_exited', true);
      return false;
    }
    // Over the cap: the least recently used idle conversation goes first.
    while (this.size >= this.o.max && this.idle.size > 0) {
      const lru = [...this.idle.values()].sort((a, b) => a.lastUsed - b.lastUsed)[0]!;
      this.remove(lru.handle.conversationId);
      void this.letGo(lru.handle, 'evicted', true);
    }
    if (this.size >= this.o.max) {
      void this.letGo(h, 'evicted', true);
      return false;
    }
    const timer = setTimeout(() => {
      if (this.remove(h.conversationId) === h) void this.letGo(h, 'idle', true);
    }, h.idleMs);
    timer.unref();
    this.idle.set(h.conversationId, { handle: h, lastUsed: performance.now(), timer });
    void h.cli.exited.then(() => {
      if (this.idle.get(h.conversationId)?.handle === h) {
        this.remove(h.conversationId);
        void this.letGo(h, 'cli_exited', true);
      }
    });
    this.changed();
    return true;
  }

  /** Lets go of a process an attempt took (not kept warm); `release` also frees a warm lease still ours. */
  discard(h: WarmHandle, reason: WarmReleaseReason, release: boolean): Promise<void> {
    if (this.inUse.get(h.conversationId)?.cli === h.cli) this.inUse.delete(h.conversationId);
    return this.letGo(h, reason, release);
  }

  /** Shutdown: every idle conversation is let go and its lease released; waits for all of them. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.renewTimer);
    for (const id of [...this.idle.keys()]) {
      const h = this.remove(id);
      if (h) void this.letGo(h, 'shutdown', true);
    }
    while (this.closing.size > 0) await Promise.all([...this.closing]);
  }

  private remove(conversationId: string): WarmHandle | undefined {
    const entry = this.idle.get(conversationId);
    if (!entry) return undefined;
    clearTimeout(entry.timer);
    this.idle.delete(conversationId);
    return entry.handle;
  }

  private letGo(h: WarmHandle, reason: WarmReleaseReason, release: boolean): Promise<void> {
    this.o.log.debug({ conversationId: h.conversationId, reason }, 'warm conversation let go');
    this.o.onReleased?.(reason);
    const done = (async () => {
      // The lease first: another worker may start the next turn while this CLI exits.
      if (release) await releaseWarmLease(this.o.db, h.fence).catch((err: unknown) => this.o.log.warn({ err }, 'releasing a warm lease failed'));
      await h.cli.close(this.o.killGraceMs);
      await removeAgentDir(h.runDir);
    })().catch((err: unknown) => this.o.log.warn({ err, conversationId: h.conversationId }, 'letting a warm conversation go failed'));
    this.closing.add(done);
    void done.finally(() => {
      this.closing.delete(done);
      this.changed();
    });
    this.changed();
    return done;
  }

  private async renewAll(): Promise<void> {
    for (const entry of [...this.idle.values()]) {
      const h = entry.handle;
      let ours = true;
      try {
        ours = await renewWarmLease(this.o.db, h.fence, this.o.leaseMs);
      } catch (err) {
        // Postgres away: keep the process; the lease expires if this lasts, and then it is stale.
        this.o.log.warn({ err }, 'renewing a warm lease failed');
      }
      if (!ours && this.remove(h.conversationId) === h) {
        this.o.log.warn({ conversationId: h.conversationId }, 'warm lease lost to another worker: closing its CLI');
        void this.letGo(h, 'lease_lost', false);
      }
    }
  }

  private changed(): void {
    this.o.onSize?.(this.size);
  }
}
