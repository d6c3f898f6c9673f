// Warm conversations: what a turn costs when its conversation's CLI process is kept
// running, against the same turn cold, in the same run. The REAL CLI (the pinned bundled
// one) answers from the mock Messages API, a process of its own (as a real model is not in
// the worker's process); one worker (concurrency 2) lives in this process, on a throwaway
// database and a random queue.
//
// - warm_turn_overhead_p50_ms: two conversations, one with `options.warm` (its process is
//   kept) and one with `warm: false` (every turn spawns the CLI, which resumes the session
//   the worker keeps on disk or hydrates). After one unmeasured turn each, their turns
//   alternate one at a time. A turn's latency runs from just before enqueueTurn() to the
//   arrival of the BullMQ 'completed' event of its job (job id = turn id; the job
//   completes only after the commit). The mock's own time for that turn (the union of its
//   requests' receive → last byte written intervals in the turn's window) is subtracted.
//   Value: median over the warm turns; baseline: the same median over the cold turns.
// - warm_turn_protocol_p50_ms: the same latency minus the CLI's own `duration_ms` of the
//   turn (from its stored `result` event; it includes the mock's time): what agentq adds
//   around the CLI (enqueue, dispatch, claim, stdin write, event reading, commit, ack).
//   Baseline: the same for the cold turns (it then includes the CLI's start-up).
// - warm_cli_floor_p50_ms: the same CLI kept the same way but driven by a bare loop, no
//   agentq (./warmCliFloor.ts): per message, stdin write → its result line, minus the
//   mock's time. Half its messages run before the agentq turns and half after. A warm
//   turn cannot cost less than this; its baseline is the warm overhead of the same run.
import path from 'node:path';
import pg from 'pg';
import { cliFloorSamples, mockTime } from './warmCliFloor.js';
import { against, median, round, type BenchContext, type Benchmark, type Figure } from './harness.js';
import { withRealCliRig } from './realCliRig.js';

const MEASURED_TURNS = 15;

async function run(ctx: BenchContext): Promise<Figure[]> {
  return withRealCliRig(ctx, { name: 'warm', concurrency: 2 }, async ({ config, url, mock, client, root, completedAt }) => {
    const events_ = new pg.Pool({ connectionString: url, max: 1 });
    const cliMs = async (turnId: string): Promise<number> => {
      const r = await events_.query<{ payload: string }>("select payload from turn_events where turn_id = $1 and type = 'result' order by seq desc limit 1", [turnId]);
      return Number((JSON.parse(r.rows[0]?.payload ?? '{}') as { duration_ms?: number }).duration_ms ?? Number.NaN);
    };
    const turn = async (conversationId: string, prompt: string, warm: boolean): Promise<{ latency: number; model: number; cli: number }> => {
      const t0 = Date.now();
      const { turnId } = await client.enqueueTurn({ conversationId, prompt, options: { warm: warm ? { idleMs: 600_000 } : false } });
      const t1 = await completedAt(turnId);
      const status = (await client.getTurn(turnId))?.status;
      if (status !== 'succeeded') throw new Error(`turn ${turnId} ended ${status}`);
      return { latency: t1 - t0, model: mockTime(mock, t0, t1), cli: await cliMs(turnId) };
    };
    const floor: number[] = [];
    const measureFloor = async (half: number) =>
      floor.push(...(await cliFloorSamples(config, mock, path.join(root, `floor-${half}`), Math.ceil(MEASURED_TURNS / 2))));
    try {
      await measureFloor(1);
      await turn('bench-warm', 'first warm turn', true);
      await turn('bench-cold', 'first cold turn', false);
      const warm: number[] = [];
      const cold: number[] = [];
      const warmRaw: number[] = [];
      const coldRaw: number[] = [];
      const warmProtocol: number[] = [];
      const coldProtocol: number[] = [];
      const warmCli: number[] = [];
      for (let i = 0; i < MEASURED_TURNS; i++) {
        // Alternate which goes first, so a drifting load hits both.
        const order = i % 2 === 0 ? (['warm', 'cold'] as const) : (['cold', 'warm'] as const);
        for (const kind of order) {
          const r = await turn(kind === 'warm' ? 'bench-warm' : 'bench-cold', `turn ${i + 1}`, kind === 'warm');
          (kind === 'warm' ? warm : cold).push(r.latency - r.model);
          (kind === 'warm' ? warmRaw : coldRaw).push(r.latency);
          (kind === 'warm' ? warmProtocol : coldProtocol).push(r.latency - r.cli);
          if (kind === 'warm') warmCli.push(r.cli - r.model);
        }
      }
      await measureFloor(2);
      ctx.log(`the CLI alone (bare loop, no agentq): per message ${floor.map((v) => round(v, 0)).join(' ')}`);
      ctx.log(`warm turn latency p50 ${round(median(warmRaw), 1)} ms, cold ${round(median(coldRaw), 1)} ms (mock time included)`);
      ctx.log(`warm overhead ${warm.map((v) => round(v, 0)).join(' ')}`);
      ctx.log(`cold overhead ${cold.map((v) => round(v, 0)).join(' ')}`);
      const warmP50 = median(warm);
      const coldP50 = median(cold);
      ctx.log(`ratio warm/cold ${round(warmP50 / coldP50, 3)}`);
      ctx.log(`warm turns: the CLI's own duration_ms minus the mock's time, p50 ${round(median(warmCli), 1)} ms`);
      return [
        {
          bench: 'warm_turn_overhead_p50_ms',
          value: round(warmP50, 1),
          unit: 'ms',
          baseline: round(coldP50, 1),
          target: against('≤ warm_cli_floor_p50_ms + 5 (baseline: the same turn cold)', median(floor) + 5, 'ms', warmP50 <= median(floor) + 5),
        },
        {
          bench: 'warm_turn_protocol_p50_ms',
          value: round(median(warmProtocol), 1),
          unit: 'ms',
          baseline: round(median(coldProtocol), 1),
          target: 'none (latency minus the CLI\'s own duration_ms)',
        },
        {
          bench: 'warm_cli_floor_p50_ms',
          value: round(median(floor), 1),
          unit: 'ms',
          baseline: round(warmP50, 1),
          target: 'none (the CLI alone per message, minus the mock; baseline: warm_turn_overhead_p50_ms)',
        },
        { bench: 'warm_turn_latency_p50_ms', value: round(median(warmRaw), 1), unit: 'ms', baseline: round(median(coldRaw), 1), target: 'none (mock time included)' },
      ];
      } finally {
      await events_.end();
    }
  });
}

export const warmBench: Benchmark = {
  name: 'warm',
  description: 'warm conversations: a turn on a kept CLI process vs the same turn cold (real CLI, mock model)',
  realCli: true,
  run,
};
