// The worker's side of the live feed: every event of a running attempt is appended to the
// turn's Redis Stream as it arrives, those of one tick in one command (Postgres gets them
// only at the next checkpoint), and an end marker follows the commit. Publishing never
// waits and never throws: a failed append is logged (at most once a minute) and dropped,
// and readers fill the hole from Postgres. Postgres stays the record.
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import {
  LIVE_MAX_PAYLOAD_BYTES,
  LIVE_STREAM_ENDED_TTL_MS,
  LIVE_STREAM_IDLE_TTL_MS,
  LIVE_STREAM_MAX_LEN,
  liveStreamKey,
  type QueueRef,
} from './keys.js';
import { endFields, eventFields } from './streamEntry.js';

/** What an attempt needs: fire-and-forget appends. */
export interface LiveEventSink {
  event(turnId: string, attempt: number, seq: number, type: string, payload: string): void;
}

const WARN_EVERY_MS = 60_000;
/**
 * A stream's idle expiry is pushed back at most this often while events keep coming (it is
 * LIVE_STREAM_IDLE_TTL_MS, a day): one PEXPIRE per turn and minute instead of one per event.
 */
const EXPIRY_REFRESH_MS = 60_000;
/** Turns whose last refresh is remembered; past this the memory is dropped (the next event of each refreshes again). */
const EXPIRY_MEMORY_MAX = 10_000;
/** A Redis that stops answering must not pile up events in this process for long. */
const COMMAND_TIMEOUT_MS = 5000;

/**
 * Appends a batch of entries to one stream, and sets its expiry: one command instead of an
 * XADD per entry and a PEXPIRE. KEYS[1]: the stream; ARGV: its MAXLEN (approximate), the
 * expiry in ms ('0': left as it is), then for each entry its field count and its fields.
 */
const APPEND_SCRIPT = `
local i = 3
while i <= #ARGV do
  local n = tonumber(ARGV[i])
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(ARGV, i + 1, i + n))
  i = i + n + 1
end
if ARGV[2] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0`;

/** The publisher's connection, with the append script as a command (EVALSHA; EVAL when Redis lost its script cache). */
type PublisherRedis = Redis & { agentqLiveAppend(key: string, maxLen: string, ttlMs: string, ...entries: string[]): Promise<unknown> };

/** Entries waiting for the next append of one stream. */
interface Pending {
  /** For each entry: its field count, then its fields. */
  entries: string[];
  /** The last expiry asked for; undefined: left as it is. */
  ttlMs: number | undefined;
}

export class LivePublisher implements LiveEventSink {
  private lastWarnAt = 0;
  /** When each turn's stream had its idle expiry last set (Date.now()). */
  private readonly expirySetAt = new Map<string, number>();
  /** By stream, in the order of the calls: sent together once this tick's events are in. */
  private readonly pending = new Map<string, Pending>();
  private flushQueued = false;
  private readonly flush = () => {
    this.flushQueued = false;
    // One connection sends commands in order, so entries keep the order of the calls.
    for (const [key, p] of this.pending) {
      this.redis.agentqLiveAppend(key, String(LIVE_STREAM_MAX_LEN), String(p.ttlMs ?? 0), ...p.entries).catch(this.dropped);
    }
    this.pending.clear();
  };
  private readonly dropped = (err: unknown) => {
    const now = Date.now();
    if (now - this.lastWarnAt < WARN_EVERY_MS) return;
    this.lastWarnAt = now;
    this.log.warn({ err }, 'live events: appending to Redis failed; SSE readers fall back to Postgres checkpoints');
  };

  private constructor(
    /** Commands only; without an offline queue, so appends fail at once while Redis is away. */
    readonly redis: PublisherRedis,
    private readonly queue: QueueRef,
    private readonly log: Logger,
  ) {}

  /** Connects (a failure is logged: the worker runs turns without the live feed until Redis is back). */
  static async connect(redisUrl: string, queue: QueueRef, log: Logger): Promise<LivePublisher> {
    // Auto-pipelining: the appends of several streams leave in one socket write.
    const redis = new Redis(redisUrl, {
      lazyConnect: true,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      commandTimeout: COMMAND_TIMEOUT_MS,
    }) as PublisherRedis;
    redis.defineCommand('agentqLiveAppend', { numberOfKeys: 1, lua: APPEND_SCRIPT });
    const publisher = new LivePublisher(redis, queue, log);
    // Errors surface through the failed commands; the connection reconnects by itself.
    redis.on('error', () => undefined);
    await redis.connect().catch(publisher.dropped);
    return publisher;
  }

  event(turnId: string, attempt: number, seq: number, type: string, payload: string): void {
    // Too large for the stream: readers get it from Postgres (they see the hole it leaves).
    if (payload.length > LIVE_MAX_PAYLOAD_BYTES / 3 && Buffer.byteLength(payload) > LIVE_MAX_PAYLOAD_BYTES) return;
    const now = Date.now();
    const last = this.expirySetAt.get(turnId);
    const refresh = last === undefined || now - last >= EXPIRY_REFRESH_MS;
    if (refresh) {
      if (this.expirySetAt.size >= EXPIRY_MEMORY_MAX) this.expirySetAt.clear();
      this.expirySetAt.set(turnId, now);
    }
    this.append(turnId, eventFields(attempt, seq, type, payload), refresh ? LIVE_STREAM_IDLE_TTL_MS : undefined);
  }

  /** After the commit of a terminal status: readers stop here. */
  finished(turnId: string, status: string): void {
    this.expirySetAt.delete(turnId);
    this.append(turnId, endFields(status), LIVE_STREAM_ENDED_TTL_MS);
  }

  /** Publishes on a channel through this connection (input replies); fire-and-forget. */
  publish(channel: string, message: string): void {
    this.redis.publish(channel, message).catch(this.dropped);
  }

  close(): void {
    this.flush();
    this.redis.disconnect();
  }

  /**
   * Queues an entry for its stream's next append, made once this tick's events are in
   * (the events of one stdout read, the end marker with them): each command costs this
   * process and Redis more than the entries it carries (docs/benchmarks.md, sixteenth
   * session). `ttlMs` undefined: the stream's expiry stays as it was set.
   */
  private append(turnId: string, fields: string[], ttlMs: number | undefined): void {
    const key = liveStreamKey(this.queue, turnId);
    let p = this.pending.get(key);
    if (!p) {
      p = { entries: [], ttlMs: undefined };
      this.pending.set(key, p);
    }
    p.entries.push(String(fields.length), ...fields);
    if (ttlMs !== undefined) p.ttlMs = ttlMs;
    if (!this.flushQueued) {
      this.flushQueued = true;
      setImmediate(this.flush);
    }
  }
}
