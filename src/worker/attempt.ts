// One attempt of one turn, holding the conversation's lease: hydrate, run, checkpoint,
// then commit, retry or hand back. Every write goes through a transaction that first
// checks the fencing token (assertFence), so an attempt that lost its lease writes
// nothing. Nothing else in the code base decides when a turn is committed.
import { randomUUID } from 'node:crypto';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import { safeErrorMessage, StaleLeaseError, WorkspaceTooLargeError } from '../errors.js';
import type { AgentPath } from '../agentFiles/agentTree.js';
import type { ClaudeEvent } from '../runner/events.js';
import type { RunOptions } from '../runner/options.js';
import type { RunOutcome } from '../runner/outcome.js';
import { startClaude, type ClaudeRun, type RunnerSettings } from '../runner/runClaude.js';
import { SANDBOX_WORKSPACE } from '../sandbox/layout.js';
import type { InputOutcome, InputTarget } from '../live/inputs.js';
import type { LiveEventSink } from '../live/publisher.js';
import type { ConversationRow } from '../store/conversations.js';
import type { StoreDb, StoreTx } from '../store/db.js';
import { workspaceDirName } from '../store/ids.js';
import { discardUncommitted } from '../store/sessions.js';
import {
  appendTurnEvents,
  finishTurn,
  HANDED_BACK_SUBTYPE,
  listTurns,
  requeueTurn,
  setRunSessionId,
  type TurnError,
  type DueTurn,
  type TurnRow,
} from '../store/turns.js';
import { packWorkspace, type PackedWorkspace } from '../store/workspaceArchive.js';
import { storeWorkspace } from '../store/workspaces.js';
import type { LocalCache } from './localCache.js';
import { isTransientDbError, withTransientRetry } from './transient.js';
import { backoffMs, decide, type TurnDecision } from './retryPolicy.js';
import type { AttemptObserver } from './observer.js';
import { MultiTurnCli } from './multiTurnCli.js';
import { LeaseGuard, type FencedWork } from './leaseGuard.js';
import { hydrateConversationSession, prepareWorkspace, type AttemptDisk } from './prepareDisk.js';
import { fileSize, waitForSessionLine } from './sessionFlush.js';
import { configLinkPath, pointConfigLink } from './configLink.js';
import { attemptsExhausted, failUnstored, requeueUnstored, type UnstoredEnd } from './endUnstored.js';
import { RunFiles, SessionFileRefused, type SessionOnDisk } from './runFiles.js';
import type { WarmHandle, WarmPool } from './warmPool.js';

export interface AttemptDeps {
  config: Config;
  /** What this worker kept from the turns it committed. */
  cache: LocalCache;
  db: StoreDb;
  runner: RunnerSettings;
  log: Logger;
  workerId: string;
  /** Metrics and traces of this attempt (src/metrics); optional. */
  observer?: AttemptObserver;
  /** Where events go live as they arrive (src/live); optional. */
  live?: LiveEventSink;
  /** The worker's warm conversations; required for a warm attempt. */
  warmPool?: WarmPool;
}

/** How the attempt uses a kept CLI process (src/worker/warmPool.ts). */
export interface AttemptWarm {
  /** The conversation's kept process, taken with the claim: the turn is written to its stdin. */
  handle?: WarmHandle | undefined;
  /** Keep the CLI after a successful commit for this long (the turn is warm-eligible). */
  keepIdleMs?: number | undefined;
  /** What the process is started with, to match later turns (warmOptionsKey). */
  optionsKey: string;
}

/** What the job should do once the attempt is over. */
export type AttemptVerdict =
  /** The turn reached a terminal status and is committed; `next` is due for dispatch. */
  | { kind: 'committed'; status: string; next: DueTurn | undefined }
  /** Handed back to the queue (retry or drain); run the job again at `runAt`. */
  | { kind: 'requeued'; runAt: Date }
  /** The lease moved to another worker: this attempt wrote nothing after that. */
  | { kind: 'lease_lost' };

interface BufferedEvent {
  seq: number;
  type: string;
  payload: string;
}

const SUMMARY_MAX_CHARS = 8000;

function eventType(e: ClaudeEvent): string {
  if (e.kind === 'other') return typeof e.data.type === 'string' ? e.data.type : 'other';
  return e.kind;
}

