// Redis names and limits of the live event feed. Every name sits under the queue's BullMQ
// prefix (as the cancel channel does), so deployments with separate queue names never
// see each other's turns.
import type { Config } from '../config.js';

/** The queue's name and key prefix (the config satisfies it). */
export type QueueRef = Pick<Config, 'queueName' | 'queuePrefix'>;

/** The per-turn Redis Stream that carries a running turn's events as they arrive. */
export function liveStreamKey(queue: QueueRef, turnId: string): string {
  return `${queue.queuePrefix}:${queue.queueName}:agentq:live:${turnId}`;
}

/** Channel on which the API asks the worker that holds a turn to deliver a user message. */
export function inputRequestChannel(queue: QueueRef): string {
  return `${queue.queuePrefix}:${queue.queueName}:agentq:input`;
}

/** Channel on which workers answer input requests (each API process filters its own ids). */
export function inputReplyChannel(queue: QueueRef): string {
  return `${queue.queuePrefix}:${queue.queueName}:agentq:input-reply`;
}

/**
 * Approximate cap on a stream's entries. Readers only need the events since the last
 * checkpoint (older ones are in Postgres), and a reader that finds a hole refills it
 * from Postgres, so trimming is always safe.
 */
export const LIVE_STREAM_MAX_LEN = 1000;

/** Events with a longer payload are not put on the stream; readers get them from Postgres at the next checkpoint. */
export const LIVE_MAX_PAYLOAD_BYTES = 64 * 1024;

/** A stream expires this long after its last event, should its end marker never come (worker killed). */
export const LIVE_STREAM_IDLE_TTL_MS = 24 * 60 * 60 * 1000;

/** A stream stays this long after its end marker, for readers that connect late (the rest comes from Postgres). */
export const LIVE_STREAM_ENDED_TTL_MS = 10 * 60 * 1000;
