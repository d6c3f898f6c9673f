// Workers seen recently: each worker writes its id into one sorted set of the queue, scored
// with the Redis server's clock, when it starts and every HEARTBEAT_INTERVAL_MS, and
// removes itself when it stops. Readers count the ids seen within the window, again by
// the Redis clock, so skewed worker clocks do not matter. Chosen over BullMQ's
// getWorkers() (CLIENT LIST), which managed Redis services often forbid and which only
// sees connected clients; a killed worker here drops out of the count after the window.
import type { Redis } from 'ioredis';
import type { Config } from '../config.js';

type QueueRef = Pick<Config, 'queueName' | 'queuePrefix'>;

/** How often a running worker refreshes its entry. */
export const HEARTBEAT_INTERVAL_MS = 10_000;
/** A worker counts as seen if it refreshed within this window (three heartbeats). */
export const WORKERS_SEEN_WINDOW_MS = 3 * HEARTBEAT_INTERVAL_MS;
/** Entries older than this are deleted by the next heartbeat of any worker. */
const FORGET_AFTER_MS = 24 * 60 * 60 * 1000;

/** The sorted set of worker ids (score: last heartbeat, ms by the Redis clock); under the queue's prefix like every agentq key. */
export function workersKey(queue: QueueRef): string {
  return `${queue.queuePrefix}:${queue.queueName}:agentq:workers`;
}

const BEAT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
return now`;

const COUNT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], now - tonumber(ARGV[1]), '+inf')`;

/** Records that `workerId` is alive now. */
export async function heartbeat(redis: Redis, queue: QueueRef, workerId: string): Promise<void> {
  await redis.eval(BEAT, 1, workersKey(queue), workerId, FORGET_AFTER_MS);
}

/** Removes `workerId` (it stopped). */
export async function forgetWorker(redis: Redis, queue: QueueRef, workerId: string): Promise<void> {
  await redis.zrem(workersKey(queue), workerId);
}

/** Ids of the workers that sent a heartbeat within `windowMs`, sorted. */
export async function workersSeen(redis: Redis, queue: QueueRef, windowMs = WORKERS_SEEN_WINDOW_MS): Promise<string[]> {
  const ids = (await redis.eval(COUNT, 1, workersKey(queue), windowMs)) as string[];
  return [...ids].sort();
}