export class Attempt implements InputTarget {
  private readonly lease: LeaseGuard;
  private readonly cwd: string;
  private readonly dirName: string;
  private readonly runDir: string;
  private readonly configDir: string;
  /** Unsandboxed: the conversation's stable path to `configDir`, which the CLI is given (./configLink.ts). */
  private readonly configLink: string | undefined;
  private events: BufferedEvent[] = [];
  private eventSeq = 0;
  private reportedSessionId: string | undefined;
  /** The session this attempt started from (hydrated or chosen). */
  private baseSessionId = '';
  /** The digest of the stored workspace archive as read when preparing (null: none stored; undefined: not read). */
  private storedWorkspaceSha: string | null | undefined;
  /** What turns.run_session_id holds now (written only when it changes). */
  private runSessionId: string | null;
  private checkpointing: Promise<void> = Promise.resolve();
  /** With `streamInput`: the run whose stdin takes user messages, until its first result. */
  private inputRun: ClaudeRun | undefined;
  private readonly controller = new AbortController();
  /** With warm: the multi-turn CLI process of this attempt (kept or taken). */
  private cli: MultiTurnCli | undefined;
  /** The uuid of the last message line the CLI printed (its session line carries the same uuid). */
  private lastMessageUuid: string | undefined;
  /** The turn took a mid-run message: its CLI may still answer it, so it is not kept. */
  private gotInput = false;
  /** After a commit that kept the lease warm: the process to hand to the pool. */
  private keepHandle: WarmHandle | undefined;
  /** What the run writes that the attempt stores (the session file, its subagents and folder). */
  private readonly files: RunFiles;
  /** Milliseconds spent in each phase of the attempt, logged with the commit. */
  private readonly phases: Record<string, number> = {};
  private phaseStart = performance.now();

  constructor(
    private readonly deps: AttemptDeps,
    private readonly turn: TurnRow,
    private readonly conversation: ConversationRow,
    fencingToken: number,
    private readonly attempt: number,
    /** performance.now() taken before the claim that granted the lease. */
    claimedAt: number,
    private readonly warm: AttemptWarm | undefined = undefined,
  ) {
    const fence = { conversationId: conversation.id, fencingToken, workerId: deps.workerId };
    this.lease = new LeaseGuard(deps.db, fence, turn.id, deps.config.worker.leaseMs, claimedAt, {
      onLost: () => {
        this.log().warn('lease lost to another worker: stopping without writing');
        this.abort('lease lost');
      },
      onCancelRequested: () => this.abort('cancelled'),
      // Postgres unreachable: keep running; the commit waits for it to come back.
      onRenewError: (err) => this.log().warn({ err }, 'lease renewal failed'),
    });
    this.runSessionId = turn.runSessionId;
    this.dirName = workspaceDirName(conversation.externalId, conversation.tenantId);
    this.cwd = path.join(deps.config.workspaceRoot, this.dirName);
    // A warm process keeps its own dir (its session file is there) from turn to turn.
    this.runDir = warm?.handle?.runDir ?? path.join(deps.config.worker.runsRoot, `${turn.id}.${attempt}.${randomUUID().slice(0, 8)}`);
    this.configDir = path.join(this.runDir, 'config');
    this.configLink = deps.runner.sandbox ? undefined : configLinkPath(deps.config.worker.runsRoot, this.dirName);
    const { store } = deps.config;
    this.files = new RunFiles({
      conversationId: conversation.id,
      attempt,
      configDir: this.configDir,
      cwd: this.cwd,
      cliCwd: this.cliCwd(),
      limits: {
        maxLineBytes: store.sessionMaxLineBytes,
        sessionMaxBytes: store.sessionMaxBytes,
        folderMaxBytes: store.workspaceMaxBytes,
        maxEntries: store.workspaceMaxEntries,
      },
      record: (payload) => this.record(payload),
      warn: (fields, message) => this.log().warn(fields, message),
    });
  }

  /**
   * The cwd the CLI sees, which names its session folder: sandboxed, the fixed mount
   * point (the same on every worker); else undefined (the workspace's real path).
   */
  private cliCwd(): string | undefined {
    return this.deps.runner.sandbox ? SANDBOX_WORKSPACE : undefined;
  }

  /** Stops the run: `reason` is 'cancelled', 'shutdown' or why the lease was lost. */
  abort(reason: string): void {
    this.controller.abort(reason);
  }

