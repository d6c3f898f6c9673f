// `agentq worker`: runs the turn worker until SIGTERM/SIGINT. The first signal drains
// (running turns get AGENTQ_SHUTDOWN_GRACE_MS, then are checkpointed and handed back);
// a second one interrupts at once, after checkpointing what it can.
// Ephemeral workers: `--once` runs one turn and exits with a code that tells how it
// ended (ONCE_EXIT); `--max-turns-per-process` and `--idle-exit-ms` end a worker after a
// burst. In every mode the process exits only after its last turn is committed or handed back.
import type { Config } from '../config.js';
import { createLogger } from '../logger.js';
import { describeCliVersion, probeCliVersion } from '../runner/cliVersion.js';
import type { WorkerTelemetry } from '../metrics/workerEndpoint.js';
import { createWorker, type WorkerEnd } from '../worker/worker.js';
import type { CliIo } from './main.js';
import { stopWithNpmParent } from './parentWatch.js';

/** Exit codes of `agentq worker --once` (2 stays "bad usage or configuration", 1 "unexpected error"). */
export const ONCE_EXIT = {
  succeeded: 0,
  /** The turn was committed as failed (its error is in the turn). */
  failed: 3,
  /** The turn was committed as cancelled. */
  cancelled: 4,
  /** No turn could be claimed within --wait-ms (or a signal came first). */
  noTurn: 5,
  /** The turn stopped at a gated tool call and waits for a person (docs/approvals.md); a decision queues it again. */
  awaitingApproval: 6,
  /** The turn was handed back to the queue (retryable failure, drained by a signal, lease lost): another worker continues it. */
  handedBack: 75,
  /** The attempt failed inside the worker and could not even hand the turn back; the reconciler re-dispatches it. */
  workerError: 1,
} as const;

export interface WorkerFlags {
  concurrency?: string;
  metricsPort?: string;
  once?: boolean;
  waitMs?: string;
  maxTurnsPerProcess?: string;
  idleExitMs?: string;
}

/** Default of --wait-ms: how long `--once` waits for a turn it can claim. */
export const DEFAULT_ONCE_WAIT_MS = 10_000;

function wholeNumber(io: CliIo, flag: string, value: string | undefined, min: number, max: number): number | undefined | null {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    io.err(`${flag} must be a whole number from ${min} to ${max} (got ${JSON.stringify(value)})`);
    return null;
  }
  return n;
}

/** The --once exit code for how the worker ended, with a message for stderr. */
export function onceOutcome(end: WorkerEnd, waitMs: number): { code: number; message: string } {
  const last = end.turns.at(-1);
  if (!last) {
    return { code: ONCE_EXIT.noTurn, message: end.reason === 'idle' ? `no turn to run within --wait-ms ${waitMs}` : 'stopped before taking a turn' };
  }
  const turn = `turn ${last.turnId}`;
  switch (last.ending) {
    case 'succeeded':
      return { code: ONCE_EXIT.succeeded, message: `${turn} succeeded and is committed` };
    case 'failed':
      return { code: ONCE_EXIT.failed, message: `${turn} FAILED and is committed as failed; see \`agentq show\` for its error` };
    case 'cancelled':
      return { code: ONCE_EXIT.cancelled, message: `${turn} was CANCELLED and is committed as cancelled` };
    case 'awaiting_approval':
      return { code: ONCE_EXIT.awaitingApproval, message: `${turn} stopped at a gated tool call and is committed; it waits for a decision (agentq approvals)` };
    case 'requeued':
      return { code: ONCE_EXIT.handedBack, message: `${turn} was handed back to the queue (retryable failure or drain); another worker continues it` };
    case 'lease_lost':
      return { code: ONCE_EXIT.handedBack, message: `${turn}: another worker took its lease over; this worker wrote nothing after that` };
    case 'error':
      return { code: ONCE_EXIT.workerError, message: `${turn}: the attempt failed inside the worker (see the log); the reconciler dispatches the turn again` };
  }
}

