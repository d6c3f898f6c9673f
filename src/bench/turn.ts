// The turn protocol end to end (producer → Postgres → BullMQ → worker → hydrate → fake
// CLI → persist → commit → ack), each figure against a baseline measured in this run, on
// a throwaway database (created, migrated, dropped) and a random BullMQ queue
// (obliterated). The CLI is the fake one. agentq is configured from an explicit env
// object (nothing here reads process.env but PATH), so the CLI's allow-listed env holds
// PATH and no NODE_EXTRA_CA_CERTS; the bare baselines use exactly that env and argv.
// Protocol phases and bare phases alternate (which one goes first, too) so a drifting
// machine load hits both; the worker lives in this process and idles during bare phases.
// The bare runs and the floor spawn from this process and pay its fork (the cost grows with
// the parent's RSS, and blocks the event loop); the worker starts its runs through its
// spawn helper (src/runner/spawnHelper.ts), unless AGENTQ_CLI_SPAWN=direct is set for the
// bench, which makes it spawn as they do.
//
// - turn_overhead_p50_ms / _p99_ms: 8 conversations in parallel (worker concurrency 8),
//   each with a ~1 MB stored session, one turn at a time per conversation. A turn's time
//   is measured in this process from just before enqueueTurn() to the arrival of the
//   BullMQ QueueEvents 'completed' event for its job (job id = turn id). The worker acks
//   the job only after the commit transaction, so that moment is after the terminal
//   status is durable in Postgres; the ack and the event stream add about 1-2 ms
//   (ANCHORS.md: BullMQ add → completed event 1.7 ms p50) and there is no polling delay.
//   The fake CLI's own run time is a bare execa spawn of the same fake CLI with the same
//   argv and env, resuming its own ~1 MB session, 8 lanes in parallel. Overhead pXX =
//   pXX(turn) - pXX(bare run): the CLI's own spread under load is not the protocol's (a
//   difference of quantiles, so p99 may come out below p50). stderr also gets the
//   per-turn view (turn - that run's in-process CLI time from FAKE_CLAUDE_LOG - the
//   median boot+exit of a bare run), a breakdown by phase from Postgres timestamps and
//   the fake CLI's log (one host clock), and this process's CPU time and event-loop delay.
// - throughput_ratio_{2,8}_lanes: turns/s of a no-op fake CLI through the whole protocol
//   (2×lanes conversations with all their turns enqueued at t0, worker concurrency =
//   lanes, until the last 'completed' event) ÷ runs/s of a bare execa loop of the same
//   fake CLI with the same argv at `lanes` parallelism. Repetitions are summed.
// - turn_overhead_floor_p50_ms, throughput_ratio_floor_{2,8}_lanes: the same turns through
//   the least durable protocol on this stack (./protocolFloor.ts: one INSERT, BullMQ, one
//   claim UPDATE, the bare run, one commit UPDATE), on bare lanes, as a third phase
//   rotating with the other two. No implementation of the design can go below it; its
//   baseline is the bare run, as for the agentq figures. turn_overhead{,_floor}_1_lane_p50_ms:
//   both again with one turn at a time (no other lane competing for the 2 cores), each
//   turn's time minus its own CLI run's (spawn → exit, as the runner / execa measured it);
//   baseline: a bare run's time.
// - rss_per_inflight_turn_mb: the worker runs alone in a child process
//   (turnWorkerChild.ts, its own process.memoryUsage().rss; CLI processes are never in
//   it). RSS with 64 turns in flight (64 fake CLIs sleeping, counted from their log, and
//   64 attempts in worker.running()) minus the RSS of the idle started worker (after a
//   warm-up conversation and a forced GC), ÷ 64. baseline: that idle RSS.
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { loadConfig, type Config } from '../config.js';
import { createClient, type AgentqClient } from '../queue/client.js';
import { migrate } from '../store/migrate.js';
import { fakeCliPath } from '../testing/fakeCliPath.js';
import { createWorker } from '../worker/worker.js';
import { BareLane, freeLaneRunner } from './bareLane.js';
import { Completions, wallNow } from './completions.js';
import { databaseUrl, withDb } from './database.js';
import { ProtocolFloor, type FloorJobTimes } from './protocolFloor.js';
import { counted, type Counts } from './roundTrips.js';
import { against, median, quantile, round, spawnModeOverride, type BenchContext, type Benchmark, type Figure } from './harness.js';
import { serverCpuMs } from './serverCpu.js';
import type { ChildReply, ChildRequest } from './turnWorkerChild.js';

/**
 * The servers the throwaway database and queue go to: DATABASE_URL's server and REDIS_URL
 * (default: the local ones), read once, as the store benchmark does.
 */
let servers: { admin: string; redis: string } | undefined;
function serverUrls(): { admin: string; redis: string } {
  if (!servers) {
    const { databaseUrl, redisUrl } = loadConfig(process.env);
    servers = { admin: databaseUrl, redis: redisUrl };
  }
  return servers;
}

// Figure 1: 8 lanes, ROUNDS × (protocol, bare and floor phases), PER_PHASE turns per lane each.
const OVERHEAD_LANES = 8;
const OVERHEAD_ROUNDS = 5;
const OVERHEAD_PER_PHASE = 4;
/** Then one lane: this many turns, floor turns and bare runs, interleaved. */
const SERIAL_SAMPLES = 20;
/** ~1 MB of session lines from the seed turn: 256 padded lines of 4 KiB (+ a few). */
const SEED_DIRECTIVE = '#fake {"extraLines":250,"lineBytes":4096}';

// Figure 2.
const THROUGHPUT_REPS = 3;
const THROUGHPUT_TURNS: Record<number, number> = { 2: 32, 8: 64 };

