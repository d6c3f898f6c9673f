// Prepare: what a turn's CLI run starts from. A cold attempt empties and fills the
// workspace, hydrates the session it resumes (a retry's own, else the conversation's) and
// chooses the prompt; a warm one uses its kept process as it is. What happens when the
// stored session cannot be resumed (AGENTQ_MISSING_SESSION_POLICY) is decided here only,
// in whenSessionMissing, whether the store or the CLI found it missing.
import { randomUUID } from 'node:crypto';
import type { RunOptions } from '../runner/options.js';
import { workspaceStamp } from '../store/workspaceArchive.js';
import { discardUncommitted } from '../store/sessions.js';
import { listTurns, setRunSessionId, type TurnError } from '../store/turns.js';
import type { AttemptContext } from './attemptContext.js';
import { pointConfigLink } from './configLink.js';
import { prepareGate } from './gate.js';
import { DEFERRED_CALL_MISSING, sessionHoldsOpenCall } from './openCall.js';
import { hydrateConversationSession, prepareWorkspace, workspacePackOptions } from './prepareDisk.js';
import type { WarmHandle } from './warmPool.js';

export type CliSession = RunOptions['session'];

/**
 * What to run: the session and the prompt; or why the turn fails before any run. No
 * prompt: the run resumes the session to answer the tool call it stopped at (a turn that
 * waited for an approval, docs/approvals.md).
 */
export type SessionPlan = { kind: 'run'; session: CliSession; prompt: string | undefined } | { kind: 'fail'; error: TurnError };

const SUMMARY_MAX_CHARS = 8000;

/**
 * A cold attempt: the workspace and the session on this worker's disk, the session and
 * prompt to run. A worker frozen between its claim and here (SIGSTOP, a long GC, a stalled
 * VM) may have lost the lease: it must not empty the directory another owner is using.
 */
export async function prepareCold(ctx: AttemptContext): Promise<SessionPlan> {
  await ctx.lease.ensure();
  ctx.mark('lease');
  const workspace = await prepareWorkspace(ctx.disk(), ctx.claimedWorkspaceSha);
  ctx.storedWorkspaceSha = workspace.sha;
  // The stamp the last commit here noted, or taken now: before anything of the run starts
  // (the CLI starts tens of milliseconds later at the least, so its writes carry later
  // change times than this sees). With nothing stored yet the commit packs anyway (an
  // empty archive is stored, and marks the directory current for the next turn here).
  if (workspace.sha !== null) ctx.preparedWorkspaceStamp = workspace.stamp ?? (await workspaceStamp(ctx.cwd, workspacePackOptions(ctx.config)));
  ctx.mark('workspace');
  const start = await chooseSession(ctx);
  ctx.gate = await prepareGate(ctx);
  ctx.mark('hydrate');
  const plan = await planFor(ctx, start);
  if (plan.kind === 'fail') return plan;
  // The same right before the CLI starts: a stale attempt must not run tools at all.
  await ctx.lease.ensure();
  await pointConfigAt(ctx);
  ctx.mark('prepare');
  return plan;
}

async function planFor(ctx: AttemptContext, start: SessionStart): Promise<SessionPlan> {
  switch (start.kind) {
    case 'missing':
      return whenSessionMissing(ctx, { sessionId: start.sessionId, reportedBy: 'store' });
    case 'new':
      await useSession(ctx, { mode: 'new', sessionId: start.sessionId });
      return { kind: 'run', session: { mode: 'new', sessionId: start.sessionId }, prompt: ctx.turn.prompt };
    case 'resume': {
      const session: CliSession = { mode: 'resume', sessionId: start.sessionId };
      await useSession(ctx, session);
      // A turn that waited for an approval continues its session: the CLI asks the gate
      // about the call it stopped at, if the session holds it (./openCall.ts). An
      // interrupted attempt of it is told to go on.
      if (ctx.turn.approvalRounds > 0) {
        if (start.continuing || !(await resumesOpenCall(ctx, start.sessionId))) return { kind: 'run', session, prompt: continuation(ctx) };
        return { kind: 'run', session, prompt: undefined };
      }
      // A retry that continues its interrupted attempt is told so before the prompt.
      return { kind: 'run', session, prompt: start.continuing && !startsOver(ctx) ? continuation(ctx) : ctx.turn.prompt };
    }
  }
}

