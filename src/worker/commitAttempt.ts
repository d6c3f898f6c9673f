// Commit or requeue: how an attempt ends in Postgres, under its fencing token. The commit
// is the one transaction that stores the rest of the session, the workspace, the events
// and the turn's result (invariant 6 of docs/design.md); a requeue stores the run's
// progress and hands the turn back with a delay. A write the fence refuses means another
// worker took the turn over: the attempt ends as lease_lost, having written nothing.
import { SessionConflictError, StaleLeaseError, WorkspaceTooLargeError } from '../errors.js';
import type { DeferredToolUse } from '../runner/events.js';
import { APPROVAL_REQUESTED, requestApproval } from '../store/approvals.js';
import type { Executor } from '../store/db.js';
import { approvalPolicyOf } from './gate.js';
import type { RunOutcome } from '../runner/outcome.js';
import { finishTurn, requeueTurn, type DueTurn, type TurnError } from '../store/turns.js';
import { packWorkspace, workspaceStamp, type PackedWorkspace } from '../store/workspaceArchive.js';
import { storeWorkspace } from '../store/workspaces.js';
import { LEASE_LOST, type AttemptContext, type AttemptVerdict } from './attemptContext.js';
import { writeProgress } from './checkpoint.js';
import { workspacePackOptions } from './prepareDisk.js';
import { failUnstored, requeueUnstored, type UnstoredEnd } from './endUnstored.js';
import type { RequeueReason } from './observer.js';
import { backoffMs } from './retryPolicy.js';
import { withTransientRetry } from './transient.js';

/** How the turn ends: its status, the run's outcome (none when the CLI did not run), its error. */
export interface TurnEnd {
  /** `awaiting_approval`: the run stopped at `deferred`; all is committed, the turn waits for a person. */
  status: 'succeeded' | 'failed' | 'cancelled' | 'awaiting_approval';
  deferred?: DeferredToolUse | undefined;
  outcome?: RunOutcome | undefined;
  error: TurnError | null;
  /** The turn may keep its CLI process and lease (a warm-eligible turn that succeeded). */
  keepWarm?: boolean;
}