// Figure 3.
const INFLIGHT = 64;
const INFLIGHT_DELAY_MS = 60_000;

function dbUrl(name: string): string {
  return databaseUrl(serverUrls().admin, name);
}

/** The throwaway database, queue and directories of one benchmark run. */
interface Harness {
  root: string;
  dbName: string;
  url: string;
  queueName: string;
  log: Logger;
  /** The explicit environment agentq is configured from (plus per-figure overrides). */
  env(overrides?: Record<string, string>): Record<string, string>;
  config(overrides?: Record<string, string>): Config;
  cleanup(): Promise<void>;
}

async function createHarness(): Promise<Harness> {
  const suffix = randomBytes(6).toString('hex');
  const dbName = `agentq_bench_${suffix}`;
  const queueName = `bench-turn-${suffix}`;
  const url = dbUrl(dbName);
  const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-bench-turn-'));
  await withDb(serverUrls().admin, (c) => c.query(`create database "${dbName}"`));
  const cleanup = async () => {
    const conn = new Redis(serverUrls().redis, { maxRetriesPerRequest: null });
    const q = new Queue(queueName, { connection: conn });
    try {
      await q.obliterate({ force: true });
    } finally {
      await q.close();
      conn.disconnect();
    }
    await withDb(serverUrls().admin, async (c) => {
      await c.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [dbName]);
      await c.query(`drop database if exists "${dbName}" with (force)`);
    });
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await migrate(url);
  } catch (err) {
    await cleanup();
    throw err;
  }
  const base: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DATABASE_URL: url,
    REDIS_URL: serverUrls().redis,
    AGENTQ_QUEUE: queueName,
    AGENTQ_CLAUDE_PATH: fakeCliPath(),
    AGENTQ_WORKSPACE_ROOT: path.join(root, 'workspaces'),
    AGENTQ_RUNS_ROOT: path.join(root, 'runs'),
    AGENTQ_LOG_LEVEL: 'warn',
    // The bare baselines spawn unsandboxed; the sandbox's cost is its own benchmark.
    AGENTQ_SANDBOX: 'off',
    ...spawnModeOverride(),
  };
  const env = (overrides: Record<string, string> = {}) => ({ ...base, ...overrides });
  return {
    root,
    dbName,
    url,
    queueName,
    // Logs go to stderr: stdout carries only the figures.
    log: pino({ name: 'agentq-bench', level: 'warn' }, pino.destination(2)),
    env,
    config: (overrides) => loadConfig(env(overrides)),
    cleanup,
  };
}

interface TurnSample {
  turnId: string;
  prompt: string;
  /** performance.now() just before enqueueTurn(). */
  t0: number;
  wall0: number;
  enqueueMs: number;
  e2eMs: number;
  /** Wall clock of the 'completed' event. */
  wallDone: number;
}

async function timedTurn(client: AgentqClient, completions: Completions, conversationId: string, prompt: string): Promise<TurnSample> {
  const wall0 = wallNow();
  const t0 = performance.now();
  const { turnId } = await client.enqueueTurn({ conversationId, prompt });
  const enqueueMs = performance.now() - t0;
  const done = await completions.wait(turnId);
  return { turnId, prompt, t0, wall0, enqueueMs, e2eMs: done.at - t0, wallDone: done.wall };
}

/** The protocol floor (./protocolFloor.ts), its runs on bare lanes, and its 'completed' events. */
interface Floor {
  /** The lanes later runs go to (a free one each). */
  useLanes(lanes: readonly BareLane[]): void;
  enqueue(conversationId: string, prompt: string): Promise<string>;
  wait(turnId: string, timeoutMs?: number): Promise<unknown>;
  /** Enqueue → 'completed' event, in ms. */
  timed(conversationId: string, prompt: string): Promise<number>;
  /** The same, as performance.now() at the enqueue's start, its return and the event. */
  timedSteps(conversationId: string, prompt: string): Promise<{ t0: number; enqueued: number; done: number }>;
  /** When the steps of the job of the turn with this prompt ended, once it ran. */
  jobTimes(prompt: string): FloorJobTimes | undefined;
  /** The bare run's own time (spawn → exit) of the turn with this prompt, once it ran. */
  runMs(prompt: string): number | undefined;
  close(): Promise<void>;
}

async function openFloor(h: Harness, config: Config, name: string, lanes: readonly BareLane[]): Promise<Floor> {
  let run = freeLaneRunner(lanes);
  const runMs = new Map<string, number>();
  const jobs = new Map<string, FloorJobTimes>();
  const queueName = `${config.queueName}-floor-${name}`;
  const completions = await Completions.open(queueName, serverUrls().redis);
  let protocol: ProtocolFloor;
  try {
    protocol = await ProtocolFloor.open({
      databaseUrl: h.url,
      redisUrl: serverUrls().redis,
      queueName,
      concurrency: lanes.length,
      run: async (_conversation, prompt) => void runMs.set(prompt, (await run(prompt)).ms),
      onJob: (prompt, at) => void jobs.set(prompt, at),
    });
  } catch (err) {
    await completions.close();
    throw err;
  }
  return {
    useLanes: (next) => void (run = freeLaneRunner(next)),
    enqueue: (conversationId, prompt) => protocol.enqueue(conversationId, prompt),
    wait: (turnId, timeoutMs) => completions.wait(turnId, timeoutMs),
    timed: async (conversationId, prompt) => {
      const t0 = performance.now();
      const turnId = await protocol.enqueue(conversationId, prompt);
      return (await completions.wait(turnId)).at - t0;
    },
    timedSteps: async (conversationId, prompt) => {
      const t0 = performance.now();
      const turnId = await protocol.enqueue(conversationId, prompt);
      const enqueued = performance.now();
      return { t0, enqueued, done: (await completions.wait(turnId)).at };
    },
    jobTimes: (prompt) => jobs.get(prompt),
    runMs: (prompt) => runMs.get(prompt),
    close: async () => {
      await protocol.close();
      await completions.close();
    },
  };
}