  async run(): Promise<AttemptVerdict> {
    try {
      return await this.runInner();
    } catch (err) {
      if (err instanceof StaleLeaseError || this.lease.lost) return { kind: 'lease_lost' };
      // A failure of this worker rather than of the turn (a full disk, an unreadable
      // archive, a bug): hand the turn back with backoff instead of keeping its lease.
      // If even that fails (Postgres down), the job fails and the reconciler re-dispatches it.
      this.log().error({ err }, 'the attempt failed inside the worker; handing the turn back');
      const { retryBaseMs, retryMaxMs, maxAttempts } = this.deps.config.worker;
      const last = this.attempt >= maxAttempts;
      const message = safeErrorMessage(err);
      const error: TurnError = { class: 'worker_error', message: last ? `${message} (after ${this.attempt} attempts)` : message, retryable: true };
      const delayMs = backoffMs(this.attempt, retryBaseMs, retryMaxMs);
      try {
        return last ? await this.commit(undefined, 'failed', error) : await this.requeue(delayMs, error);
      } catch (again) {
        if (again instanceof StaleLeaseError || this.lease.lost) return { kind: 'lease_lost' };
        // Postgres away: the job fails and the reconciler dispatches the turn again later.
        if (isTransientDbError(again)) throw again;
        // Storing failed again for what it holds: end without what the run wrote (./endUnstored.ts).
        this.log().error({ err: again }, 'storing the attempt failed again; ending it without what the run wrote');
        return await this.endUnstored(error, last ? undefined : delayMs);
      }
    } finally {
      await this.settleProcess();
    }
  }

  /** After the attempt: the warm process goes to the pool, or is closed; the run dir goes with it. */
  private async settleProcess(): Promise<void> {
    const { warmPool } = this.deps;
    if (this.keepHandle && warmPool) {
      warmPool.keep(this.keepHandle);
      return;
    }
    const taken = this.warm?.handle;
    // The lease is not warm any more (committed cold, requeued or lost): nothing to release.
    if (taken && warmPool) return warmPool.discard(taken, 'not_reusable', false);
    await this.cli?.close(this.deps.config.cli.killGraceMs);
    await rm(this.runDir, { recursive: true, force: true }).catch(() => undefined);
  }

  /** Fails the turn (or, with `delayMs`, hands it back) storing nothing the run wrote. */
  private async endUnstored(error: TurnError, delayMs?: number): Promise<AttemptVerdict> {
    const end: UnstoredEnd = {
      turnId: this.turn.id,
      conversationId: this.conversation.id,
      attempt: this.attempt,
      eventSeq: ++this.eventSeq,
      sessionIds: [this.reportedSessionId, this.baseSessionId, this.runSessionId, this.conversation.sessionId],
      conversationSessionId: this.conversation.sessionId,
      error,
    };
    this.events = [];
    const run = (): Promise<DueTurn | Date | undefined> => (delayMs === undefined ? failUnstored(this.lease, end) : requeueUnstored(this.lease, end, delayMs));
    const ended = await withTransientRetry(this.log(), run);
    if (ended instanceof Date) return { kind: 'requeued', runAt: ended };
    return { kind: 'committed', status: 'failed', next: ended };
  }

  /**
   * A fenced transaction (LeaseGuard.fenced) that stores what the run wrote. Refused for
   * the session file (RunFiles), it is rolled back and run once more without it.
   */
  private async fenced<T>(work: FencedWork<T>): Promise<T> {
    try {
      return await this.lease.fenced(work);
    } catch (err) {
      if (!(err instanceof SessionFileRefused)) throw err;
      this.files.refuse(err);
      return this.lease.fenced(work);
    }
  }

  private log(): Logger {
    return this.deps.log.child({ turnId: this.turn.id, conversationId: this.conversation.externalId, attempt: this.attempt });
  }