/** The commit (invariant 6 of docs/design.md), retried while Postgres is away. */
export async function commitTurn(ctx: AttemptContext, end: TurnEnd): Promise<AttemptVerdict> {
  const { config } = ctx;
  let { status, error } = end;
  const { outcome } = end;
  let packed: PackedWorkspace | undefined;
  // The digest the workspace is stored under after this commit and its stamp, when known (the local mark).
  let workspace: WorkspaceMark | undefined;
  try {
    const options = workspacePackOptions(config);
    // As prepared, to the stamp: it holds the stored archive still, and is not packed again.
    const stored = ctx.storedWorkspaceSha;
    const unchanged = typeof stored === 'string' && ctx.preparedWorkspaceStamp !== undefined && (await workspaceStamp(ctx.cwd, options)) === ctx.preparedWorkspaceStamp;
    ctx.deps.observer?.workspace?.(unchanged ? 'unchanged' : 'packed');
    if (unchanged) workspace = { sha: stored, stamp: ctx.preparedWorkspaceStamp };
    else {
      packed = await packWorkspace(ctx.cwd, options);
      workspace = { sha: packed.sha256, stamp: packed.stamp };
    }
  } catch (err) {
    if (!(err instanceof WorkspaceTooLargeError)) throw err;
    ctx.record({ type: 'agentq', subtype: 'workspace_not_saved', message: err.message });
    status = 'failed';
    error = { class: 'workspace_too_large', message: err.message, retryable: false };
  }
  const keepWarm = end.keepWarm === true && status === 'succeeded';
  const usage = outcome?.usage;
  let next: DueTurn | typeof LOST | undefined;
  const commit = () =>
    withTransientRetry(ctx.log(), () =>
      ctx.fenced(async (f) => {
        const { tx } = f;
        if (packed) await storeWorkspace(tx, ctx.conversation.id, packed, ctx.storedWorkspaceSha);
        if (status === 'awaiting_approval' && end.deferred) await recordApprovalRequest(ctx, tx, end.deferred);
        // What goes in the one commit call below (the session's last lines, the commit of its
        // stored lines, the events recorded meanwhile), and before it what does not.
        const current = await ctx.currentSession();
        const prepared = current ? await ctx.files.prepareCommit(tx, current, f.afterCommit) : undefined;
        // The session file was refused only now (after the last checkpoint): the turn cannot succeed on it.
        if (status === 'succeeded' && ctx.files.sessionRefusal !== undefined) throw new SessionRefusedAtCommit();
        // Every stored line of the session is now the turn's history; the conversation points at it.
        const committedSession = prepared?.sessionId;
        // Checks the fence: the conversation row is locked by this call. Usually the only
        // statement of the commit: then it runs alone, committed by itself.
        f.markFenceChecked();
        f.lastStatementNext();
        return finishTurn(tx, {
          turnId: ctx.turn.id,
          conversationId: ctx.conversation.id,
          fence: ctx.lease.fence,
          conversationSessionId: committedSession,
          runSessionId: committedSession !== undefined && committedSession !== ctx.runSessionId ? committedSession : undefined,
          status,
          result: outcome?.resultText ?? null,
          error,
          costUsd: outcome?.costUsd ?? 0,
          usage: usage ?? null,
          numTurns: outcome?.numTurns ?? 0,
          toolCalls: outcome?.toolCalls ?? 0,
          permissionDenials: outcome?.permissionDenials ?? [],
          sessionIdAfter: committedSession ?? ctx.conversation.sessionId,
          inputTokens: usage?.input_tokens ?? 0,
          outputTokens: usage?.output_tokens ?? 0,
          keepWarmMs: keepWarm ? config.worker.leaseMs : undefined,
          cliVersion: ctx.cliVersionToStore(),
          events: { attempt: ctx.attempt, list: ctx.events },
          session: prepared?.session,
        });
      }),
    );
  try {
    next = await whileLeaseHeld(ctx, async () => {
      try {
        return await commit();
      } catch (err) {
        if (!(err instanceof SessionConflictError)) throw err;
        // The head was not where this attempt last knew it (a write whose outcome it never
        // learned): once more, reading the head under its lock.
        ctx.files.forgetHead();
        return commit();
      }
    });
  } catch (err) {
    if (err instanceof SessionRefusedAtCommit && outcome) {
      return retryOrFail(ctx, outcome, { class: 'session_not_saved', message: ctx.files.sessionRefusal!, retryable: true });
    }
    throw err;
  }
  if (next === LOST) return LEASE_LOST;
  ctx.events = [];
  if (keepWarm && ctx.cli) await keepWarmProcess(ctx, workspace?.sha);
  else ctx.keepAfterCommit = () => keepForNextTurn(ctx, workspace);
  ctx.mark('commit');
  ctx.log().info({ status, phasesMs: ctx.phases }, 'turn committed');
  return { kind: 'committed', status, next };
}

/** Hands the turn back to run again after `delayMs`, storing the run's progress; `error` null: drained on shutdown. */
export async function requeueAttempt(ctx: AttemptContext, delayMs: number, error: TurnError | null): Promise<AttemptVerdict> {
  const row = await whileLeaseHeld(ctx, () =>
    withTransientRetry(ctx.log(), () =>
      ctx.fenced(async (f) => {
        await writeProgress(ctx, f, ctx.events);
        await ctx.files.dropRefused(f.tx);
        return requeueTurn(f.tx, { turnId: ctx.turn.id, conversationId: ctx.conversation.id, delayMs, error });
      }),
    ),
  );
  if (row === LOST) return LEASE_LOST;
  ctx.events = [];
  const reason: RequeueReason = error === null ? 'shutdown' : error.class === 'worker_error' ? 'worker_error' : 'retry';
  ctx.deps.observer?.requeued?.(reason);
  return { kind: 'requeued', runAt: row.runAt };
}

/** A retryable failure: handed back with backoff, or committed as failed once the attempts are used. */
export function retryOrFail(ctx: AttemptContext, outcome: RunOutcome | undefined, error: TurnError): Promise<AttemptVerdict> {
  const { maxAttempts, retryBaseMs, retryMaxMs } = ctx.config.worker;
  if (ctx.roundAttempt >= maxAttempts) return commitTurn(ctx, { outcome, status: 'failed', error: { ...error, message: `${error.message} (after ${ctx.roundAttempt} attempts)` } });
  return requeueAttempt(ctx, backoffMs(ctx.roundAttempt, retryBaseMs, retryMaxMs), error);
}