/** Runs the phases in an order that rotates with `round`, so a drifting machine load hits all alike. */
async function inRotation(round: number, phases: readonly (() => Promise<unknown>)[]): Promise<void> {
  for (let i = 0; i < phases.length; i++) await phases[(round + i) % phases.length]!();
}

interface FakeLogRecord {
  event: string;
  pid: number;
  prompt?: string;
  startedAt?: number;
  endedAt?: number;
}

/**
 * The in-process start and end (Date.now() inside the child) of each fake CLI run in a
 * FAKE_CLAUDE_LOG file, by prompt (every prompt here is unique). An 'end' belongs to the
 * latest 'start' of the same pid, so a reused pid cannot mix two runs.
 */
function readFakeLog(file: string): Map<string, { start: number; end: number }> {
  const open = new Map<number, { start: number; end: number }>();
  const byPrompt = new Map<string, { start: number; end: number }>();
  if (!existsSync(file)) return byPrompt;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line) continue;
    const r = JSON.parse(line) as FakeLogRecord;
    if (r.event === 'start') {
      const entry = { start: r.startedAt ?? Number.NaN, end: Number.NaN };
      open.set(r.pid, entry);
      byPrompt.set(r.prompt ?? '', entry);
    } else if (r.event === 'end') {
      const entry = open.get(r.pid);
      if (entry) entry.end = r.endedAt ?? Number.NaN;
      open.delete(r.pid);
    }
  }
  return byPrompt;
}

function countStarts(file: string): number {
  if (!existsSync(file)) return 0;
  let n = 0;
  for (const line of readFileSync(file, 'utf8').split('\n')) if (line.includes('"event":"start"')) n++;
  return n;
}

const ms = (v: number) => `${v.toFixed(1)} ms`;

const LAG_TICK_MS = 5;

/** What one kind of phase cost this process: CPU time and event-loop delay. */
class PhaseMeter {
  cpuMs = 0;
  /** CPU of the local Postgres and Redis servers meanwhile (src/bench/serverCpu.ts). */
  serverCpuMs = 0;
  /** How late a 5 ms timer fired, in µs: the event loop was blocked (or the process not scheduled) that long. */
  readonly lag: RecordableHistogram = createHistogram();

  async measure<T>(fn: () => Promise<T>): Promise<T> {
    const before = process.cpuUsage();
    const serverBefore = serverCpuMs();
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      this.lag.record(Math.max(1, Math.round((now - last - LAG_TICK_MS) * 1000)));
      last = now;
    }, LAG_TICK_MS);
    try {
      return await fn();
    } finally {
      clearInterval(timer);
      const d = process.cpuUsage(before);
      this.cpuMs += (d.user + d.system) / 1000;
      this.serverCpuMs += serverCpuMs() - serverBefore;
    }
  }

  lagText(): string {
    return `p50 ${ms(this.lag.percentile(50) / 1000)} p99 ${ms(this.lag.percentile(99) / 1000)} max ${ms(this.lag.max / 1000)}`;
  }
}

// ---- figure 1 ----------------------------------------------------------------------------

/** What the worker's observer saw of one attempt (performance.now() times, durations in ms). */
interface AttemptSteps {
  claimEnd: number;
  claimMs: number;
  phases: Record<string, number>;
  cliMs: number;
  ended: number;
}

/** One turn's time by step, in ms, in BUDGET_STEPS order. */
type Budget = Record<(typeof BUDGET_STEPS)[number], number>;

const BUDGET_STEPS = ['enqueue', 'dispatch', 'claim', 'prepare disk', 'spawn → exit', 'around the run', 'commit', 'ack'] as const;

function agentqBudget(t: TurnSample, s: AttemptSteps): Budget {
  const p = (name: string) => s.phases[name] ?? 0;
  const claimStart = s.claimEnd - s.claimMs;
  return {
    enqueue: t.enqueueMs,
    dispatch: claimStart - (t.t0 + t.enqueueMs),
    claim: s.claimMs,
    'prepare disk': p('lease') + p('workspace') + p('hydrate') + p('prepare'),
    'spawn → exit': s.cliMs,
    'around the run': p('run') - s.cliMs,
    commit: p('commit'),
    ack: t.t0 + t.e2eMs - s.ended,
  };
}

function floorBudget(t: { t0: number; enqueued: number; done: number }, j: FloorJobTimes): Budget {
  return {
    enqueue: t.enqueued - t.t0,
    dispatch: j.started - t.enqueued,
    claim: j.claimed - j.started,
    'prepare disk': 0,
    'spawn → exit': j.ran - j.claimed,
    'around the run': 0,
    commit: j.committed - j.ran,
    ack: t.done - j.committed,
  };
}

function budgetTable(turn: readonly Budget[], floor: readonly Budget[]): string {
  const rows = BUDGET_STEPS.map((step) => {
    const a = median(turn.map((b) => b[step]));
    const f = median(floor.map((b) => b[step]));
    return `    ${step.padEnd(15)} agentq ${a.toFixed(1).padStart(6)}   floor ${f.toFixed(1).padStart(6)}   difference ${(a - f).toFixed(1).padStart(6)}`;
  });
  return rows.join('\n');
}

