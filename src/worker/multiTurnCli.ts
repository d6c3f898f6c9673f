// A CLI process in stream-json input mode that answers one user message after another:
// the process of a warm conversation. Each turn routes the process's events to its own
// handler and ends at that message's `result` (the CLI then waits for the next message)
// or when the process ends first. The real CLI reports `total_cost_usd` summed over the
// whole process: a turn's cost is the difference from the previous result.
import { collectToolUses, deferredToolUseOf, permissionDenialsOf, type ClaudeEvent, type ResultEvent } from '../runner/events.js';
import type { RunOptions } from '../runner/options.js';
import { classifyRun, emptyFacts, type RunOutcome } from '../runner/outcome.js';
import { startClaude, type ClaudeRun, type RunnerSettings } from '../runner/runClaude.js';

/** How one turn of the process ended. */
export interface CliTurn {
  /** The turn's own outcome (from its result), or the process's when it ended before one. */
  outcome: RunOutcome;
  /** A result was seen and the process still runs: it can take another message. */
  alive: boolean;
}

export class MultiTurnCli {
  readonly run: ClaudeRun;
  /** The process's own outcome; settles when it and its process group are gone. */
  readonly exited: Promise<RunOutcome>;
  private sink: ((e: ClaudeEvent) => void) | undefined;
  private onResult: ((r: ResultEvent) => void) | undefined;
  private readonly controller = new AbortController();
  private ended = false;
  /** The tool calls of the current turn (this process's facts cover every turn it ran). */
  private readonly toolUses = new Set<string>();
  /** total_cost_usd of the last result: the cost of every turn so far. */
  costReported = 0;
  /** Turns started on this process (1 after the first). */
  turns = 0;

  constructor(
    options: RunOptions,
    private readonly settings: RunnerSettings,
  ) {
    this.run = startClaude({ ...options, streamInput: true }, settings, {
      signal: this.controller.signal,
      onEvent: (e) => {
        collectToolUses(e, this.toolUses);
        this.sink?.(e);
        if (e.kind === 'result') this.onResult?.(e.data);
      },
    });
    // The handler above never throws, so the outcome does not reject; be safe anyway.
    this.exited = this.run.outcome.catch(
      (err: unknown): RunOutcome => ({ ...emptyFacts(), type: 'crashed', message: err instanceof Error ? err.message : String(err) }),
    );
    void this.exited.then(() => (this.ended = true));
  }

  get isRunning(): boolean {
    return !this.ended;
  }

  /**
   * Runs one turn: `prompt` is written to stdin (undefined for the first turn, whose prompt
   * the process was started with). Aborting `signal` kills the process; the turn then
   * ends with the process's outcome (cancelled with the signal's reason).
   */
  async turn(prompt: string | undefined, onEvent: (e: ClaudeEvent) => void, signal: AbortSignal): Promise<CliTurn> {
    this.turns++;
    this.toolUses.clear();
    const startedAt = performance.now();
    const onAbort = () => this.kill(typeof signal.reason === 'string' ? signal.reason : 'aborted');
    this.sink = onEvent;
    const result = new Promise<ResultEvent>((resolve) => (this.onResult = resolve));
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (signal.aborted) onAbort();
      // A failed write means the process is gone: its outcome says how.
      else if (prompt !== undefined) await this.run.sendUserMessage(prompt).catch(() => undefined);
      const first = await Promise.race([result.then((r) => ({ result: r })), this.exited.then((o) => ({ exit: o }))]);
      if ('exit' in first) return { outcome: this.exitOutcome(first.exit), alive: false };
      return { outcome: this.turnOutcome(first.result, performance.now() - startedAt), alive: !this.ended };
    } finally {
      this.sink = undefined;
      this.onResult = undefined;
      signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The process ended before this turn's result. Its own outcome is classified from the
   * last result it printed, which belongs to an earlier turn: for this turn that is a crash.
   */
  private exitOutcome(process: RunOutcome): RunOutcome {
    const o = { ...process, toolCalls: this.toolUses.size, permissionDenials: [] };
    const costUsd = costDiff(o.costUsd, this.costReported);
    switch (o.type) {
      case 'success':
      case 'max_turns':
      case 'budget_exceeded':
      case 'api_error': {
        const how = o.signal ? `signal ${o.signal}` : `exit code ${o.exitCode}`;
        const tail = o.stderrTail.trim();
        return {
          ...o,
          type: 'crashed',
          costUsd,
          resultText: undefined,
          message: `the CLI ended with ${how} before the result of this turn${tail ? `: ${tail.slice(-500)}` : ''}`,
        };
      }
      default:
        return { ...o, costUsd };
    }
  }

  private turnOutcome(r: ResultEvent, durationMs: number): RunOutcome {
    const total = r.total_cost_usd ?? this.costReported;
    const costUsd = costDiff(total, this.costReported);
    this.costReported = total;
    return classifyRun({
      facts: {
        sessionId: r.session_id,
        costUsd,
        usage: r.usage,
        numTurns: r.num_turns ?? 0,
        durationMs,
        exitCode: undefined,
        signal: undefined,
        stderrTail: '',
        resultText: r.result,
        toolCalls: this.toolUses.size,
        permissionDenials: permissionDenialsOf(r),
        deferredToolUse: deferredToolUseOf(r),
      },
      requestedSessionId: r.session_id ?? '',
      claudePath: this.settings.claudePath,
      spawnError: undefined,
      termination: undefined,
      result: r,
    });
  }

  /**
   * Closes stdin and routes what the process still prints to `onEvent` until it ends (a
   * mid-run message it answers as a turn of its own); returns the process's outcome.
   */
  async finish(onEvent: (e: ClaudeEvent) => void): Promise<RunOutcome> {
    this.sink = onEvent;
    this.run.endInput();
    try {
      return await this.exited;
    } finally {
      this.sink = undefined;
    }
  }

  /** Stops the process now (its whole process tree). */
  kill(reason: string): void {
    this.controller.abort(reason);
  }

  /** Closes stdin so the CLI ends after what it was given; kills it if it is still there after `graceMs`. */
  async close(graceMs: number): Promise<RunOutcome> {
    this.run.endInput();
    const timer = setTimeout(() => this.kill('closed'), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A turn's share of the process's running cost, without float noise (cents are summed as binary fractions). */
function costDiff(total: number, before: number): number {
  return Math.max(0, Math.round((total - before) * 1e9) / 1e9);
}
