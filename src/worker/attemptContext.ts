// What every step of one attempt shares: the claimed turn, the lease, where the attempt
// works on disk, the files its run writes, the events it buffers and the sessions it runs
// in. The steps themselves (./sessionStart.ts, ./cliTurn.ts, ./checkpoint.ts,
// ./commitAttempt.ts) are functions of this context; ./attempt.ts tells them in order.
import path from 'node:path';
import type { GateSpec } from '../runner/approvalGate.js';
import type { Logger } from 'pino';
import type { Config } from '../config.js';
import type { AgentPath } from '../agentFiles/agentTree.js';
import type { RunnerSettings } from '../runner/runClaude.js';
import { SANDBOX_WORKSPACE } from '../sandbox/layout.js';
import type { LiveEventSink } from '../live/publisher.js';
import type { ConversationRow } from '../store/conversations.js';
import type { StoreDb } from '../store/db.js';
import { workspaceDirName } from '../store/ids.js';
import type { AttemptCliVersion, ClaimedSessionHeads, DueTurn, TurnRow } from '../store/turns.js';
import type { LocalCache } from './localCache.js';
import type { AttemptObserver } from './observer.js';
import type { AfterTurns } from './afterTurns.js';
import type { MultiTurnCli } from './multiTurnCli.js';
import { LeaseGuard, type FencedWork } from './leaseGuard.js';
import type { AttemptDisk } from './prepareDisk.js';
import { runDirName } from './runDirs.js';
import { configLinkPath } from './configLink.js';
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
  observer?: AttemptObserver | undefined;
  /** Where events go live as they arrive (src/live); optional. */
  live?: LiveEventSink | undefined;
  /** The worker's warm conversations; required for a warm attempt. */
  warmPool?: WarmPool | undefined;
  /** Where what follows a commit goes, to run after the ack (./afterTurns.ts); without it, it runs before. */
  afterTurns?: AfterTurns | undefined;
}

/**
 * A warm-eligible or warm turn runs on a multi-turn CLI process (./multiTurnCli.ts):
 * one kept from the conversation's last turn (`kept`), or a new one that may be kept.
 */
export interface MultiTurnPlan {
  /** The conversation's kept process, taken with the claim: the turn is written to its stdin. */
  kept?: WarmHandle | undefined;
  /** Keep the CLI after a successful commit for this long (the turn is warm-eligible). */
  keepIdleMs?: number | undefined;
  /** What the process is started with, to match later turns (warmOptionsKey). */
  optionsKey: string;
}

/** What the claim granted: the turn, its conversation, the lease's fencing token, the attempt number. */
export interface ClaimedTurn {
  turn: TurnRow;
  conversation: ConversationRow;
  fencingToken: number;
  attempt: number;
  /** The stored workspace's digest as the claim read it (null: none; undefined: not read). */
  workspaceSha256?: string | null;
  /** The heads of the session a cold attempt resumes first, as the claim read them. */
  sessionHeads?: ClaimedSessionHeads | undefined;
}

export interface AttemptOptions {
  deps: AttemptDeps;
  claim: ClaimedTurn;
  /** performance.now() taken before the claim that granted the lease. */
  claimedAt: number;
  /** A warm-eligible or warm turn; undefined for a cold one (a `claude -p` that exits). */
  multiTurn?: MultiTurnPlan | undefined;
}

/** What the job should do once the attempt is over. */
export type AttemptVerdict =
  /** The turn reached a terminal status and is committed; `next` is due for dispatch. */
  | { kind: 'committed'; status: string; next: DueTurn | undefined }
  /** Handed back to the queue (retry or drain); run the job again at `runAt`. */
  | { kind: 'requeued'; runAt: Date }
  /** The lease moved to another worker: this attempt wrote nothing after that. */
  | { kind: 'lease_lost' };

/** The verdict of an attempt whose lease moved to another worker. */
export const LEASE_LOST = { kind: 'lease_lost' } as const satisfies AttemptVerdict;

/** An event of the run, buffered until the next checkpoint. */
export interface BufferedEvent {
  seq: number;
  type: string;
  payload: string;
}