async function overheadFigures(h: Harness, ctx: BenchContext): Promise<Figure[]> {
  const logFile = path.join(h.root, 'fake-overhead.log');
  const bareLog = path.join(h.root, 'fake-overhead-bare.log');
  const config = h.config({ AGENTQ_CLI_ENV_ALLOW: 'FAKE_CLAUDE_LOG', FAKE_CLAUDE_LOG: logFile, AGENTQ_CONCURRENCY: String(OVERHEAD_LANES) });
  const client = createClient(config);
  // The CLI's own time (spawn → exit) per turn, as the runner measured it.
  const cliMs = new Map<string, number>();
  // Where a turn's time went, for the one-lane budget.
  const attemptSteps = new Map<string, AttemptSteps>();
  const worker = createWorker(config, {
    concurrency: OVERHEAD_LANES,
    log: h.log,
    observeAttempt: (info) => {
      const steps: AttemptSteps = { claimEnd: performance.now(), claimMs: info.claimMs, phases: {}, cliMs: 0, ended: 0 };
      attemptSteps.set(info.turnId, steps);
      return {
        cliExited: (outcome) => {
          cliMs.set(info.turnId, outcome.durationMs);
          steps.cliMs = outcome.durationMs;
        },
        phase: (name, phaseMs) => void (steps.phases[name] = phaseMs),
        ended: () => void (steps.ended = performance.now()),
      };
    },
  });
  let completions: Completions | undefined;
  let floor: Floor | undefined;
  try {
    await worker.start();
    completions = await Completions.open(config.queueName, serverUrls().redis);
    const lanes = Array.from({ length: OVERHEAD_LANES }, (_, i) => i);
    const convs = lanes.map((i) => `overhead-${i}`);
    const bare = lanes.map((i) => new BareLane(path.join(h.root, `bare-overhead-${i}`), config, { FAKE_CLAUDE_LOG: bareLog }));
    const floorLanes = lanes.map((i) => new BareLane(path.join(h.root, `floor-overhead-${i}`), config));
    floor = await openFloor(h, config, 'overhead', floorLanes);

    // Seed: each conversation's first turn writes ~1 MB of session lines, and so does each
    // bare lane's first run; one more unmeasured turn / run each warms both paths.
    const c = completions;
    await Promise.all(convs.map((conv) => timedTurn(client, c, conv, `${SEED_DIRECTIVE}\nseed ${conv}`)));
    await Promise.all(bare.map((b, i) => b.run(`${SEED_DIRECTIVE}\nseed bare ${i}`)));
    await Promise.all(convs.map((conv) => timedTurn(client, c, conv, `warm ${conv}`)));
    await Promise.all(bare.map((b, i) => b.run(`warm bare ${i}`)));
    await Promise.all(floorLanes.map((b, i) => b.run(`${SEED_DIRECTIVE}\nseed floor ${i}`)));
    const f = floor;
    await Promise.all(convs.map((conv) => f.timed(conv, `warm floor ${conv}`)));
    const stored = await withDb(h.url, async (db) => {
      const r = await db.query<{ mb: number; lines: number }>('select avg(byte_count)::float / 1e6 as mb, avg(line_count)::float as lines from sessions');
      return r.rows[0];
    });
    ctx.log(`turn: stored sessions average ${stored?.mb.toFixed(2)} MB / ${stored?.lines.toFixed(0)} lines`);

    const turns: TurnSample[] = [];
    const bareRuns: { ms: number; prompt: string }[] = [];
    const floorTurns: number[] = [];
    const protoCpu = new PhaseMeter();
    const bareCpu = new PhaseMeter();
    const floorCpu = new PhaseMeter();
    for (let r = 0; r < OVERHEAD_ROUNDS; r++) {
      const protocolPhase = () =>
        protoCpu.measure(() =>
          Promise.all(
            convs.map(async (conv) => {
              for (let k = 0; k < OVERHEAD_PER_PHASE; k++) turns.push(await timedTurn(client, c, conv, `turn ${conv} r${r} k${k}`));
            }),
          ),
        );
      const barePhase = () =>
        bareCpu.measure(() =>
          Promise.all(
            bare.map(async (b, i) => {
              for (let k = 0; k < OVERHEAD_PER_PHASE; k++) bareRuns.push(await b.run(`turn bare-${i} r${r} k${k}`));
            }),
          ),
        );
      const floorPhase = () =>
        floorCpu.measure(() =>
          Promise.all(
            convs.map(async (conv) => {
              for (let k = 0; k < OVERHEAD_PER_PHASE; k++) floorTurns.push(await f.timed(conv, `turn floor ${conv} r${r} k${k}`));
            }),
          ),
        );
      await inRotation(r, [protocolPhase, barePhase, floorPhase]);
    }
    // One lane, nothing else running: the same three, one turn / run at a time. Each
    // turn's overhead is paired with its own CLI run (the runner's / execa's spawn → exit),
    // which at one lane is far less noisy than a difference of medians.
    const serial = { turn: [] as number[], bare: [] as number[], floor: [] as number[] };
    // Round trips of each one-lane turn, enqueue → 'completed' event (./roundTrips.ts).
    const trips = { turn: [] as Counts[], floor: [] as Counts[] };
    const budget = { turn: [] as Budget[], floor: [] as Budget[] };
    // The attempt's own phases (its phasesMs log), for what 'prepare disk' and 'commit' hold.
    const attemptPhases: Record<string, number>[] = [];
    for (let k = 0; k < SERIAL_SAMPLES; k++) {
      await inRotation(k, [
        async () => {
          const { value: t, counts } = await counted(() => timedTurn(client, c, convs[0]!, `serial ${k}`));
          trips.turn.push(counts);
          const steps = attemptSteps.get(t.turnId);
          if (steps) {
            budget.turn.push(agentqBudget(t, steps));
            attemptPhases.push(steps.phases);
          }
          const run = cliMs.get(t.turnId);
          if (run === undefined) throw new Error(`no CLI run was observed for turn ${t.turnId}`);
          serial.turn.push(t.e2eMs - run);
        },
        async () => serial.bare.push((await bare[0]!.run(`serial bare ${k}`)).ms),
        async () => {
          const { value: timed, counts } = await counted(() => f.timedSteps(convs[0]!, `serial floor ${k}`));
          trips.floor.push(counts);
          const e2e = timed.done - timed.t0;
          const job = f.jobTimes(`serial floor ${k}`);
          if (job) budget.floor.push(floorBudget(timed, job));
          const run = f.runMs(`serial floor ${k}`);
          if (run === undefined) throw new Error(`no run was recorded for floor turn ${k}`);
          serial.floor.push(e2e - run);
        },
      ]);
    }
    const serialBare = median(serial.bare);

    const e2e = turns.map((t) => t.e2eMs);
    const bareMs = bareRuns.map((b) => b.ms);
    const p50 = median(e2e) - median(bareMs);
    const p99 = quantile(e2e, 0.99) - quantile(bareMs, 0.99);

    // Per-turn view and breakdown: the CLI's in-process time from its log, the protocol's
    // phases from Postgres timestamps (same host clock).
    const protoLog = readFakeLog(logFile);
    const bareLogRecs = readFakeLog(bareLog);
    const bareInside: number[] = [];
    const bareBootExit: number[] = [];
    for (const b of bareRuns) {
      const rec = bareLogRecs.get(b.prompt);
      if (!rec || !Number.isFinite(rec.end - rec.start)) continue;
      bareInside.push(rec.end - rec.start);
      bareBootExit.push(b.ms - (rec.end - rec.start));
    }
    const bootExit = median(bareBootExit);
    const rows = await withDb(h.url, async (db) => {
      const r = await db.query<{ id: string; started: number; finished: number }>(
        `select id, extract(epoch from started_at)::float * 1000 as started, extract(epoch from finished_at)::float * 1000 as finished
           from turns where id = any($1::uuid[])`,
        [turns.map((t) => t.turnId)],
      );
      return r.rows;
    });
    const byId = new Map(rows.map((x) => [x.id, x]));
    const phase = { enqueue: [] as number[], toClaim: [] as number[], toCliStart: [] as number[], cli: [] as number[], toCommit: [] as number[], commitToAck: [] as number[], perTurn: [] as number[] };
    for (const t of turns) {
      const db = byId.get(t.turnId);
      const cli = protoLog.get(t.prompt);
      if (!db || !cli || !Number.isFinite(cli.end - cli.start)) continue;
      phase.enqueue.push(t.enqueueMs);
      phase.toClaim.push(db.started - t.wall0);
      phase.toCliStart.push(cli.start - db.started);
      phase.cli.push(cli.end - cli.start);
      phase.toCommit.push(db.finished - cli.end);
      phase.commitToAck.push(t.wallDone - db.finished);
      phase.perTurn.push(t.e2eMs - (cli.end - cli.start) - bootExit);
    }
    ctx.log(
      `turn: ${turns.length} turns, ${bareRuns.length} bare runs at ${OVERHEAD_LANES} lanes: turn p50 ${ms(median(e2e))} p99 ${ms(quantile(e2e, 0.99))}; ` +
        `bare run p50 ${ms(median(bareMs))} p99 ${ms(quantile(bareMs, 0.99))} (in-process p50 ${ms(median(bareInside))}, boot+exit p50 ${ms(bootExit)})`,
    );
    ctx.log(
      `turn: CPU of this process (worker + producer / bare loop): ${ms(protoCpu.cpuMs / turns.length)} per turn vs ${ms(bareCpu.cpuMs / bareRuns.length)} per bare run; ` +
        `of the Postgres and Redis servers: ${ms(protoCpu.serverCpuMs / turns.length)} per turn vs ${ms(bareCpu.serverCpuMs / bareRuns.length)} per bare run; ` +
        `event-loop delay during protocol phases ${protoCpu.lagText()}, during bare phases ${bareCpu.lagText()}`,
    );
    ctx.log(
      `turn: per-turn overhead (turn - CLI in-process time - median boot+exit) p50 ${ms(median(phase.perTurn))} p99 ${ms(quantile(phase.perTurn, 0.99))}`,
    );
    ctx.log(
      `turn: phase medians: enqueue call ${ms(median(phase.enqueue))}; enqueue start -> claim (started_at) ${ms(median(phase.toClaim))}; ` +
        `claim -> CLI in-process start ${ms(median(phase.toCliStart))} (of which Node boot ≈ bare boot+exit); CLI in-process ${ms(median(phase.cli))}; ` +
        `CLI end -> commit tx start (finished_at) ${ms(median(phase.toCommit))}; commit tx start -> 'completed' event ${ms(median(phase.commitToAck))}`,
    );
    const floorP50 = median(floorTurns) - median(bareMs);
    const floorP99 = quantile(floorTurns, 0.99) - quantile(bareMs, 0.99);
    ctx.log(
      `turn: floor (./protocolFloor.ts): ${floorTurns.length} turns, p50 ${ms(median(floorTurns))} p99 ${ms(quantile(floorTurns, 0.99))}, overhead p50 ${ms(floorP50)} p99 ${ms(floorP99)}; ` +
        `CPU of this process ${ms(floorCpu.cpuMs / floorTurns.length)} per floor turn, of the servers ${ms(floorCpu.serverCpuMs / floorTurns.length)}`,
    );
    ctx.log(
      `turn: one lane, ${SERIAL_SAMPLES} each: turn minus its CLI run p50 ${ms(median(serial.turn))} p90 ${ms(quantile(serial.turn, 0.9))}, ` +
        `floor turn minus its run p50 ${ms(median(serial.floor))} p90 ${ms(quantile(serial.floor, 0.9))}; bare run p50 ${ms(serialBare)}`,
    );
    ctx.log(`turn: one lane, where a turn's time goes (medians, ms):\n${budgetTable(budget.turn, budget.floor)}`);
    const phaseNames = [...new Set(attemptPhases.flatMap((p) => Object.keys(p)))];
    ctx.log(`turn: one lane, the attempt's phases (medians, ms): ${phaseNames.map((n) => `${n} ${ms(median(attemptPhases.map((p) => p[n] ?? 0)))}`).join(', ')}`);
    return [
      {
        bench: 'turn_overhead_p50_ms',
        value: round(p50, 1),
        unit: 'ms',
        baseline: round(median(bareMs), 1),
        target: against('≤ 2 × turn_overhead_floor_p50_ms', 2 * floorP50, 'ms', p50 <= 2 * floorP50),
      },
      { bench: 'turn_overhead_p99_ms', value: round(p99, 1), unit: 'ms', baseline: round(median(bareMs), 1), target: `none (the floor's: ${round(floorP99, 1)} ms)` },
      {
        bench: 'turn_overhead_floor_p50_ms',
        value: round(floorP50, 1),
        unit: 'ms',
        baseline: round(median(bareMs), 1),
        target: 'none (the least durable protocol on this stack, ./protocolFloor.ts; compare turn_overhead_p50_ms)',
      },
      {
        bench: 'turn_overhead_1_lane_p50_ms',
        value: round(median(serial.turn), 1),
        unit: 'ms',
        baseline: round(serialBare, 1),
        target: against('≤ turn_overhead_floor_1_lane_p50_ms + 3', median(serial.floor) + 3, 'ms', median(serial.turn) <= median(serial.floor) + 3),
      },
      {
        bench: 'turn_overhead_floor_1_lane_p50_ms',
        value: round(median(serial.floor), 1),
        unit: 'ms',
        baseline: round(serialBare, 1),
        target: 'none (the floor, one turn at a time)',
      },
      {
        bench: 'pg_round_trips_per_turn',
        value: median(trips.turn.map((x) => x.pg)),
        unit: 'round trips',
        baseline: median(trips.floor.map((x) => x.pg)),
        target: `≤ 5 (a cold turn, no idempotency key, one at a time; baseline: the floor): ${median(trips.turn.map((x) => x.pg)) <= 5 ? 'met' : 'missed'}`,
      },
      {
        bench: 'redis_commands_per_turn',
        value: median(trips.turn.map((x) => x.redis)),
        unit: 'commands',
        baseline: median(trips.floor.map((x) => x.redis)),
        target: 'none (the same turns; baseline: the floor)',
      },
    ];
  } finally {
    await worker.stop({ graceMs: 0 });
    await floor?.close();
    await completions?.close();
    await client.close();
  }
}

