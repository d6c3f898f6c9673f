// The shared live-stream reader against the real Redis: one blocking connection answers
// many reads of many streams; a read that arrives while another blocks is not kept
// waiting for that block; aborts and close answer null.
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { SharedStreamReader } from '../src/live/streamReader.js';
import { REDIS_URL } from './helpers/agentq.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

function setup() {
  const prefix = `agentq-test-reader-${randomBytes(6).toString('hex')}`;
  const name = `${prefix}-conn`;
  const control = new Redis(REDIS_URL);
  const reader = new SharedStreamReader(() => new Redis(REDIS_URL, { connectionName: name }), control);
  cleanups.push(async () => {
    reader.close();
    const keys = await control.keys(`${prefix}:*`);
    if (keys.length > 0) await control.del(...keys);
    control.disconnect();
  });
  const connections = async () => String(await control.client('LIST')).split('\n').filter((l) => l.includes(`name=${name} `)).length;
  return { reader, control, key: (k: string) => `${prefix}:${k}`, connections };
}

describe('SharedStreamReader', () => {
  it('returns the entries after the id asked for, and null when none come within the block', async () => {
    const { reader, control, key } = setup();
    const k = key('a');
    const first = await control.xadd(k, '*', 'n', '1');
    const second = await control.xadd(k, '*', 'n', '2');
    expect((await reader.read(k, '0', { count: 10, blockMs: 1000 }))?.map(([id]) => id)).toEqual([first, second]);
    expect((await reader.read(k, first!, { count: 10, blockMs: 1000 }))?.map(([id, f]) => [id, f])).toEqual([[second, ['n', '2']]]);
    expect(await reader.read(k, second!, { count: 10, blockMs: 200 })).toBeNull();
    expect(await reader.read(key('empty'), '0', { count: 10, blockMs: 100 })).toBeNull();
    expect(reader.pending).toBe(0);
  });

  it('a read of another stream that arrives while one blocks is answered when its entry comes, not when the block ends', async () => {
    const { reader, control, key, connections } = setup();
    const slow = reader.read(key('quiet'), '0', { count: 10, blockMs: 20_000 });
    // The first read is blocking in Redis now.
    await new Promise((r) => setTimeout(r, 200));
    const t0 = performance.now();
    const fast = reader.read(key('busy'), '0', { count: 10, blockMs: 20_000 });
    await new Promise((r) => setTimeout(r, 50));
    const id = await control.xadd(key('busy'), '*', 'n', '1');
    expect((await fast)?.map(([i]) => i)).toEqual([id]);
    // Well under the 5 s a round may block for: the new read interrupted it.
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(reader.pending).toBe(1);
    const late = await control.xadd(key('quiet'), '*', 'n', '2');
    expect((await slow)?.map(([i]) => i)).toEqual([late]);
    expect(await connections()).toBe(1);
  });

  it('readers of one stream at different ids each get only what follows their own id', async () => {
    const { reader, control, key } = setup();
    const k = key('shared');
    const a = await control.xadd(k, '*', 'n', '1');
    const b = await control.xadd(k, '*', 'n', '2');
    const [fromStart, fromA, fromB] = await Promise.all([
      reader.read(k, '0', { count: 10, blockMs: 2000 }),
      reader.read(k, a!, { count: 10, blockMs: 2000 }),
      (async () => {
        const r = reader.read(k, b!, { count: 10, blockMs: 5000 });
        await new Promise((res) => setTimeout(res, 100));
        await control.xadd(k, '*', 'n', '3');
        return r;
      })(),
    ]);
    expect(fromStart?.map(([, f]) => f[1])).toEqual(['1', '2']);
    expect(fromA?.map(([, f]) => f[1])).toEqual(['2']);
    expect(fromB?.map(([, f]) => f[1])).toEqual(['3']);
  });

  it('fifty concurrent reads of fifty streams share one connection', async () => {
    const { reader, control, key, connections } = setup();
    const reads = Array.from({ length: 50 }, (_, i) => reader.read(key(`s${i}`), '0', { count: 10, blockMs: 10_000 }));
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 50; i++) await control.xadd(key(`s${i}`), '*', 'i', String(i));
    const answers = await Promise.all(reads);
    expect(answers.map((a) => a?.[0]?.[1][1])).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    expect(await connections()).toBe(1);
    expect(reader.pending).toBe(0);
  });

  it('an aborted read answers null at once; close answers every open read with null', async () => {
    const { reader, key } = setup();
    const controller = new AbortController();
    const aborted = reader.read(key('x'), '0', { count: 1, blockMs: 20_000, signal: controller.signal });
    const open = reader.read(key('y'), '0', { count: 1, blockMs: 20_000 });
    controller.abort();
    expect(await aborted).toBeNull();
    expect(reader.pending).toBe(1);
    reader.close();
    expect(await open).toBeNull();
    expect(await reader.read(key('z'), '0', { count: 1, blockMs: 1000 })).toBeNull();
  });
});