export class AttemptContext {
  readonly deps: AttemptDeps;
  readonly turn: TurnRow;
  readonly conversation: ConversationRow;
  readonly attempt: number;
  readonly multiTurn: MultiTurnPlan | undefined;
  readonly lease: LeaseGuard;
  /** The conversation's workspace on the host. */
  readonly cwd: string;
  /** Its directory name under the workspace root (the local cache's key). */
  readonly dirName: string;
  /** This attempt's own directory (a warm process keeps its own from turn to turn). */
  readonly runDir: string;
  readonly configDir: string;
  /** Unsandboxed: the conversation's stable path to `configDir`, which the CLI is given (./configLink.ts). */
  readonly configLink: string | undefined;
  /**
   * The same link in both modes: it leads to the directory of the attempt that last took the
   * conversation on this machine, and a CLI starts only while it leads to this attempt's
   * (src/runner/linkCheck.ts). Sandboxed, the CLI is not given it.
   */
  readonly ownerLink: string;
  /** The cwd the CLI sees when not `cwd`: sandboxed, the fixed mount point (the same on every worker). */
  readonly cliCwd: string | undefined;
  /** What the run writes that the attempt stores (the session file, its subagents and folder). */
  readonly files: RunFiles;
  /** Aborted with 'cancelled', 'shutdown' or why the lease was lost. */
  readonly controller = new AbortController();
  /** Events not yet checkpointed. */
  events: BufferedEvent[] = [];
  private eventSeq = 0;
  /** The session this attempt started from (hydrated or chosen). */
  baseSessionId = '';
  /** The session id the CLI reported in its init event. */
  reportedSessionId: string | undefined;
  /** The CLI version this attempt runs (its init event), once known. */
  cliVersion: string | undefined;
  /** It is in turns.cli_versions. */
  cliVersionStored = false;
  /** What turns.run_session_id holds now (written only when it changes). */
  runSessionId: string | null;
  /** The digest of the stored workspace archive as read when preparing (null: none stored; undefined: not read). */
  storedWorkspaceSha: string | null | undefined;
  /**
   * The workspace's stamp (src/store/workspaceArchive.ts, treeStamp) when it was prepared,
   * holding exactly the stored archive: the commit packs it only if the stamp changed.
   * Undefined: not taken (a warm turn, or nothing stored yet), and the commit packs.
   */
  preparedWorkspaceStamp: string | undefined;
  /** The same digest as the claim read it, under the lease (null: none stored; undefined: not read). */
  readonly claimedWorkspaceSha: string | null | undefined;
  /** The session heads the claim read (used once, by the first hydrate: see chooseSession). */
  claimedSessionHeads: ClaimedSessionHeads | undefined;
  /** With warm: the multi-turn CLI process of this attempt (kept or taken). */
  cli: MultiTurnCli | undefined;
  /** After a commit that kept the lease warm: the process to hand to the pool. */
  keepHandle: WarmHandle | undefined;
  /** After a cold commit: keeps its session file and workspace mark for a next turn here (after the ack). */
  keepAfterCommit: (() => Promise<void>) | undefined;
  /** The turn took a mid-run message: its CLI may still answer it, so it is not kept. */
  gotInput = false;
  /** The approval gate of this attempt's runs (./gate.ts); undefined: nothing is gated. */
  gate: GateSpec | undefined;
  /** The call of the turn's latest decided approval, which a prompt-less resume continues (read with the gate). */
  awaitedToolUseId: string | undefined;
  /** Milliseconds spent in each phase of the attempt, logged with the commit. */
  readonly phases: Record<string, number> = {};
  private phaseStart = performance.now();

