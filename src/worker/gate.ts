// Approvals in the attempt (docs/approvals.md): which policy the turn runs under, the gate
// each CLI run of it gets (the rules, and the decisions recorded for its calls), and
// whether a run that stopped at a deferred call parks the turn to wait for a person.
import { randomUUID } from 'node:crypto';
import { approvalPolicySchema, type ApprovalPolicy, type GateSpec } from '../runner/approvalGate.js';
import type { DeferredToolUse } from '../runner/events.js';
import type { RunOutcome } from '../runner/outcome.js';
import { gateDecisions } from '../store/approvals.js';
import type { ConversationRow } from '../store/conversations.js';
import type { TurnRow } from '../store/turns.js';
import type { AttemptContext } from './attemptContext.js';

/** The conversation's default options that concern approvals. */
interface ApprovalDefaults {
  approvals?: unknown;
  /** Set when a turn was cancelled while it waited: its calls are unanswered in the session the next turn resumes. */
  openGatedCalls?: boolean;
}

/** The turn's approval policy: its own option, else its conversation's; undefined when none applies. */
export function approvalPolicyOf(turn: Pick<TurnRow, 'options'>, conversation: Pick<ConversationRow, 'defaultOptions'>): ApprovalPolicy | undefined {
  const own = (turn.options as { approvals?: unknown } | null)?.approvals;
  const candidate = own ?? (conversation.defaultOptions as ApprovalDefaults | null)?.approvals;
  if (candidate === undefined || candidate === null) return undefined;
  // Validated when stored; a row that does not parse (edited by hand) gates every tool rather than none.
  const parsed = approvalPolicySchema.safeParse(candidate);
  return parsed.success ? parsed.data : { tools: ['*'] };
}

/**
 * The gate of this attempt's runs, or undefined when nothing is gated. Reading the
 * decisions also marks the allows as given to this attempt (at most once), so it is
 * written under the fence.
 */
export async function prepareGate(ctx: AttemptContext): Promise<GateSpec | undefined> {
  const policy = approvalPolicyOf(ctx.turn, ctx.conversation);
  const carried = (ctx.conversation.defaultOptions as ApprovalDefaults | null)?.openGatedCalls === true;
  if (!policy && !carried && ctx.turn.approvalRounds === 0) return undefined;
  const read = await ctx.lease.fenced(async ({ tx, checkFence }) => {
    await checkFence();
    return gateDecisions(tx, { turnId: ctx.turn.id, conversationId: ctx.conversation.id, attempt: ctx.attempt });
  });
  ctx.awaitedToolUseId = read.awaitedToolUseId;
  // The agent can kill the gate's hooks: the lock refuses a gated call no person allowed (docs/approvals.md).
  return { rules: policy?.tools ?? [], decisions: read.byToolUseId, runKey: randomUUID(), lock: true };
}

/** The call the run stopped before, when the turn must now wait for a person. */
export function deferredCall(ctx: AttemptContext, outcome: RunOutcome): DeferredToolUse | undefined {
  if (ctx.gate === undefined || outcome.type !== 'success') return undefined;
  return outcome.deferredToolUse;
}