// ---- figure 2 ----------------------------------------------------------------------------

async function throughputFigures(h: Harness, ctx: BenchContext, lanes: number): Promise<Figure[]> {
  const config = h.config({ AGENTQ_CONCURRENCY: String(lanes) });
  const client = createClient(config);
  const worker = createWorker(config, { concurrency: lanes, log: h.log });
  let completions: Completions | undefined;
  let floor: Floor | undefined;
  const total = THROUGHPUT_TURNS[lanes] ?? 8 * lanes;
  const conversations = 2 * lanes;
  const perConversation = Math.ceil(total / conversations);
  const n = perConversation * conversations;
  try {
    await worker.start();
    completions = await Completions.open(config.queueName, serverUrls().redis);
    const c = completions;
    // Warm both paths.
    await Promise.all(Array.from({ length: lanes }, (_, i) => timedTurn(client, c, `tp${lanes}-warm-${i}`, 'warm')));
    const warmLanes = Array.from({ length: lanes }, (_, i) => new BareLane(path.join(h.root, `bare-tp${lanes}-warm-${i}`), config));
    await Promise.all(warmLanes.map((b) => b.run('warm')));
    const floorLanes = (tag: string) => Array.from({ length: lanes }, (_, i) => new BareLane(path.join(h.root, `floor-tp${lanes}-${tag}-${i}`), config));
    floor = await openFloor(h, config, `tp${lanes}`, floorLanes('warm'));
    const f = floor;
    await Promise.all(Array.from({ length: lanes }, (_, i) => f.timed(`tp${lanes}-warm-${i}`, 'warm')));

    let floorMs = 0;
    const floorRatios: number[] = [];
    const floorCpu = new PhaseMeter();
    let protoTurns = 0;
    let protoMs = 0;
    let bareTurns = 0;
    let bareMs = 0;
    const ratios: number[] = [];
    const protoCpu = new PhaseMeter();
    const bareCpu = new PhaseMeter();
    for (let rep = 0; rep < THROUGHPUT_REPS; rep++) {
      // Bare: `lanes` loops share a counter of n runs.
      const barePhase = () => bareCpu.measure(async () => {
        const bare = Array.from({ length: lanes }, (_, i) => new BareLane(path.join(h.root, `bare-tp${lanes}-${rep}-${i}`), config));
        let next = 0;
        const t = performance.now();
        await Promise.all(
          bare.map(async (b) => {
            while (next < n) {
              const k = next++;
              await b.run(`tp ${k}`);
            }
          }),
        );
        return performance.now() - t;
      });
      // Protocol: every turn of 2×lanes conversations enqueued at t0 (the producer runs
      // concurrently with the worker); done when the last 'completed' event arrives.
      let enqueuedMs = 0;
      const protocolPhase = () => protoCpu.measure(async () => {
        const t = performance.now();
        const waits: Promise<unknown>[] = [];
        await Promise.all(
          Array.from({ length: conversations }, async (_, ci) => {
            for (let k = 0; k < perConversation; k++) {
              const { turnId } = await client.enqueueTurn({ conversationId: `tp${lanes}-${rep}-${ci}`, prompt: `tp ${ci} ${k}` });
              const w = c.wait(turnId, 120_000);
              w.catch(() => undefined); // observed by Promise.all below; not unhandled meanwhile
              waits.push(w);
            }
          }),
        );
        enqueuedMs = performance.now() - t;
        await Promise.all(waits);
        return performance.now() - t;
      });
      // Floor: the same turns through the least durable protocol (./protocolFloor.ts) on `lanes` bare lanes.
      const floorPhase = () => floorCpu.measure(async () => {
        f.useLanes(floorLanes(String(rep)));
        const t = performance.now();
        await Promise.all(
          Array.from({ length: conversations }, async (_, ci) => {
            const turnIds: string[] = [];
            for (let k = 0; k < perConversation; k++) turnIds.push(await f.enqueue(`tp${lanes}-${rep}-${ci}`, `tp ${ci} ${k}`));
            await Promise.all(turnIds.map((id) => f.wait(id, 120_000)));
          }),
        );
        return performance.now() - t;
      });
      let bMs = 0;
      let pMs = 0;
      let fMs = 0;
      await inRotation(rep, [
        async () => void (bMs = await barePhase()),
        async () => void (pMs = await protocolPhase()),
        async () => void (fMs = await floorPhase()),
      ]);
      ratios.push(bMs / pMs);
      floorRatios.push(bMs / fMs);
      floorMs += fMs;
      protoTurns += n;
      protoMs += pMs;
      bareTurns += n;
      bareMs += bMs;
      ctx.log(
        `turn: ${lanes} lanes rep ${rep + 1}: protocol ${n} turns in ${ms(pMs)} (${((n * 1000) / pMs).toFixed(1)}/s; all enqueued after ${ms(enqueuedMs)}), ` +
          `bare ${n} runs in ${ms(bMs)} (${((n * 1000) / bMs).toFixed(1)}/s), floor ${n} turns in ${ms(fMs)} (${((n * 1000) / fMs).toFixed(1)}/s)`,
      );
    }
    const protoRate = (protoTurns * 1000) / protoMs;
    const bareRate = (bareTurns * 1000) / bareMs;
    ctx.log(
      `turn: ${lanes} lanes: ratio per rep ${ratios.map((r) => r.toFixed(3)).join(', ')}; ` +
        `CPU of this process ${ms(protoCpu.cpuMs / protoTurns)} per protocol turn vs ${ms(bareCpu.cpuMs / bareTurns)} per bare run; ` +
          `of the Postgres and Redis servers ${ms(protoCpu.serverCpuMs / protoTurns)} vs ${ms(bareCpu.serverCpuMs / bareTurns)}`,
    );
    ctx.log(
      `turn: ${lanes} lanes: floor ratio per rep ${floorRatios.map((r) => r.toFixed(3)).join(', ')}; ` +
        `CPU of this process ${ms(floorCpu.cpuMs / bareTurns)} per floor turn, of the servers ${ms(floorCpu.serverCpuMs / bareTurns)}`,
    );
    const floorRate = (bareTurns * 1000) / floorMs;
    return [
      {
        bench: `throughput_ratio_${lanes}_lanes`,
        value: round(protoRate / bareRate),
        unit: 'ratio',
        baseline: round(bareRate, 1),
        target: against(`≥ throughput_ratio_floor_${lanes}_lanes − 0.05`, floorRate / bareRate - 0.05, '', protoRate / bareRate >= floorRate / bareRate - 0.05),
      },
      {
        bench: `throughput_ratio_floor_${lanes}_lanes`,
        value: round(floorRate / bareRate),
        unit: 'ratio',
        baseline: round(bareRate, 1),
        target: `none (the least durable protocol on this stack, ./protocolFloor.ts; compare throughput_ratio_${lanes}_lanes)`,
      },
    ];
  } finally {
    await worker.stop({ graceMs: 0 });
    await floor?.close();
    await completions?.close();
    await client.close();
  }
}