/** A turn on the conversation's kept process: no workspace or session to prepare, the prompt goes to its stdin. */
export async function prepareWarm(ctx: AttemptContext, handle: WarmHandle): Promise<SessionPlan> {
  ctx.storedWorkspaceSha = handle.workspaceSha;
  ctx.baseSessionId = handle.sessionId;
  ctx.cli = handle.cli;
  // The stored head as the claim read it under this lease: the process's file holds exactly
  // those bytes and then its new lines, so the commit reads them from there and sends them
  // in its one call (instead of locking the head and streaming them in a transaction).
  const known = ctx.claimedSessionHeads;
  ctx.claimedSessionHeads = undefined;
  if (known?.sessionId === handle.sessionId && known.head !== undefined && known.head.lineCount === known.head.committedLineCount) {
    ctx.files.knowHead(handle.sessionId, known.head);
    if (known.folderSha256 !== null) ctx.files.folder.sha256 = known.folderSha256;
  }
  // From here on the run may change the directory.
  await ctx.deps.cache.unmarkWorkspace(ctx.dirName);
  ctx.record({ type: 'agentq', subtype: 'warm_turn', sessionId: handle.sessionId });
  ctx.mark('prepare');
  return { kind: 'run', session: { mode: 'resume', sessionId: handle.sessionId }, prompt: ctx.turn.prompt };
}

export interface MissingSession {
  sessionId: string;
  /** `store`: nothing stored to resume; `cli`: stored, but the CLI could not resume it. */
  reportedBy: 'store' | 'cli';
  /** With `cli`: how the turn fails if it does not start over (the CLI's session_not_found). */
  cliError?: TurnError;
  /** With `cli`: the run was resuming and may start once more (false after a fresh start, or once stopped). */
  mayStartFresh?: boolean;
}

/**
 * The missing-session policy, in one place. `fail` (the default): the turn fails.
 * `fresh`: it runs in a new session whose prompt first summarizes the earlier turns.
 * When the CLI could not resume a session the store had (the file is not where the worker
 * put it, a CLI that no longer reads it), `fresh` applies once, within the same attempt.
 */
export async function whenSessionMissing(ctx: AttemptContext, missing: MissingSession): Promise<SessionPlan> {
  const policy = ctx.config.worker.missingSessionPolicy;
  const fromCli = missing.reportedBy === 'cli';
  if (policy === 'fresh' && (!fromCli || missing.mayStartFresh === true)) {
    ctx.record({ type: 'agentq', subtype: 'session_missing', policy, sessionId: missing.sessionId, ...(fromCli ? { reportedBy: 'cli' } : {}) });
    const session: CliSession = { mode: 'new', sessionId: randomUUID() };
    ctx.reportedSessionId = undefined;
    await useSession(ctx, session);
    if (fromCli) await ctx.lease.ensure();
    return { kind: 'run', session, prompt: `${await summary(ctx)}\n\n${ctx.turn.prompt}` };
  }
  ctx.record({ type: 'agentq', subtype: 'session_missing', policy: 'fail', sessionId: missing.sessionId });
  if (fromCli && missing.cliError) return { kind: 'fail', error: missing.cliError };
  return {
    kind: 'fail',
    error: { class: 'session_missing', message: `the stored session ${missing.sessionId} has no lines to resume (policy: ${policy})`, retryable: false },
  };
}

/** The conversation's link leads to this attempt's directory from now on (the CLI's config path, unsandboxed). */
async function pointConfigAt(ctx: AttemptContext): Promise<void> {
  const killed = pointConfigLink(ctx.ownerLink, ctx.configDir);
  if (killed.length > 0) ctx.log().warn({ pids: killed }, 'killed processes of an earlier attempt of this conversation still running here');
}

/** What an attempt that continues an interrupted run (or a lost deferred call) is told: the continuation prompt, then the turn's. */
function continuation(ctx: AttemptContext): string {
  return `${ctx.config.worker.continuationPrompt}\n\n${ctx.turn.prompt}`;
}

/**
 * Whether the hydrated session ends at the call the turn waited on, unanswered. When it
 * does not (its line never reached the session file), a prompt-less resume would wait for
 * input until the idle timeout: the run continues with a prompt instead, and the model asks
 * for the call again (a new approval). It reads the session's tail: twice its longest line.
 */
