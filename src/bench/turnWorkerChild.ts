// A turn worker in a process of its own, driven over IPC by the `turn` benchmark
// (src/bench/turn.ts), so that rss_per_inflight_turn_mb measures the worker's own
// process: no producer, no benchmark bookkeeping, no CLI children (they are separate
// processes and never counted in process.memoryUsage().rss).
//
// Messages in:  {type:'start', env, concurrency} | {type:'sample', gc} | {type:'stop'}
// Messages out: {type:'started', rss} | {type:'sample', rss, heapUsed, running} |
//               {type:'stopped'} | {type:'error', message}
// The configuration comes from the env object the parent sends, never from process.env.
import { pino } from 'pino';
import { loadConfig } from '../config.js';
import { createWorker, type TurnWorker } from '../worker/worker.js';

export type ChildRequest =
  | { type: 'start'; env: Record<string, string>; concurrency: number }
  | { type: 'sample'; gc: boolean }
  | { type: 'stop' };

export type ChildReply =
  | { type: 'started'; rss: number }
  | { type: 'sample'; rss: number; heapUsed: number; running: number }
  | { type: 'stopped' }
  | { type: 'error'; message: string };

let worker: TurnWorker | undefined;

function reply(message: ChildReply): void {
  process.send?.(message);
}

function collect(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
}

async function handle(msg: ChildRequest): Promise<void> {
  switch (msg.type) {
    case 'start': {
      const config = loadConfig(msg.env);
      // Logs go to stderr: the benchmark's stdout carries only the figures.
      const log = pino({ name: 'agentq-bench-worker', level: config.logLevel }, pino.destination(2));
      worker = createWorker(config, { concurrency: msg.concurrency, log });
      await worker.start();
      reply({ type: 'started', rss: process.memoryUsage.rss() });
      return;
    }
    case 'sample': {
      if (msg.gc) {
        collect();
        // Let finalizers and freed pages settle before reading RSS.
        await new Promise((r) => setTimeout(r, 50));
        collect();
      }
      const mem = process.memoryUsage();
      reply({ type: 'sample', rss: mem.rss, heapUsed: mem.heapUsed, running: worker?.running().length ?? 0 });
      return;
    }
    case 'stop':
      await worker?.stop({ graceMs: 0 });
      reply({ type: 'stopped' });
      process.disconnect?.();
      return;
  }
}

process.on('message', (msg: ChildRequest) => {
  handle(msg).catch((err: unknown) => reply({ type: 'error', message: err instanceof Error ? (err.stack ?? err.message) : String(err) }));
});
// The parent going away ends this process (and its worker's connections).
process.on('disconnect', () => {
  void (worker?.stop({ graceMs: 0 }) ?? Promise.resolve()).finally(() => process.exit(0));
});
