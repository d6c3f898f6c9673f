// The worker's side of the live feed: every event of a running attempt is appended to the
// turn's Redis Stream the moment it arrives (Postgres gets it only at the next
// checkpoint), and an end marker follows the commit. Publishing never waits and never
// throws: a failed append is logged (at most once a minute) and dropped, and readers
// fill the hole from Postgres. Postgres stays the record.
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

export class LivePublisher implements LiveEventSink {
  private lastWarnAt = 0;
  /** When each turn's stream had its idle expiry last set (Date.now()). */
  private readonly expirySetAt = new Map<string, number>();
  private readonly dropped = (err: unknown) => {
    const now = Date.now();
    if (now - this.lastWarnAt < WARN_EVERY_MS) return;
    this.lastWarnAt = now;
    this.log.warn({ err }, 'live events: appending to Redis failed; SSE readers fall back to Postgres checkpoints');
  };

  private constructor(
    /** Commands only; without an offline queue, so appends fail at once while Redis is away. */
    readonly redis: Redis,
    private readonly queue: QueueRef,
    private readonly log: Logger,
  ) {}

  /** Connects (a failure is logged: the worker runs turns without the live feed until Redis is back). */
  static async connect(redisUrl: string, queue: QueueRef, log: Logger): Promise<LivePublisher> {
    // Auto-pipelining: the XADD and PEXPIRE of an event, and the events of one stdout read,
    // leave in one socket write instead of one each (fewer syscalls per turn).
    const redis = new Redis(redisUrl, {
      lazyConnect: true,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      commandTimeout: COMMAND_TIMEOUT_MS,
    });
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
    this.redis.disconnect();
  }

  /** `ttlMs` undefined: the stream's expiry stays as it was set. */
  private append(turnId: string, fields: string[], ttlMs: number | undefined): void {
    const key = liveStreamKey(this.queue, turnId);
    // One connection sends commands in order, so entries keep the order of the calls.
    this.redis.xadd(key, 'MAXLEN', '~', String(LIVE_STREAM_MAX_LEN), '*', ...fields).catch(this.dropped);
    if (ttlMs !== undefined) this.redis.pexpire(key, ttlMs).catch(this.dropped);
  }
}