// ---- figure 3 ----------------------------------------------------------------------------

class WorkerChild {
  private readonly child;
  private pending: ((r: ChildReply) => void)[] = [];
  private exited: Promise<void>;

  constructor() {
    const file = fileURLToPath(new URL('./turnWorkerChild.js', import.meta.url));
    // The child's stdout goes to our stderr; only PATH of our environment is passed on.
    this.child = fork(file, [], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, execArgv: ['--expose-gc'], stdio: ['ignore', 2, 2, 'ipc'] });
    this.child.on('message', (m: ChildReply) => {
      const next = this.pending.shift();
      if (next) next(m);
    });
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
  }

  request(msg: ChildRequest, timeoutMs = 30_000): Promise<ChildReply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`worker child did not answer ${msg.type} within ${timeoutMs} ms`)), timeoutMs);
      this.pending.push((r) => {
        clearTimeout(timer);
        if (r.type === 'error') reject(new Error(`worker child: ${r.message}`));
        else resolve(r);
      });
      try {
        this.child.send(msg);
      } catch (err) {
        clearTimeout(timer);
        this.pending.pop();
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
  }

  async sample(gc: boolean): Promise<{ rss: number; heapUsed: number; running: number }> {
    const r = await this.request({ type: 'sample', gc });
    if (r.type !== 'sample') throw new Error(`unexpected reply ${r.type}`);
    return r;
  }

  /** Stops the worker (running turns are interrupted and handed back) and waits for the exit. */
  async stop(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.connected) {
      await this.request({ type: 'stop' }, 60_000).catch(() => undefined);
    }
    const killTimer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(killTimer);
  }
}

