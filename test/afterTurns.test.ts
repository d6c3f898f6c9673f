// What a worker does after a commit, once the turn is acknowledged (src/worker/afterTurns.ts):
// per conversation in order, a failure logged and contained, waited for by the
// conversation's next attempt and by stop().
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { createClient } from '../src/queue/client.js';
import { AfterTurns } from '../src/worker/afterTurns.js';
import { createTestAgentq } from './helpers/agentq.js';
import { readFakeCliLog } from './helpers/fakeCliLog.js';
import { startWorker, stopWorkers } from './helpers/workers.js';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';

function gate(): { open: () => void; wait: Promise<void> } {
  let open = () => undefined as void;
  const wait = new Promise<void>((r) => (open = r));
  return { open, wait };
}

describe('after the ack', () => {
  it("runs a conversation's work in order, others' alongside, and settles only when all of it is done", async () => {
    const lines: unknown[] = [];
    const after = new AfterTurns(pino({ level: 'warn' }, { write: (s: string) => void lines.push(JSON.parse(s)) }));
    const done: string[] = [];
    const first = gate();
    after.add('a', async () => {
      await first.wait;
      done.push('a1');
    });
    after.add('a', async () => {
      done.push('a2');
      throw new Error('disk gone');
    });
    after.add('a', async () => void done.push('a3'));
    after.add('b', async () => void done.push('b1'));
    await after.settled('b');
    expect(done).toEqual(['b1']);
    let aSettled = false;
    const a = after.settled('a').then(() => (aSettled = true));
    await new Promise((r) => setImmediate(r));
    expect(aSettled).toBe(false);
    first.open();
    await a;
    // The failure is logged and does not stop what comes after it.
    expect(done).toEqual(['b1', 'a1', 'a2', 'a3']);
    expect(lines).toMatchObject([{ conversationId: 'a', msg: 'tidying up after a turn failed' }]);
    await after.idle();
    await expect(after.settled('nothing')).resolves.toBeUndefined();
  });

  it("a worker's next turn of the conversation still finds the session kept after the ack, and stop() waits: no run directory is left", async () => {
    const t = await createTestAgentq();
    const client = createClient(t.config);
    try {
      const worker = await startWorker(t.config, { concurrency: 1 });
      for (const p of ['one', 'two', 'three']) {
        const { turnId } = await client.enqueueTurn({ conversationId: 'kept', prompt: p });
        expect((await client.waitForTurn(turnId, 20_000)).status).toBe('succeeded');
      }
      const starts = readFakeCliLog(t.logFile).filter((r) => r.event === 'start');
      expect(starts.map((s) => s.history)).toEqual([[], ['one'], ['one', 'two']]);
      await worker.stop({ graceMs: 0 });
      const runs = t.config.worker.runsRoot;
      expect(readdirSync(runs).filter((d) => !d.startsWith('.'))).toEqual([]);
      const conv = await client.getConversation('kept');
      const cached = readdirSync(path.join(runs, '.cache', 'sessions'));
      expect(cached.some((f) => f.endsWith(`${conv!.sessionId}.jsonl`))).toBe(true);
      expect(existsSync(path.join(runs, '.cache', 'workspaces'))).toBe(true);
    } finally {
      await stopWorkers();
      await client.close();
      await t.cleanup();
    }
  });
});
