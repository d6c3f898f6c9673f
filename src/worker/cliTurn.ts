// Run: the turn's CLI, cold (a `claude -p` process that exits) or warm (a multi-turn
// process in stream-json input mode, kept open after its result), with a timed checkpoint
// and lease heartbeat while it runs. Its events are buffered on the context and published
// live; with `streamInput`, user messages reach its stdin until its first result.
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import type { InputOutcome } from '../live/inputs.js';
import type { ClaudeEvent } from '../runner/events.js';
import type { RunOptions } from '../runner/options.js';
import { reportedCliVersion } from '../runner/cliVersion.js';
import type { RunOutcome } from '../runner/outcome.js';
import { startClaude, type ClaudeRun } from '../runner/runClaude.js';
import type { AttemptContext } from './attemptContext.js';
import type { Checkpoints } from './checkpoint.js';
import { MultiTurnCli } from './multiTurnCli.js';
import { fileSize, waitForSessionLine } from './sessionFlush.js';
import type { CliSession } from './sessionStart.js';

function eventType(e: ClaudeEvent): string {
  if (e.kind === 'other') return typeof e.data.type === 'string' ? e.data.type : 'other';
  return e.kind;
}

export class CliTurn {
  /** With `streamInput`: the run whose stdin takes user messages, until its first result. */
  private inputRun: ClaudeRun | undefined;
  /** The uuid of the last message line the CLI printed (its session line carries the same uuid). */
  private lastMessageUuid: string | undefined;

  constructor(
    private readonly ctx: AttemptContext,
    private readonly checkpoints: Checkpoints,
  ) {}

  /** Runs the CLI on `prompt` in `session` to the turn's result. */
  async run(session: CliSession, prompt: string | undefined): Promise<RunOutcome> {
    const { ctx } = this;
    const { config } = ctx;
    const { continueOnRetry: _ignored, warm: _warm, approvals: _approvals, ...options } = ctx.turn.options as Record<string, unknown> & { continueOnRetry?: boolean };
    const checkpointTimer = setInterval(() => {
      // A timed checkpoint logs its own failures; this catches only a chain already broken by a final one.
      this.checkpoints.schedule(false).catch((err: unknown) => ctx.log().warn({ err }, 'checkpoint failed'));
    }, config.worker.checkpointIntervalMs);
    const heartbeatTimer = setInterval(() => void ctx.lease.heartbeat(), Math.max(200, Math.floor(config.worker.leaseMs / 3)));
    try {
      const outcome = ctx.multiTurn && prompt !== undefined ? await this.runMultiTurn(prompt, session, options) : await this.runOnce(prompt, session, options);
      ctx.deps.observer?.cliExited?.(outcome);
      return outcome;
    } finally {
      // A kept process's stdin stays open for its next turn.
      if (ctx.multiTurn) this.inputRun = undefined;
      else this.endInput();
      clearInterval(checkpointTimer);
      clearInterval(heartbeatTimer);
    }
  }

  /**
   * A user message for the running CLI (POST /v1/turns/:id/input). Taken only while the
   * run's stdin is open: from its start until its first result; then stdin is closed so
   * the CLI finishes what it was given and exits. Recorded as an event once written.
   */
  async acceptInput(text: string): Promise<InputOutcome> {
    const run = this.inputRun;
    if (!run) return { outcome: 'refused', detail: 'the turn takes no input now (its CLI has not started, or has given its result)' };
    await run.sendUserMessage(text);
    this.ctx.gotInput = true;
    this.ctx.record({ type: 'agentq', subtype: 'user_input', text });
    return { outcome: 'delivered' };
  }

  /** A cold run: the CLI exits after the turn. */
  private async runOnce(prompt: string | undefined, session: CliSession, options: Record<string, unknown>): Promise<RunOutcome> {
    const run = startClaude(this.runOptions(prompt, session, options), this.ctx.deps.runner, {
      signal: this.ctx.controller.signal,
      onEvent: (e) => {
        this.onEvent(e);
        // The prompt is answered: close stdin, so the CLI ends after what it was given.
        if (e.kind === 'result') this.endInput();
      },
    });
    if (options.streamInput === true && prompt !== undefined) this.inputRun = run;
    return run.outcome;
  }