  private async runInner(): Promise<AttemptVerdict> {
    const { config } = this.deps;
    const exhausted = await attemptsExhausted(this.deps.db, this.turn.id, this.attempt, config.worker.maxAttempts);
    if (exhausted) return this.endUnstored(exhausted);
    const taken = this.warm?.handle;
    if (taken) return this.runWarm(taken);
    // A worker frozen between its claim and here (SIGSTOP, a long GC, a stalled VM) may
    // have lost the lease: it must not empty the directory another owner is using.
    await this.lease.ensure();
    this.mark('lease');
    this.storedWorkspaceSha = await prepareWorkspace(this.disk());
    this.mark('workspace');
    const start = await this.chooseSession();
    this.mark('hydrate');
    if (start.kind === 'missing') {
      this.record({ type: 'agentq', subtype: 'session_missing', policy: config.worker.missingSessionPolicy, sessionId: start.sessionId });
      if (config.worker.missingSessionPolicy === 'fail') {
        return this.commit(undefined, 'failed', {
          class: 'session_missing',
          message: `the stored session ${start.sessionId} has no lines to resume (policy: fail)`,
          retryable: false,
        });
      }
    }
    let session: RunOptions['session'] =
      start.kind === 'resume' ? { mode: 'resume', sessionId: start.sessionId } : { mode: 'new', sessionId: start.kind === 'new' ? start.sessionId : randomUUID() };
    await this.useSession(session, start.kind !== 'resume');
    const prompt = await this.promptFor(start);

    // The same right before the CLI starts: a stale attempt must not run tools at all.
    await this.lease.ensure();
    await this.pointConfigLink();
    this.mark('prepare');
    let outcome = await this.runCli(prompt, session);
    this.deps.observer?.cliExited?.(outcome);
    if (outcome.type === 'session_not_found' && session.mode === 'resume' && config.worker.missingSessionPolicy === 'fresh' && !this.lease.lost && !this.controller.signal.aborted) {
      // The store had the session but the CLI could not resume it (the file it looked for
      // is not where the worker put it, a CLI that no longer reads it): the `fresh` policy
      // applies as when the store has nothing, within the same attempt.
      this.record({ type: 'agentq', subtype: 'session_missing', policy: 'fresh', sessionId: session.sessionId, reportedBy: 'cli' });
      session = { mode: 'new', sessionId: randomUUID() };
      this.reportedSessionId = undefined;
      await this.useSession(session, true);
      await this.lease.ensure();
      outcome = await this.runCli(`${await this.summary()}\n\n${this.turn.prompt}`, session);
      this.deps.observer?.cliExited?.(outcome);
    }
    return this.conclude(outcome, session);
  }

  /** A turn on the conversation's kept process: no workspace or session to prepare, the prompt goes to its stdin. */
  private async runWarm(h: WarmHandle): Promise<AttemptVerdict> {
    this.storedWorkspaceSha = h.workspaceSha;
    this.baseSessionId = h.sessionId;
    // From here on the run may change the directory.
    await this.deps.cache.unmarkWorkspace(this.dirName);
    this.record({ type: 'agentq', subtype: 'warm_turn', sessionId: h.sessionId });
    this.mark('prepare');
    this.cli = h.cli;
    const session: RunOptions['session'] = { mode: 'resume', sessionId: h.sessionId };
    const outcome = await this.runCli(this.turn.prompt, session);
    this.deps.observer?.cliExited?.(outcome);
    return this.conclude(outcome, session);
  }

  private async conclude(outcome: RunOutcome, session: RunOptions['session']): Promise<AttemptVerdict> {
    this.mark('run');
    await this.checkpointing;
    if (this.lease.lost) return { kind: 'lease_lost' };
    // Only a run the drain actually interrupted is handed back; one that finished first commits.
    if (outcome.type === 'cancelled' && this.controller.signal.reason === 'shutdown') {
      // Drained on shutdown: hand the turn back at once; another worker continues it.
      this.record({ type: 'agentq', subtype: HANDED_BACK_SUBTYPE, reason: 'shutdown' });
      return this.requeue(0, null);
    }
    const decision = this.refusedSessionDecision(decide(outcome));
    this.log().info({ outcome: outcome.type, decision: decision.kind }, 'attempt finished');
    switch (decision.kind) {
      case 'finish':
        return this.commit(outcome, decision.status, decision.error ?? null, this.mayKeepWarm(outcome));
      case 'retry':
        return this.retryOrFail(outcome, decision.error);
      case 'session_missing':
        this.record({ type: 'agentq', subtype: 'session_missing', policy: 'fail', sessionId: session.sessionId });
        return this.commit(outcome, 'failed', decision.error);
    }
  }

  /** A retryable failure: handed back with backoff, or committed as failed once the attempts are used. */
  private retryOrFail(outcome: RunOutcome, error: TurnError): Promise<AttemptVerdict> {
    const { maxAttempts, retryBaseMs, retryMaxMs } = this.deps.config.worker;
    if (this.attempt >= maxAttempts) return this.commit(outcome, 'failed', { ...error, message: `${error.message} (after ${this.attempt} attempts)` });
    return this.requeue(backoffMs(this.attempt, retryBaseMs, retryMaxMs), error);
  }

  /**
   * A run whose session file was refused (./runFiles.ts) cannot succeed: what it did is
   * not stored, so the turn is retried like a failed attempt (and fails at the last).
   */
  private refusedSessionDecision(decision: TurnDecision): TurnDecision {
    const reason = this.files.sessionRefusal;
    if (reason === undefined || decision.kind !== 'finish' || decision.status !== 'succeeded') return decision;
    return { kind: 'retry', error: { class: 'session_not_saved', message: reason, retryable: true } };
  }