/** Fails the turn (or, with `delayMs`, hands it back) storing nothing the run wrote (./endUnstored.ts). */
export async function endUnstored(ctx: AttemptContext, error: TurnError, delayMs?: number): Promise<AttemptVerdict> {
  const end: UnstoredEnd = {
    turnId: ctx.turn.id,
    conversationId: ctx.conversation.id,
    attempt: ctx.attempt,
    eventSeq: ctx.nextEventSeq(),
    sessionIds: [ctx.reportedSessionId, ctx.baseSessionId, ctx.runSessionId, ctx.conversation.sessionId],
    conversationSessionId: ctx.conversation.sessionId,
    error,
  };
  ctx.events = [];
  const run = (): Promise<DueTurn | Date | undefined> => (delayMs === undefined ? failUnstored(ctx.lease, end) : requeueUnstored(ctx.lease, end, delayMs));
  const ended = await withTransientRetry(ctx.log(), run);
  if (ended instanceof Date) return { kind: 'requeued', runAt: ended };
  return { kind: 'committed', status: 'failed', next: ended };
}

/** The pending approval of the call the run stopped at, and its event (rolled back with the commit if the fence refuses it). */
async function recordApprovalRequest(ctx: AttemptContext, tx: Executor, call: DeferredToolUse): Promise<void> {
  const policy = approvalPolicyOf(ctx.turn, ctx.conversation);
  const approval = await requestApproval(tx, {
    tenantId: ctx.conversation.tenantId,
    conversationId: ctx.conversation.id,
    turnId: ctx.turn.id,
    toolUseId: call.id,
    toolName: call.name,
    input: call.input,
    timeoutMs: policy?.timeoutMs,
  });
  // A retried commit finds the row already there: the event is recorded once per attempt.
  if (!ctx.events.some((e) => e.type === 'agentq' && e.payload.includes(`"approvalId":"${approval.id}"`))) {
    ctx.record({ type: 'agentq', subtype: APPROVAL_REQUESTED, approvalId: approval.id, toolUseId: call.id, toolName: call.name, input: call.input, expiresAt: approval.expiresAt?.toISOString() ?? null });
  }
}

/** What whileLeaseHeld returns when the fence refused the write. */
const LOST = Symbol('lease lost');

/** Runs a fenced write; refused by the fence, another worker took the turn over: say so, as the heartbeat does. */
async function whileLeaseHeld<T>(ctx: AttemptContext, write: () => Promise<T>): Promise<T | typeof LOST> {
  try {
    return await write();
  } catch (err) {
    if (!(err instanceof StaleLeaseError)) throw err;
    ctx.lease.lose();
    return LOST;
  }
}

/** The lease stays ours, marked warm: the pool renews it until the process is let go (./warmPool.ts). */
async function keepWarmProcess(ctx: AttemptContext, workspaceSha: string | undefined): Promise<void> {
  const multiTurn = ctx.multiTurn!;
  ctx.keepHandle = {
    conversationId: ctx.conversation.id,
    cli: ctx.cli!,
    runDir: ctx.runDir,
    sessionId: ctx.sessionId(),
    fence: ctx.lease.fence,
    workspaceSha: workspaceSha ?? ctx.storedWorkspaceSha ?? null,
    optionsKey: multiTurn.optionsKey,
    idleMs: multiTurn.keepIdleMs!,
  };
  if (workspaceSha !== undefined) await ctx.deps.cache.markWorkspace(ctx.dirName, workspaceSha).catch(() => undefined);
}

/** What the local mark of a committed workspace notes. */
interface WorkspaceMark {
  sha: string;
  stamp: string | undefined;
}

/** After a cold commit: keep the session file and note the workspace state for a next turn here (both at once). */
async function keepForNextTurn(ctx: AttemptContext, workspace: WorkspaceMark | undefined): Promise<void> {
  const keepSession = async () => {
    const current = await ctx.currentSession();
    if (current && ctx.files.sessionRefusal === undefined) {
      await ctx.deps.cache.keepSession(ctx.conversation.id, current.sessionId, { root: ctx.configDir, rel: current.rel });
    }
  };
  const kept = await Promise.allSettled([keepSession(), workspace ? ctx.deps.cache.markWorkspace(ctx.dirName, workspace.sha, workspace.stamp) : undefined]);
  for (const r of kept) {
    if (r.status === 'rejected') ctx.log().warn({ err: r.reason }, 'could not keep the committed session for the next turn');
  }
}

/** Rolls a succeeding commit back when it found the session file refused: the turn is retried instead (retryOrFail). */
class SessionRefusedAtCommit extends Error {
  override readonly name = 'SessionRefusedAtCommit';
}