async function resumesOpenCall(ctx: AttemptContext, sessionId: string): Promise<boolean> {
  const toolUseId = ctx.awaitedToolUseId;
  const file = ctx.sessionPath();
  if (toolUseId === undefined || file === undefined) return true;
  if (await sessionHoldsOpenCall(file, toolUseId, 2 * ctx.config.store.sessionMaxLineBytes)) return true;
  ctx.record({ type: 'agentq', subtype: DEFERRED_CALL_MISSING, toolUseId, sessionId });
  ctx.log().warn({ toolUseId, sessionId }, 'the session does not hold the call the turn waited on: continuing with a prompt');
  return false;
}

/** A turn that opted out of continuing reruns its prompt from the committed session. */
function startsOver(ctx: AttemptContext): boolean {
  return (ctx.turn.options as { continueOnRetry?: boolean }).continueOnRetry === false;
}

type SessionStart = { kind: 'resume'; sessionId: string; continuing: boolean } | { kind: 'new'; sessionId: string } | { kind: 'missing'; sessionId: string };

async function chooseSession(ctx: AttemptContext): Promise<SessionStart> {
  // A retry resumes the session its earlier attempt ran in (it may be a fork).
  for (const candidate of [ctx.turn.runSessionId, ctx.conversation.sessionId]) {
    if (!candidate) continue;
    const h = await hydrate(ctx, candidate);
    if (h) return { kind: 'resume', sessionId: candidate, continuing: h.uncommittedLines > 0 };
  }
  if (ctx.conversation.sessionId) return { kind: 'missing', sessionId: ctx.conversation.sessionId };
  // A new conversation: the id is chosen up front (and kept for retries).
  return { kind: 'new', sessionId: ctx.turn.runSessionId ?? randomUUID() };
}

async function hydrate(ctx: AttemptContext, sessionId: string): Promise<{ uncommittedLines: number } | undefined> {
  const conversationId = ctx.conversation.id;
  // A turn that starts over does not run on top of the interrupted attempt's checkpoints
  // (else the session holds its prompt twice): they are discarded.
  const discard = async (fileIds: string[]) => {
    await ctx.lease.fenced(async ({ tx }) => {
      for (const id of fileIds) await discardUncommitted(tx, { conversationId, sessionId: id });
    });
  };
  // What the claim read is true only until this attempt writes: use it once.
  const known = ctx.claimedSessionHeads;
  ctx.claimedSessionHeads = undefined;
  const h = await hydrateConversationSession(ctx.disk(), sessionId, startsOver(ctx) ? discard : undefined, known);
  if (!h) return undefined;
  if (h.folderSha256 !== null) ctx.files.folder.sha256 = h.folderSha256;
  ctx.files.knowHead(sessionId, h.head);
  return { uncommittedLines: h.uncommittedLines };
}

/** The session the next CLI run works in; a new one is remembered on the turn, so a retry resumes it. */
async function useSession(ctx: AttemptContext, session: CliSession): Promise<void> {
  ctx.baseSessionId = session.sessionId;
  // A new session has no stored lines (one with lines would have been resumed).
  if (session.mode === 'new') ctx.files.knowHead(session.sessionId, { lineCount: 0, byteCount: 0, tailSha256: null });
  if (session.mode === 'resume' || session.sessionId === ctx.runSessionId) return;
  await ctx.lease.fenced(async ({ tx, checkFence }) => {
    await checkFence();
    await setRunSessionId(tx, ctx.turn.id, session.sessionId);
  });
  ctx.runSessionId = session.sessionId;
}

/** For the `fresh` missing-session policy: what earlier turns asked and answered. */
async function summary(ctx: AttemptContext): Promise<string> {
  const earlier = (await listTurns(ctx.deps.db, ctx.conversation.id)).filter((t) => t.seq < ctx.turn.seq && t.status === 'succeeded');
  let text = 'The stored session of this conversation could not be restored. Earlier turns, for context:';
  for (const t of earlier) text += `\n\nUser: ${t.prompt}\nAssistant: ${t.result ?? ''}`;
  return text.length > SUMMARY_MAX_CHARS ? `${text.slice(0, SUMMARY_MAX_CHARS)}…` : text;
}