  /** A successful turn whose process still waits for input, and took no mid-run message, can stay warm. */
  private mayKeepWarm(outcome: RunOutcome): boolean {
    return (
      this.warm?.keepIdleMs !== undefined &&
      this.deps.warmPool !== undefined &&
      outcome.type === 'success' &&
      this.cli?.isRunning === true &&
      !this.gotInput &&
      !this.controller.signal.aborted &&
      this.files.sessionRefusal === undefined
    );
  }

  /** The session the next CLI run works in; a new one is remembered on the turn, so a retry resumes it. */
  private async useSession(session: RunOptions['session'], isNew: boolean): Promise<void> {
    this.baseSessionId = session.sessionId;
    if (!isNew || session.sessionId === this.runSessionId) return;
    await this.lease.fenced(async (tx, checkFence) => {
      await checkFence();
      await setRunSessionId(tx, this.turn.id, session.sessionId);
    });
    this.runSessionId = session.sessionId;
  }

  /** Where this attempt works on disk (./prepareDisk.ts). */
  private disk(): AttemptDisk {
    const { db, cache } = this.deps;
    return { db, cache, conversationId: this.conversation.id, cwd: this.cwd, dirName: this.dirName, configDir: this.configDir, cliCwd: this.cliCwd(), log: this.log() };
  }

  private async tryHydrate(sessionId: string | null): Promise<{ uncommittedLines: number } | undefined> {
    if (!sessionId) return undefined;
    const conversationId = this.conversation.id;
    // A turn that opted out of continuing reruns its prompt from the committed session, not
    // on top of the interrupted attempt's checkpoints (else the session holds it twice).
    const startOver = (this.turn.options as { continueOnRetry?: boolean }).continueOnRetry === false;
    const discard = async (fileIds: string[]) => {
      await this.lease.fenced(async (tx) => {
        for (const id of fileIds) await discardUncommitted(tx, { conversationId, sessionId: id });
      });
    };
    const h = await hydrateConversationSession(this.disk(), sessionId, startOver ? discard : undefined);
    if (!h) return undefined;
    if (h.folderSha256 !== null) this.files.folder.sha256 = h.folderSha256;
    return { uncommittedLines: h.uncommittedLines };
  }

  private async chooseSession(): Promise<
    | { kind: 'resume'; sessionId: string; continuing: boolean }
    | { kind: 'new'; sessionId: string }
    | { kind: 'missing'; sessionId: string }
  > {
    // A retry resumes the session its earlier attempt ran in (it may be a fork).
    for (const candidate of [this.turn.runSessionId, this.conversation.sessionId]) {
      const h = await this.tryHydrate(candidate);
      if (h) return { kind: 'resume', sessionId: candidate!, continuing: h.uncommittedLines > 0 };
    }
    if (this.conversation.sessionId) return { kind: 'missing', sessionId: this.conversation.sessionId };
    // A new conversation: the id is chosen up front (and kept for retries).
    return { kind: 'new', sessionId: this.turn.runSessionId ?? randomUUID() };
  }

  private async promptFor(start: Awaited<ReturnType<Attempt['chooseSession']>>): Promise<string> {
    const options = this.turn.options as { continueOnRetry?: boolean };
    if (start.kind === 'resume' && start.continuing && options.continueOnRetry !== false) {
      return `${this.deps.config.worker.continuationPrompt}\n\n${this.turn.prompt}`;
    }
    if (start.kind === 'missing') return `${await this.summary()}\n\n${this.turn.prompt}`;
    return this.turn.prompt;
  }

  /** For the `fresh` missing-session policy: what earlier turns asked and answered. */
  private async summary(): Promise<string> {
    const earlier = (await listTurns(this.deps.db, this.conversation.id)).filter((t) => t.seq < this.turn.seq && t.status === 'succeeded');
    let text = 'The stored session of this conversation could not be restored. Earlier turns, for context:';
    for (const t of earlier) text += `\n\nUser: ${t.prompt}\nAssistant: ${t.result ?? ''}`;
    return text.length > SUMMARY_MAX_CHARS ? `${text.slice(0, SUMMARY_MAX_CHARS)}…` : text;
  }

  private record(payload: Record<string, unknown>): void {
    this.push(String(payload.type), JSON.stringify(payload));
  }

  /** Buffers an event for the next checkpoint and publishes it live at once. */
  private push(type: string, payload: string): void {
    const seq = ++this.eventSeq;
    this.events.push({ seq, type, payload });
    if (!this.lease.lost) this.deps.live?.event(this.turn.id, this.attempt, seq, type, payload);
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
    this.gotInput = true;
    this.record({ type: 'agentq', subtype: 'user_input', text });
    return { outcome: 'delivered' };
  }

