// The metrics a worker process exports about the turns it runs: counters, histograms and
// the in-flight gauge, fed by the attempt observer (src/worker/observer.ts). Each set of
// metrics lives in its own prom-client Registry (never the global one), so several workers
// or tests in one process do not share or collide.
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { RunOutcome } from '../runner/outcome.js';
import type { AttemptObserver, ObserveAttempt, WarmObserver } from '../worker/observer.js';

/** Seconds: from sub-second fake turns to multi-hour agent runs. */
const TURN_BUCKETS = [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400];
/** Seconds: Postgres round trips (hydrate, commit, checkpoint) up to the CLI run itself. */
const PHASE_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200];

export interface WorkerMetrics {
  readonly registry: Registry;
  /** Pass as `observeAttempt` to createWorker. */
  readonly observeAttempt: ObserveAttempt;
  /** Pass as `observeWarm` to createWorker. */
  readonly observeWarm: WarmObserver;
}

type TokenKind = 'input' | 'output' | 'cache_read' | 'cache_creation';

function tokenCounts(outcome: RunOutcome): [TokenKind, number][] {
  const u = outcome.usage;
  if (!u) return [];
  const counts: [TokenKind, number | undefined][] = [
    ['input', u.input_tokens],
    ['output', u.output_tokens],
    ['cache_read', u.cache_read_input_tokens],
    ['cache_creation', u.cache_creation_input_tokens],
  ];
  return counts.filter((c): c is [TokenKind, number] => typeof c[1] === 'number' && Number.isFinite(c[1]) && c[1] > 0);
}

/** Creates the worker metrics in `registry` (default: a new one). */
export function createWorkerMetrics(registry: Registry = new Registry()): WorkerMetrics {
  const registers = [registry];
  const turns = new Counter({
    name: 'agentq_turns_total',
    help: 'Turns committed by this worker, by final status (succeeded, failed, cancelled).',
    labelNames: ['status'] as const,
    registers,
  });
  const turnDuration = new Histogram({
    name: 'agentq_turn_duration_seconds',
    help: 'From the claim to the commit of the attempt that finished a turn, by final status.',
    labelNames: ['status'] as const,
    buckets: TURN_BUCKETS,
    registers,
  });
  const phaseDuration = new Histogram({
    name: 'agentq_attempt_phase_duration_seconds',
    help: 'Time spent in each phase of an attempt: claim, lease, workspace, hydrate, prepare, run, commit (commit = final persist + commit transaction).',
    labelNames: ['phase'] as const,
    buckets: PHASE_BUCKETS,
    registers,
  });
  const checkpointDuration = new Histogram({
    name: 'agentq_checkpoint_duration_seconds',
    help: 'Time to persist one checkpoint of a running turn (new session lines and events).',
    buckets: PHASE_BUCKETS,
    registers,
  });
  const inFlight = new Gauge({
    name: 'agentq_turns_in_flight',
    help: 'Attempts running in this worker now (claimed and not yet committed or handed back).',
    registers,
  });
  const attempts = new Counter({
    name: 'agentq_attempts_total',
    help: 'Attempts ended, by result: committed, awaiting_approval (committed, stopped at a gated tool call), retry (handed back with backoff), shutdown (handed back on drain), worker_error (handed back after a failure inside the worker), lease_lost, error (threw; the reconciler re-dispatches).',
    labelNames: ['result'] as const,
    registers,
  });
  const cliOutcomes = new Counter({
    name: 'agentq_cli_outcomes_total',
    help: 'CLI runs by outcome class (success, max_turns, budget_exceeded, api_error, session_not_found, cli_not_found, timed_out, cancelled, crashed, protocol_error, resource_limit).',
    labelNames: ['outcome'] as const,
    registers,
  });
  const cost = new Counter({
    name: 'agentq_cost_usd_total',
    help: 'Cost in USD reported by the CLI runs of this worker (every attempt, retried ones included).',
    registers,
  });
  const tokens = new Counter({
    name: 'agentq_tokens_total',
    help: 'Tokens reported by the CLI runs of this worker, by kind (input, output, cache_read, cache_creation).',
    labelNames: ['kind'] as const,
    registers,
  });
  const warmConversations = new Gauge({
    name: 'agentq_warm_conversations',
    help: 'Conversations this worker keeps warm now: CLI processes kept between turns (idle, or running a turn).',
    registers,
  });
  const warmTurns = new Counter({
    name: 'agentq_warm_turns_total',
    help: 'Warm-eligible turns by result: hit (ran on a kept CLI process), miss (started a process).',
    labelNames: ['result'] as const,
    registers,
  });
  const warmHandoffs = new Counter({
    name: 'agentq_warm_handoffs_total',
    help: 'Turns of a conversation kept warm by another worker, by that worker\'s answer: accepted, declined, no_answer (then the turn ran cold here).',
    labelNames: ['answer'] as const,
    registers,
  });
  const warmReleased = new Counter({
    name: 'agentq_warm_released_total',
    help: 'Warm conversations let go, by reason: idle, cli_exited, lease_lost, evicted, shutdown, stale, not_reusable.',
    labelNames: ['reason'] as const,
    registers,
  });
  warmConversations.set(0);
  for (const result of ['hit', 'miss']) warmTurns.inc({ result }, 0);
  const observeWarm: WarmObserver = {
    size: (n) => warmConversations.set(n),
    turn: (result) => warmTurns.inc({ result }),
    handoff: (answer) => warmHandoffs.inc({ answer }),
    released: (reason) => warmReleased.inc({ reason }),
  };
  // Zero-valued series up front, so rate() and absent() work before the first turn.
  for (const status of ['succeeded', 'failed', 'cancelled']) turns.inc({ status }, 0);
  for (const result of ['committed', 'retry', 'shutdown', 'worker_error', 'lease_lost', 'error']) attempts.inc({ result }, 0);

  const observeAttempt: ObserveAttempt = (info) => {
    inFlight.inc();
    phaseDuration.observe({ phase: 'claim' }, info.claimMs / 1000);
    let ended = false;
    const observer: AttemptObserver = {
      phase(phase, ms) {
        phaseDuration.observe({ phase }, ms / 1000);
      },
      checkpointed(ms) {
        checkpointDuration.observe(ms / 1000);
      },
      cliExited(outcome) {
        cliOutcomes.inc({ outcome: outcome.type });
        if (Number.isFinite(outcome.costUsd) && outcome.costUsd > 0) cost.inc(outcome.costUsd);
        for (const [kind, n] of tokenCounts(outcome)) tokens.inc({ kind }, n);
      },
      requeued(reason) {
        attempts.inc({ result: reason });
      },
      ended(verdict, elapsedMs) {
        if (ended) return;
        ended = true;
        inFlight.dec();
        if (!verdict) attempts.inc({ result: 'error' });
        // Stopped for a person: committed, but the turn is not over (docs/approvals.md).
        else if (verdict.kind === 'committed' && verdict.status === 'awaiting_approval') attempts.inc({ result: 'awaiting_approval' });
        else if (verdict.kind === 'committed') {
          attempts.inc({ result: 'committed' });
          turns.inc({ status: verdict.status });
          turnDuration.observe({ status: verdict.status }, elapsedMs / 1000);
        } else if (verdict.kind === 'lease_lost') attempts.inc({ result: 'lease_lost' });
        // 'requeued' was counted by requeued() with its reason.
      },
    };
    return observer;
  };

  return { registry, observeAttempt, observeWarm };
}
