// The worker's side of the permission lock (docs/approvals.md "It fails closed"): in a
// locked run the CLI asks this process, over its stdin and stdout (`--permission-prompt-tool
// stdio`, stream-json input), about every call an `ask` rule names and every call its
// permission mode would prompt for. The agent can kill the gate's hooks, which run as its
// own user; it cannot answer for this process. So a gated call runs only with a person's
// allow, whatever happened to the hooks. Measured with 2.1.197 and 2.1.332 (shared/claude-cli
// README): the request carries the call's tool_use_id and input, the answer's
// `updatedInput` is what the tool runs with, and a deny's message reaches the model.
import { z } from 'zod';
import { callIsGated, DENIED_MESSAGE, gateInputDigest, lockedTools, UNAPPROVED_NOT_RUN, type GateSpec } from './approvalGate.js';

/** What the model is told for a call that asked for a permission nobody can grant in a headless run. */
export const NOT_GRANTED =
  'agentq: not run. This call needs a permission that the turn\'s permission mode does not give, and a headless run has no one to grant it. Allow it with the turn\'s options (allowedTools, permissionMode).';

const requestSchema = z.looseObject({
  subtype: z.literal('can_use_tool'),
  tool_name: z.string(),
  input: z.record(z.string(), z.unknown()),
  tool_use_id: z.string().optional(),
  /** 2.1.332: set when an `ask` rule asked. */
  matched_ask_rule: z.unknown().optional(),
  /** 2.1.197: `rule` when a rule asked. */
  decision_reason_type: z.string().optional(),
});

export type PermissionAnswer = { behavior: 'allow'; updatedInput: Record<string, unknown> } | { behavior: 'deny'; message: string };

/** The line the CLI reads as the answer to its control request `requestId`. */
export function controlResponseLine(requestId: string, answer: PermissionAnswer | { error: string }): string {
  const response = 'error' in answer ? { subtype: 'error', request_id: requestId, error: answer.error } : { subtype: 'success', request_id: requestId, response: answer };
  return `${JSON.stringify({ type: 'control_response', response })}\n`;
}

/** Answers the permission requests of one CLI run (one allow per approved call and run). */
export class PermissionAnswers {
  private readonly given = new Set<string>();
  private readonly locked: ReadonlySet<string>;

  constructor(private readonly spec: GateSpec) {
    this.locked = new Set(lockedTools(spec));
  }

  /**
   * The answer to a control request's `request`, or undefined when it is not a permission
   * request (the caller answers those with an error).
   */
  answer(request: unknown): PermissionAnswer | undefined {
    if ((request as { subtype?: unknown } | null)?.subtype !== 'can_use_tool') return undefined;
    const parsed = requestSchema.safeParse(request);
    if (!parsed.success) return { behavior: 'deny', message: UNAPPROVED_NOT_RUN };
    const { tool_name: tool, input, tool_use_id: id } = parsed.data;
    const decision = id !== undefined && Object.prototype.hasOwnProperty.call(this.spec.decisions, id) ? this.spec.decisions[id] : undefined;
    if (decision && id !== undefined) {
      if (decision.decision !== 'allow') return { behavior: 'deny', message: decision.message ?? DENIED_MESSAGE };
      if (decision.tool !== tool || this.given.has(id)) return { behavior: 'deny', message: UNAPPROVED_NOT_RUN };
      // The call runs with what the person approved: the input they gave, or the one they
      // were shown. A session file the agent rewrote before it was stored could hold other
      // input under the same tool_use_id.
      if (decision.updatedInput === undefined && (decision.inputSha256 === undefined || gateInputDigest(input) !== decision.inputSha256)) {
        return { behavior: 'deny', message: UNAPPROVED_NOT_RUN };
      }
      this.given.add(id);
      return { behavior: 'allow', updatedInput: decision.updatedInput ?? input };
    }
    if (!this.locked.has(tool)) return { behavior: 'deny', message: NOT_GRANTED };
    if (callIsGated(this.spec.rules, tool, input)) return { behavior: 'deny', message: UNAPPROVED_NOT_RUN };
    // A call of a locked tool the rules do not gate (a Bash pattern locks every Bash call):
    // asked because of the lock's own rule, in a mode that would have run it.
    const byRule = parsed.data.matched_ask_rule !== undefined || parsed.data.decision_reason_type === 'rule';
    return this.spec.bypass === true && byRule ? { behavior: 'allow', updatedInput: input } : { behavior: 'deny', message: NOT_GRANTED };
  }
}