  private endInput(): void {
    const run = this.inputRun;
    this.inputRun = undefined;
    run?.endInput();
  }

  private onCliEvent(e: ClaudeEvent): void {
    if (e.kind === 'init') this.reportedSessionId = e.data.session_id;
    if ((e.kind === 'assistant' || e.kind === 'user') && typeof e.data.uuid === 'string') this.lastMessageUuid = e.data.uuid;
    this.push(eventType(e), e.line);
  }

  /** The turn's CLI options in this attempt's directories. */
  private runOptions(prompt: string, session: RunOptions['session'], options: Record<string, unknown>): RunOptions {
    const configDir = this.configLink ?? this.configDir;
    return { ...(options as Partial<RunOptions>), prompt, cwd: this.cwd, configDir, tmpDir: path.join(this.runDir, 'tmp'), session };
  }

  /** Unsandboxed: the conversation's config path leads to this attempt's directory from now on. */
  private async pointConfigLink(): Promise<void> {
    if (!this.configLink) return;
    const killed = await pointConfigLink(this.configLink, this.configDir);
    if (killed.length > 0) this.log().warn({ pids: killed }, 'killed processes of an earlier attempt of this conversation still running here');
  }

  private async runCli(prompt: string, session: RunOptions['session']): Promise<RunOutcome> {
    const { config, runner } = this.deps;
    const { continueOnRetry: _ignored, warm: _warm, ...options } = this.turn.options as Record<string, unknown> & { continueOnRetry?: boolean };
    const checkpointTimer = setInterval(() => {
      // A timed checkpoint logs its own failures; this catches only a chain already broken by a final one.
      this.scheduleCheckpoint(false).catch((err: unknown) => this.log().warn({ err }, 'checkpoint failed'));
    }, config.worker.checkpointIntervalMs);
    const heartbeatTimer = setInterval(() => void this.lease.heartbeat(), Math.max(200, Math.floor(config.worker.leaseMs / 3)));
    if (this.warm) {
      try {
        return await this.runMultiTurn(prompt, session, options);
      } finally {
        this.inputRun = undefined;
        clearInterval(checkpointTimer);
        clearInterval(heartbeatTimer);
      }
    }
    try {
      const run = startClaude(
        this.runOptions(prompt, session, options),
        runner,
        {
          signal: this.controller.signal,
          onEvent: (e) => {
            this.onCliEvent(e);
            // The prompt is answered: close stdin, so the CLI ends after what it was given.
            if (e.kind === 'result') this.endInput();
          },
        },
      );
      if (options.streamInput === true) this.inputRun = run;
      return await run.outcome;
    } finally {
      this.endInput();
      clearInterval(checkpointTimer);
      clearInterval(heartbeatTimer);
    }
  }

  /**
   * A warm-eligible or warm turn: the CLI in stream-json input mode, kept open after the
   * result. The turn ends at its result; a process that took a mid-run message is let
   * finish like a cold run (it may answer that message as a turn of its own).
   */
  private async runMultiTurn(prompt: string, session: RunOptions['session'], options: Record<string, unknown>): Promise<RunOutcome> {
    let cli = this.warm?.handle && this.cli === this.warm.handle.cli ? this.cli : undefined;
    const first = cli === undefined;
    if (!cli) {
      cli = new MultiTurnCli(
        {
          ...this.runOptions(prompt, session, options),
          // The CLI then writes a turn's session lines before it prints the result, instead
          // of up to ~100 ms later (its write buffer's flush interval): the commit need not wait.
          env: { CLAUDE_CODE_EAGER_FLUSH: '1' },
        },
        this.deps.runner,
      );
      this.cli = cli;
    }
    if (options.streamInput === true) this.inputRun = cli.run;
    const costBefore = cli.costReported;
    const fileBefore = await fileSize(this.sessionPath());
    const onEvent = (e: ClaudeEvent) => {
      this.onCliEvent(e);
      // The prompt is answered: no more mid-run input for this turn.
      if (e.kind === 'result') this.inputRun = undefined;
    };
    const turn = await cli.turn(first ? undefined : prompt, onEvent, this.controller.signal);
    this.inputRun = undefined;
    if (!turn.alive) return turn.outcome;
    if (!this.gotInput) {
      // The CLI writes the turn's session lines after its result: the commit waits for them.
      // If they do not come, the process is let finish (it writes them at exit) and not kept.
      const flushed =
        turn.outcome.type === 'success' &&
        (await waitForSessionLine(() => this.sessionPath(), fileBefore, this.lastMessageUuid, this.controller.signal, undefined, this.deps.config.store.sessionMaxBytes));
      if (flushed) return turn.outcome;
      await cli.finish(onEvent);
      return turn.outcome;
    }
    // No await since the result: nothing the CLI printed after it is missed.
    const exit = await cli.finish(onEvent);
    return { ...turn.outcome, costUsd: Math.max(0, Math.round((exit.costUsd - costBefore) * 1e9) / 1e9), resultText: exit.resultText ?? turn.outcome.resultText };
  }

