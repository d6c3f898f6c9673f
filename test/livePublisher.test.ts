// The worker's live-event publisher (src/live/publisher.ts) against a real Redis: events
// land on the turn's stream in order with its idle expiry, the expiry is set once a
// minute per turn rather than once per event, the events of one tick go in one command
// (counted with MONITOR), and the end marker shortens it to the ended TTL.
import { randomBytes, randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LIVE_STREAM_ENDED_TTL_MS, LIVE_STREAM_IDLE_TTL_MS, liveStreamKey } from '../src/live/keys.js';
import { LivePublisher } from '../src/live/publisher.js';
import { REDIS_URL } from './helpers/agentq.js';
import { waitUntil } from './helpers/processes.js';

const queue = { queueName: `live-pub-${randomBytes(4).toString('hex')}`, queuePrefix: 'bull' };
let redis: Redis;
let publisher: LivePublisher;

beforeAll(async () => {
  redis = new Redis(REDIS_URL);
  publisher = await LivePublisher.connect(REDIS_URL, queue, pino({ level: 'silent' }));
});
afterAll(async () => {
  const keys = await redis.keys(`bull:${queue.queueName}:*`);
  if (keys.length) await redis.del(...keys);
  publisher.close();
  redis.disconnect();
});

describe('live publisher', () => {
  it('appends every event in order, sets the idle expiry once for a burst of events, and the ended TTL at the end', async () => {
    const turnId = randomUUID();
    const key = liveStreamKey(queue, turnId);
    const monitor = await redis.monitor();
    const seen: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      const command = String(args[0]).toLowerCase();
      // The append script's own call names the stream as its first key (after the script or its sha, and the key count).
      if (args[1] === key || ((command === 'eval' || command === 'evalsha') && args[3] === key)) seen.push(command);
    });
    try {
      for (let seq = 1; seq <= 5; seq++) publisher.event(turnId, 1, seq, 'assistant', JSON.stringify({ seq }));
      // One command for the five (EVAL on a connection's first call, EVALSHA after).
      const calls = () => seen.filter((c) => c === 'evalsha' || c === 'eval').length;
      await waitUntil(() => seen.filter((c) => c === 'xadd').length === 5 && calls() >= 1, 'five XADDs');
      expect(calls()).toBe(1);
      const ttl = await redis.pttl(key);
      expect(ttl).toBeGreaterThan(LIVE_STREAM_ENDED_TTL_MS);
      expect(ttl).toBeLessThanOrEqual(LIVE_STREAM_IDLE_TTL_MS);
      expect(seen.filter((c) => c === 'pexpire')).toHaveLength(1);
      const entries = await redis.xrange(key, '-', '+');
      expect(entries.map(([, fields]) => fields[fields.indexOf('s') + 1])).toEqual(['1', '2', '3', '4', '5']);
      // Later events, in a tick of their own, then the end marker with the last of them.
      publisher.event(turnId, 1, 6, 'assistant', JSON.stringify({ seq: 6 }));
      await waitUntil(async () => (await redis.xlen(key)) === 6, 'the sixth entry');
      publisher.event(turnId, 2, 1, 'result', JSON.stringify({ seq: 7 }));
      publisher.finished(turnId, 'succeeded');
      await waitUntil(async () => (await redis.pttl(key)) <= LIVE_STREAM_ENDED_TTL_MS, 'the ended TTL');
      const all = await redis.xrange(key, '-', '+');
      expect(all.map(([, fields]) => fields.join(' '))).toEqual([
        ...entries.map(([, fields]) => fields.join(' ')),
        `a 1 s 6 t assistant p {"seq":6}`,
        `a 2 s 1 t result p {"seq":7}`,
        'end succeeded',
      ]);
    } finally {
      monitor.disconnect();
    }
  });
});