export async function workerCommand(config: Config, io: CliIo, flags: WorkerFlags): Promise<number> {
  let concurrency: number | undefined;
  if (flags.concurrency !== undefined) {
    concurrency = Number(flags.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 256) {
      io.err(`--concurrency must be a whole number from 1 to 256 (got ${JSON.stringify(flags.concurrency)})`);
      return 2;
    }
  }
  let metricsPort = config.worker.metricsPort;
  if (flags.metricsPort !== undefined) {
    metricsPort = Number(flags.metricsPort);
    if (!/^\d+$/.test(flags.metricsPort) || metricsPort > 65535) {
      io.err(`--metrics-port must be a port number from 0 to 65535 (got ${JSON.stringify(flags.metricsPort)})`);
      return 2;
    }
  }
  const waitMs = wholeNumber(io, '--wait-ms', flags.waitMs, 1, 86_400_000);
  const maxTurns = wholeNumber(io, '--max-turns-per-process', flags.maxTurnsPerProcess, 1, 1_000_000_000);
  const idleExitMs = wholeNumber(io, '--idle-exit-ms', flags.idleExitMs, 1, 86_400_000);
  if (waitMs === null || maxTurns === null || idleExitMs === null) return 2;
  if (flags.once && (maxTurns !== undefined || idleExitMs !== undefined)) {
    io.err('--once takes one turn: use --wait-ms with it, not --max-turns-per-process or --idle-exit-ms');
    return 2;
  }
  if (!flags.once && waitMs !== undefined) {
    io.err('--wait-ms goes with --once (use --idle-exit-ms for a worker that serves a burst)');
    return 2;
  }
  if (flags.once && concurrency !== undefined && concurrency !== 1) {
    io.err('--once runs one turn: --concurrency must be 1 or left out');
    return 2;
  }
  // --once is one turn, and waiting for it is being idle before the first one.
  const lifetime = flags.once
    ? { concurrency: 1, maxTurns: 1, idleExitMs: waitMs ?? DEFAULT_ONCE_WAIT_MS }
    : { ...(maxTurns !== undefined ? { maxTurns } : {}), ...(idleExitMs !== undefined ? { idleExitMs } : {}) };
  let telemetry: WorkerTelemetry | undefined;
  if (metricsPort !== undefined) {
    // Imported only when asked for: prom-client is not needed to run turns (cold start).
    const { startWorkerTelemetry } = await import('../metrics/workerEndpoint.js');
    telemetry = await startWorkerTelemetry(config, { port: metricsPort, log: createLogger(config, 'agentq-metrics') });
    io.err(`metrics at http://${config.worker.metricsHost}:${telemetry.port}/metrics`);
  }
  const worker = createWorker(config, {
    ...(concurrency ? { concurrency } : {}),
    ...lifetime,
    ...(telemetry ? { observeAttempt: telemetry.observeAttempt, observeWarm: telemetry.observeWarm } : {}),
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    io.err(`${signal}: ${signals === 1 ? 'draining' : 'interrupting running turns'}`);
    void worker.stop(signals === 1 ? {} : { graceMs: 0 }).catch(() => undefined);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const unwatch = stopWithNpmParent(io.env);
  // Once, alongside the start (the first turn does not wait for it): say so when the CLI is not one agentq was tested with.
  const versionChecked = warnIfUntestedCli(config, io);
  try {
    await worker.start();
    io.err(`worker ${worker.workerId} started`);
    // Settles after stop() by a signal, or when the worker ends on its own (turn limit, idle).
    const end = await worker.finished;
    await telemetry?.close();
    if (flags.once) {
      const { code, message } = onceOutcome(end, lifetime.idleExitMs ?? DEFAULT_ONCE_WAIT_MS);
      io.err(`worker ${worker.workerId} exiting (${code}): ${message}`);
      return code;
    }
    if (end.reason !== 'stopped') io.err(`worker ${worker.workerId} exiting: ${end.reason === 'idle' ? 'idle' : 'turn limit reached'} after ${end.turns.length} turn(s)`);
    return 0;
  } finally {
    await versionChecked;
    unwatch();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}

/** Prints one warning when the configured CLI runs but is not a version agentq was tested with. Never rejects. */
async function warnIfUntestedCli(config: Config, io: CliIo): Promise<void> {
  try {
    const r = await probeCliVersion(config.claudePath, config.cli.env);
    // A CLI that does not run is reported by the first turn (cli_not_found) and by `agentq doctor`.
    if (!r.ok) return;
    const { tested, note } = describeCliVersion(r.version);
    if (!tested) io.err(`warning: the claude CLI at ${config.claudePath} is ${r.output}: ${note}; see docs/cli-versions.md`);
  } catch {
    // A check that cannot run must not stop the worker.
  }
}