  private mark(phase: string): void {
    const now = performance.now();
    this.phases[phase] = Math.round((now - this.phaseStart) * 10) / 10;
    this.deps.observer?.phase?.(phase, now - this.phaseStart);
    this.phaseStart = now;
  }

  /** The session the CLI is writing: the id it reported, else the one it was given. */
  private sessionId(): string {
    return this.reportedSessionId ?? this.baseSessionId;
  }

  /** Where that session's file is, beneath the config dir (undefined before there is a session). */
  private sessionPath(): AgentPath | undefined {
    const sessionId = this.sessionId();
    return sessionId ? { root: this.configDir, rel: this.files.sessionPaths(sessionId).rel } : undefined;
  }

  /** The session file the CLI is writing, if there is one on disk. */
  private async currentSession(): Promise<SessionOnDisk | undefined> {
    const sessionId = this.sessionId();
    return sessionId ? this.files.find(sessionId, this.baseSessionId) : undefined;
  }

  /** Saves new session lines and buffered events (uncommitted); serialized, never overlapping. */
  private scheduleCheckpoint(final: boolean): Promise<void> {
    this.checkpointing = this.checkpointing.then(() => this.checkpoint(final));
    return this.checkpointing;
  }

  private async checkpoint(final: boolean): Promise<void> {
    if (this.lease.lost) return;
    const events = this.events;
    this.events = [];
    try {
      const started = performance.now();
      const runSessionId = await this.fenced((tx, checkFence, _marked, afterCommit) => this.writeProgress(tx, checkFence, events, afterCommit));
      this.runSessionId = runSessionId;
      this.deps.observer?.checkpointed?.(performance.now() - started);
    } catch (err) {
      this.events = [...events, ...this.events];
      if (err instanceof StaleLeaseError) return this.lease.lose();
      if (final) throw err;
      this.log().warn({ err }, 'checkpoint failed; will retry');
    }
  }

  /**
   * Stores new session lines (uncommitted) and events, then checks the fence and records
   * which session the attempt runs in. Returns that session id (the caller keeps it once
   * the transaction committed).
   */
  private async writeProgress(
    tx: StoreTx,
    checkFence: () => Promise<void>,
    events: BufferedEvent[],
    afterCommit: (f: () => void) => void,
  ): Promise<string | null> {
    const current = await this.saveProgress(tx, events, afterCommit);
    await checkFence();
    if (current && current.sessionId !== this.runSessionId) await setRunSessionId(tx, this.turn.id, current.sessionId);
    return current?.sessionId ?? this.runSessionId;
  }

  /** New session lines (uncommitted) and events; returns the session written, if any. */
  private async saveProgress(tx: StoreTx, events: BufferedEvent[], afterCommit: (f: () => void) => void): Promise<SessionOnDisk | undefined> {
    const current = await this.currentSession();
    if (current) await this.files.save(tx, current, afterCommit);
    await appendTurnEvents(tx, this.turn.id, this.attempt, events);
    return current;
  }

  private async requeue(delayMs: number, error: TurnError | null): Promise<AttemptVerdict> {
    try {
      const row = await withTransientRetry(this.log(), () =>
        this.fenced(async (tx, checkFence, _marked, afterCommit) => {
          await this.writeProgress(tx, checkFence, this.events, afterCommit);
          await this.files.dropRefused(tx);
          return requeueTurn(tx, { turnId: this.turn.id, conversationId: this.conversation.id, delayMs, error });
        }),
      );
      this.events = [];
      this.deps.observer?.requeued?.(error === null ? 'shutdown' : error.class === 'worker_error' ? 'worker_error' : 'retry');
      return { kind: 'requeued', runAt: row.runAt };
    } catch (err) {
      if (err instanceof StaleLeaseError) {
        // Refused by the fence: another worker took the turn over. Say so, as the heartbeat does.
        this.lease.lose();
        return { kind: 'lease_lost' };
      }
      throw err;
    }
  }