  /**
   * A warm-eligible or warm turn: the CLI in stream-json input mode, kept open after the
   * result. The turn ends at its result; a process that took a mid-run message is let
   * finish like a cold run (it may answer that message as a turn of its own).
   */
  private async runMultiTurn(prompt: string, session: CliSession, options: Record<string, unknown>): Promise<RunOutcome> {
    const { ctx } = this;
    // A kept process was given its first prompt when it started; later ones go to its stdin.
    const taken = ctx.multiTurn?.kept !== undefined && ctx.cli === ctx.multiTurn.kept.cli ? ctx.cli : undefined;
    const cli =
      taken ??
      new MultiTurnCli(
        {
          ...this.runOptions(prompt, session, options),
          // The CLI then writes a turn's session lines before it prints the result, instead
          // of up to ~100 ms later (its write buffer's flush interval): the commit need not wait.
          env: { CLAUDE_CODE_EAGER_FLUSH: '1' },
        },
        ctx.deps.runner,
      );
    ctx.cli = cli;
    if (options.streamInput === true) this.inputRun = cli.run;
    const costBefore = cli.costReported;
    const fileBefore = await fileSize(ctx.sessionPath());
    const onEvent = (e: ClaudeEvent) => {
      this.onEvent(e);
      // The prompt is answered: no more mid-run input for this turn.
      if (e.kind === 'result') this.inputRun = undefined;
    };
    const turn = await cli.turn(taken ? prompt : undefined, onEvent, ctx.controller.signal);
    this.inputRun = undefined;
    if (!turn.alive) return turn.outcome;
    if (!ctx.gotInput) {
      // The CLI writes the turn's session lines after its result: the commit waits for them.
      // If they do not come, the process is let finish (it writes them at exit) and not kept.
      const flushed =
        turn.outcome.type === 'success' &&
        (await waitForSessionLine(() => ctx.sessionPath(), fileBefore, this.lastMessageUuid, ctx.controller.signal, undefined, ctx.config.store.sessionMaxBytes));
      if (flushed) return turn.outcome;
      await cli.finish(onEvent);
      return turn.outcome;
    }
    // No await since the result: nothing the CLI printed after it is missed.
    const exit = await cli.finish(onEvent);
    return { ...turn.outcome, costUsd: Math.max(0, Math.round((exit.costUsd - costBefore) * 1e9) / 1e9), resultText: exit.resultText ?? turn.outcome.resultText };
  }

  private endInput(): void {
    const run = this.inputRun;
    this.inputRun = undefined;
    run?.endInput();
  }

  private onEvent(e: ClaudeEvent): void {
    if (e.kind === 'init') {
      this.ctx.reportedSessionId = e.data.session_id;
      const version = reportedCliVersion(e.data.claude_code_version);
      if (version !== undefined) this.ctx.cliVersion = version;
    }
    if ((e.kind === 'assistant' || e.kind === 'user') && typeof e.data.uuid === 'string') this.lastMessageUuid = e.data.uuid;
    this.ctx.push(eventType(e), e.line);
  }

  /** The turn's CLI options in this attempt's directories. */
  private runOptions(prompt: string | undefined, session: CliSession, options: Record<string, unknown>): RunOptions {
    const { ctx } = this;
    const configDir = ctx.configLink ?? ctx.configDir;
    const gate = ctx.gate === undefined ? {} : { gate: { ...ctx.gate, runKey: randomUUID() } };
    // No prompt: resume the deferred call (one message, so no stdin to keep open).
    const resume = prompt === undefined ? { resumeDeferred: true, streamInput: false } : { prompt };
    const attemptLink = { link: ctx.ownerLink, target: ctx.configDir };
    return { ...(options as Partial<RunOptions>), ...resume, ...gate, cwd: ctx.cwd, configDir, attemptLink, tmpDir: path.join(ctx.runDir, 'tmp'), session };
  }
}