async function rssFigure(h: Harness, ctx: BenchContext): Promise<Figure> {
  const logFile = path.join(h.root, 'fake-rss.log');
  const env = h.env({ AGENTQ_CLI_ENV_ALLOW: 'FAKE_CLAUDE_LOG', FAKE_CLAUDE_LOG: logFile, AGENTQ_CONCURRENCY: String(INFLIGHT) });
  const config = loadConfig(env);
  const client = createClient(config);
  const child = new WorkerChild();
  let completions: Completions | undefined;
  try {
    await child.request({ type: 'start', env, concurrency: INFLIGHT });
    completions = await Completions.open(config.queueName, serverUrls().redis);
    const c = completions;
    // Warm-up: a conversation of two turns runs the whole path once (new session, resume).
    for (const prompt of ['warm 1', 'warm 2']) await timedTurn(client, c, 'rss-warm', prompt);
    const idleSamples: number[] = [];
    for (let i = 0; i < 3; i++) idleSamples.push((await child.sample(true)).rss);
    const idle = median(idleSamples);
    const startsBefore = countStarts(logFile);

    const t = performance.now();
    await Promise.all(
      Array.from({ length: INFLIGHT }, (_, i) => client.enqueueTurn({ conversationId: `rss-${i}`, prompt: `#fake {"delayMs":${INFLIGHT_DELAY_MS}}\nrss ${i}` })),
    );
    // In flight = the fake CLI has started (its log says so) and the worker counts it running.
    let running = 0;
    let started = 0;
    for (;;) {
      started = countStarts(logFile) - startsBefore;
      running = (await child.sample(false)).running;
      if (started >= INFLIGHT && running >= INFLIGHT) break;
      if (performance.now() - t > 90_000) throw new Error(`only ${started} CLIs started / ${running} turns running after 90 s`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const rampMs = performance.now() - t;
    const busy: { rss: number; heapUsed: number }[] = [];
    for (let i = 0; i < 5; i++) {
      busy.push(await child.sample(false));
      await new Promise((r) => setTimeout(r, 200));
    }
    const connections = await withDb(serverUrls().admin, async (a) => {
      const r = await a.query<{ n: number; max: string }>(
        `select count(*)::int as n, current_setting('max_connections') as max from pg_stat_activity where datname = $1`,
        [h.dbName],
      );
      return { n: r.rows[0]?.n ?? 0, max: r.rows[0]?.max ?? '?' };
    });
    const afterGc = await child.sample(true);
    const busyRss = median(busy.map((s) => s.rss));
    const perTurn = (busyRss - idle) / INFLIGHT / 1e6;
    ctx.log(
      `turn: worker RSS idle ${(idle / 1e6).toFixed(1)} MB; with ${INFLIGHT} in flight (reached after ${ms(rampMs)}) median ${(busyRss / 1e6).toFixed(1)} MB ` +
        `(max ${(Math.max(...busy.map((s) => s.rss)) / 1e6).toFixed(1)} MB, heapUsed ${(median(busy.map((s) => s.heapUsed)) / 1e6).toFixed(1)} MB), ` +
        `after a forced GC ${(afterGc.rss / 1e6).toFixed(1)} MB (${((afterGc.rss - idle) / INFLIGHT / 1e6).toFixed(2)} MB/turn); ` +
        `${connections.n} Postgres connections to the bench database (server max_connections ${connections.max}; the worker's pool allows ${Math.min(40, INFLIGHT + 4)})`,
    );
    return { bench: 'rss_per_inflight_turn_mb', value: round(perTurn, 2), unit: 'MB', baseline: round(idle / 1e6, 1), target: '<= 2' };
  } finally {
    // Stopping interrupts the 64 sleeping CLIs (SIGTERM to their groups) and hands their turns back.
    await child.stop();
    await completions?.close();
    await client.close();
  }
}

export const turnBench: Benchmark = {
  name: 'turn',
  description: 'the turn protocol end to end with the fake CLI: overhead per turn (1 MB sessions), throughput vs a bare spawn loop, worker RSS per in-flight turn',
  async run(ctx) {
    const h = await createHarness();
    const load = () => os.loadavg().map((l) => l.toFixed(2)).join(' ');
    ctx.log(`turn: database ${h.dbName}, queue ${h.queueName}; CLI children get only the allow-listed env (no NODE_EXTRA_CA_CERTS); the worker spawns runs ${h.config().cli.spawn === 'direct' ? 'itself (AGENTQ_CLI_SPAWN=direct), as the bare runs and the floor do' : 'through its spawn helper, the bare runs and the floor from this process'}; ${os.cpus().length} cores, load average ${load()}`);
    try {
      const figures: Figure[] = [];
      figures.push(...(await overheadFigures(h, ctx)));
      for (const lanes of [2, 8]) figures.push(...(await throughputFigures(h, ctx, lanes)));
      figures.push(await rssFigure(h, ctx));
      ctx.log(`turn: load average at the end ${load()} (other work on this machine shows up as noise in every figure)`);
      return figures;
    } finally {
      await h.cleanup();
    }
  },
};
