// One blocking Redis connection for every live event stream an API process follows.
// Each SSE reader asks for "the entries of stream K after id I, waiting up to B ms"; the
// reader batches every pending ask into one XREAD BLOCK over all their keys. A new ask
// arriving while that XREAD blocks interrupts it (CLIENT UNBLOCK from a second
// connection) so it joins the next round at once. Without this, each open stream held a
// connection of its own: a thousand viewers were a thousand Redis clients.
import type { Redis } from 'ioredis';

/** XREAD's answer for one key: `[id, [field, value, ...]]` entries, oldest first. */
export type StreamEntries = [id: string, fields: string[]][];

type RawReply = [key: string, entries: StreamEntries][] | null;

interface Ask {
  key: string;
  lastId: string;
  count: number;
  deadline: number;
  resolve: (entries: StreamEntries | null) => void;
  reject: (err: unknown) => void;
  cleanup: () => void;
}

/** Compares stream ids (`<ms>-<seq>`, or `0`) numerically. */
function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const ms = BigInt(am) - BigInt(bm);
  if (ms !== 0n) return ms < 0n ? -1 : 1;
  const s = BigInt(as) - BigInt(bs);
  return s === 0n ? 0 : s < 0n ? -1 : 1;
}

/** Longest single XREAD block: bounds how late an expired ask is answered if nothing interrupts. */
const MAX_BLOCK_MS = 5000;

export class SharedStreamReader {
  private conn: Redis | undefined;
  private connId: number | undefined;
  private readonly asks = new Set<Ask>();
  private looping = false;
  private blocking = false;
  private unblockSent = false;
  private closed = false;
  /** Counts XREAD rounds, so a late retry of CLIENT UNBLOCK never wakes a later round. */
  private round = 0;

  /**
   * @param connect opens the blocking connection (once; ioredis reconnects it).
   * @param control any other connection to the same server, for CLIENT UNBLOCK.
   */
  constructor(
    private readonly connect: () => Redis,
    private readonly control: Redis,
  ) {}

  /** Open asks right now (for tests and metrics). */
  get pending(): number {
    return this.asks.size;
  }

  /**
   * Entries of `key` after `lastId` (at most `count`), waiting up to `blockMs` for some:
   * null when none came in time or `signal` fired. Rejects when Redis fails.
   */
  read(key: string, lastId: string, options: { count: number; blockMs: number; signal?: AbortSignal }): Promise<StreamEntries | null> {
    if (this.closed) return Promise.resolve(null);
    if (options.signal?.aborted) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const onAbort = () => {
        this.asks.delete(ask);
        resolve(null);
      };
      const ask: Ask = {
        key,
        lastId,
        count: options.count,
        deadline: performance.now() + options.blockMs,
        resolve,
        reject,
        cleanup: () => options.signal?.removeEventListener('abort', onAbort),
      };
      options.signal?.addEventListener('abort', onAbort, { once: true });
      this.asks.add(ask);
      this.interrupt();
      void this.loop();
    });
  }

  /** Answers every open ask with null and closes the blocking connection. */
  close(): void {
    this.closed = true;
    for (const a of this.asks) this.settle(a, null);
    this.conn?.disconnect();
    this.conn = undefined;
  }

  private settle(ask: Ask, entries: StreamEntries | null, err?: unknown): void {
    this.asks.delete(ask);
    ask.cleanup();
    if (err !== undefined) ask.reject(err);
    else ask.resolve(entries);
  }

  /** A new ask while XREAD blocks: wake it so the next round includes the new key. */
  private interrupt(): void {
    if (!this.blocking || this.unblockSent || this.connId === undefined) return;
    this.unblockSent = true;
    this.unblock(this.round, this.connId, 0);
  }

  /**
   * CLIENT UNBLOCK answers 0 when the XREAD has not reached Redis yet (the two connections
   * race): try again shortly while the same round still blocks. Worst case (Redis away)
   * the ask waits for the round's block to time out.
   */
  private unblock(round: number, id: number, tries: number): void {
    this.control
      .client('UNBLOCK', id)
      .then((n) => {
        if (Number(n) === 0 && this.blocking && this.round === round && tries < 50) {
          setTimeout(() => this.blocking && this.round === round && this.unblock(round, id, tries + 1), 2);
        }
      })
      .catch(() => undefined);
  }

  private connection(): Redis {
    if (!this.conn) {
      const conn = this.connect();
      // A reconnected client has a new id: fetch it again before the next block.
      conn.on('ready', () => (this.connId = undefined));
      conn.on('error', () => undefined);
      this.conn = conn;
    }
    return this.conn;
  }

  private async loop(): Promise<void> {
    if (this.looping) return;
    this.looping = true;
    try {
      while (!this.closed && this.asks.size > 0) {
        const conn = this.connection();
        let reply: RawReply;
        try {
          this.connId ??= Number(await conn.client('ID'));
          // From here to the XREAD nothing awaits: an ask that arrives later finds `blocking` set and interrupts.
          const now = performance.now();
          // Asks past their deadline get null; the rest share one XREAD, each key from the smallest id asked.
          const from = new Map<string, string>();
          let deadline = Infinity;
          let count = 1;
          for (const a of [...this.asks]) {
            if (a.deadline <= now) {
              this.settle(a, null);
              continue;
            }
            deadline = Math.min(deadline, a.deadline);
            count = Math.max(count, a.count);
            const f = from.get(a.key);
            if (f === undefined || compareIds(a.lastId, f) < 0) from.set(a.key, a.lastId);
          }
          if (from.size === 0) break;
          const keys = [...from.keys()];
          const blockMs = Math.max(1, Math.min(MAX_BLOCK_MS, Math.ceil(deadline - now)));
          this.round++;
          this.blocking = true;
          this.unblockSent = false;
          reply = (await conn.xread('COUNT', count, 'BLOCK', blockMs, 'STREAMS', ...keys, ...keys.map((k) => from.get(k)!))) as RawReply;
        } catch (err) {
          if (this.closed) break;
          this.connId = undefined;
          // Everyone waiting hears of it (feeds fall back to Postgres) and asks again later.
          for (const a of [...this.asks]) this.settle(a, null, err);
          break;
        } finally {
          this.blocking = false;
        }
        const byKey = new Map((reply ?? []).map(([k, entries]) => [k, entries]));
        for (const a of [...this.asks]) {
          const entries = byKey.get(a.key);
          if (!entries) continue;
          const mine = entries.filter(([id]) => compareIds(id, a.lastId) > 0).slice(0, a.count);
          if (mine.length > 0) this.settle(a, mine);
        }
      }
    } finally {
      this.looping = false;
    }
  }
}