  constructor({ deps, claim, claimedAt, multiTurn }: AttemptOptions) {
    const { turn, conversation, attempt } = claim;
    this.deps = deps;
    this.turn = turn;
    this.conversation = conversation;
    this.attempt = attempt;
    this.multiTurn = multiTurn;
    const fence = { conversationId: conversation.id, fencingToken: claim.fencingToken, workerId: deps.workerId };
    this.lease = new LeaseGuard({
      db: deps.db,
      fence,
      turnId: turn.id,
      leaseMs: deps.config.worker.leaseMs,
      claimedAt,
      hooks: {
        onLost: () => {
          this.log().warn('lease lost to another worker: stopping without writing');
          this.abort('lease lost');
        },
        onCancelRequested: () => this.abort('cancelled'),
        // Postgres unreachable: keep running; the commit waits for it to come back.
        onRenewError: (err) => this.log().warn({ err }, 'lease renewal failed'),
      },
    });
    this.runSessionId = turn.runSessionId;
    this.claimedWorkspaceSha = claim.workspaceSha256;
    this.claimedSessionHeads = claim.sessionHeads;
    this.dirName = workspaceDirName(conversation.externalId, conversation.tenantId);
    this.cwd = path.join(deps.config.workspaceRoot, this.dirName);
    this.runDir = multiTurn?.kept?.runDir ?? path.join(deps.config.worker.runsRoot, runDirName(turn.id, attempt));
    this.configDir = path.join(this.runDir, 'config');
    this.ownerLink = configLinkPath(deps.config.worker.runsRoot, this.dirName);
    this.configLink = deps.runner.sandbox ? undefined : this.ownerLink;
    this.cliCwd = deps.runner.sandbox ? SANDBOX_WORKSPACE : undefined;
    const { store } = deps.config;
    this.files = new RunFiles({
      conversationId: conversation.id,
      attempt,
      configDir: this.configDir,
      cwd: this.cwd,
      cliCwd: this.cliCwd,
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
   * The attempt's number within its round: a turn that stopped for approvals starts
   * counting again after each stop (each ended in a commit), so AGENTQ_MAX_ATTEMPTS bounds
   * the retries of one round, not the approvals of a turn.
   */
  get roundAttempt(): number {
    return this.attempt - this.turn.attemptsBeforeRound;
  }

  get config(): Config {
    return this.deps.config;
  }

  /** Stops the run: `reason` is 'cancelled', 'shutdown' or why the lease was lost. */
  abort(reason: string): void {
    this.controller.abort(reason);
  }

  log(): Logger {
    return this.deps.log.child({ turnId: this.turn.id, conversationId: this.conversation.externalId, attempt: this.attempt });
  }

  /** Ends the current phase (lease, workspace, hydrate, prepare, run, commit): logged with the commit and observed. */
  mark(phase: string): void {
    const now = performance.now();
    this.phases[phase] = Math.round((now - this.phaseStart) * 10) / 10;
    this.deps.observer?.phase?.(phase, now - this.phaseStart);
    this.phaseStart = now;
  }

  /** An event of agentq's own (`type: 'agentq'` and a subtype), buffered and published live. */
  record(payload: Record<string, unknown>): void {
    this.push(String(payload.type), JSON.stringify(payload));
  }

  /** Buffers an event for the next checkpoint and publishes it live at once. */
  push(type: string, payload: string): void {
    const seq = this.nextEventSeq();
    this.events.push({ seq, type, payload });
    if (!this.lease.lost) this.deps.live?.event(this.turn.id, this.attempt, seq, type, payload);
  }

  nextEventSeq(): number {
    return ++this.eventSeq;
  }

  /** The CLI version to store for this attempt; undefined when unknown or already stored. */
  cliVersionToStore(): AttemptCliVersion | undefined {
    return this.cliVersion !== undefined && !this.cliVersionStored ? { attempt: this.attempt, version: this.cliVersion } : undefined;
  }

  /** Where this attempt works on disk (./prepareDisk.ts). */
  disk(): AttemptDisk {
    const { db, cache } = this.deps;
    return { db, cache, conversationId: this.conversation.id, cwd: this.cwd, dirName: this.dirName, configDir: this.configDir, cliCwd: this.cliCwd, log: this.log() };
  }

  /** The session the CLI is writing: the id it reported, else the one it was given. */
  sessionId(): string {
    return this.reportedSessionId ?? this.baseSessionId;
  }

  /** Where that session's file is, beneath the config dir (undefined before there is a session). */
  sessionPath(): AgentPath | undefined {
    const sessionId = this.sessionId();
    return sessionId ? { root: this.configDir, rel: this.files.sessionPaths(sessionId).rel } : undefined;
  }

  /** The session file the CLI is writing, if there is one on disk. */
  async currentSession(): Promise<SessionOnDisk | undefined> {
    const sessionId = this.sessionId();
    return sessionId ? this.files.find(sessionId, this.baseSessionId) : undefined;
  }

  /**
   * A fenced transaction (LeaseGuard.fenced) that stores what the run wrote. Refused for
   * the session file (RunFiles), it is rolled back and run once more without it.
   */
  async fenced<T>(work: FencedWork<T>): Promise<T> {
    try {
      return await this.lease.fenced(work);
    } catch (err) {
      if (!(err instanceof SessionFileRefused)) throw err;
      this.files.refuse(err);
      return this.lease.fenced(work);
    }
  }
}