  /** After a commit: keep the session file and note the workspace state for a next turn here. */
  private async keepForNextTurn(packed: PackedWorkspace | undefined): Promise<void> {
    try {
      const current = await this.currentSession();
      if (current && this.files.sessionRefusal === undefined) {
        await this.deps.cache.keepSession(this.conversation.id, current.sessionId, { root: this.configDir, rel: current.rel });
      }
      if (packed) await this.deps.cache.markWorkspace(this.dirName, packed.sha256);
    } catch (err) {
      this.log().warn({ err }, 'could not keep the committed session for the next turn');
    }
  }

  /** The one commit transaction (invariant 6 of docs/design.md). */
  private async commit(
    outcome: RunOutcome | undefined,
    status: 'succeeded' | 'failed' | 'cancelled',
    error: TurnError | null,
    keepWarm = false,
  ): Promise<AttemptVerdict> {
    const { config } = this.deps;
    let packed: PackedWorkspace | undefined;
    try {
      packed = await packWorkspace(this.cwd, { maxBytes: config.store.workspaceMaxBytes, maxEntries: config.store.workspaceMaxEntries, exclude: config.store.workspaceExclude });
    } catch (err) {
      if (!(err instanceof WorkspaceTooLargeError)) throw err;
      this.record({ type: 'agentq', subtype: 'workspace_not_saved', message: err.message });
      status = 'failed';
      error = { class: 'workspace_too_large', message: err.message, retryable: false };
    }
    const usage = outcome?.usage;
    try {
      const next = await withTransientRetry(this.log(), () =>
        this.fenced(async (tx, _checkFence, markFenceChecked, afterCommit) => {
          if (packed) await storeWorkspace(tx, this.conversation.id, packed, this.storedWorkspaceSha);
          const current = await this.saveProgress(tx, this.events, afterCommit);
          // The session file was refused only now (after the last checkpoint): the turn cannot succeed on it.
          if (status === 'succeeded' && this.files.sessionRefusal !== undefined) throw new SessionRefusedAtCommit();
          // Every stored line of the session is now the turn's history; the conversation points at it.
          const committedSession = current ? await this.files.commit(tx, current) : undefined;
          // Checks the fence: the conversation row is locked by this update.
          markFenceChecked();
          return finishTurn(tx, {
            turnId: this.turn.id,
            conversationId: this.conversation.id,
            fence: this.lease.fence,
            conversationSessionId: committedSession,
            runSessionId: committedSession !== undefined && committedSession !== this.runSessionId ? committedSession : undefined,
            status,
            result: outcome?.resultText ?? null,
            error,
            costUsd: outcome?.costUsd ?? 0,
            usage: usage ?? null,
            numTurns: outcome?.numTurns ?? 0,
            toolCalls: outcome?.toolCalls ?? 0,
            permissionDenials: outcome?.permissionDenials ?? [],
            sessionIdAfter: committedSession ?? this.conversation.sessionId,
            inputTokens: usage?.input_tokens ?? 0,
            outputTokens: usage?.output_tokens ?? 0,
            keepWarmMs: keepWarm && status === 'succeeded' ? config.worker.leaseMs : undefined,
          });
        }),
      );
      this.events = [];
      if (keepWarm && status === 'succeeded' && this.cli) {
        // The lease stays ours, marked warm: the pool renews it until the process is let go.
        this.keepHandle = {
          conversationId: this.conversation.id,
          cli: this.cli,
          runDir: this.runDir,
          sessionId: this.sessionId(),
          fence: this.lease.fence,
          workspaceSha: packed?.sha256 ?? this.storedWorkspaceSha ?? null,
          optionsKey: this.warm!.optionsKey,
          idleMs: this.warm!.keepIdleMs!,
        };
        if (packed) await this.deps.cache.markWorkspace(this.dirName, packed.sha256).catch(() => undefined);
      } else {
        await this.keepForNextTurn(packed);
      }
      this.mark('commit');
      this.log().info({ status, phasesMs: this.phases }, 'turn committed');
      return { kind: 'committed', status, next };
    } catch (err) {
      if (err instanceof StaleLeaseError) {
        // Refused by the fence: another worker took the turn over. Say so, as the heartbeat does.
        this.lease.lose();
        return { kind: 'lease_lost' };
      }
      if (err instanceof SessionRefusedAtCommit && outcome) {
        return this.retryOrFail(outcome, { class: 'session_not_saved', message: this.files.sessionRefusal!, retryable: true });
      }
      throw err;
    }
  }
}

/** Rolls a succeeding commit back when it found the session file refused: the turn is retried instead (Attempt.retryOrFail). */
class SessionRefusedAtCommit extends Error {
  override readonly name = 'SessionRefusedAtCommit';
}
