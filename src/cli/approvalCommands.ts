// `agentq approvals`, `agentq approve <id>`, `agentq deny <id>` (docs/approvals.md): list the
// tool calls that wait for a person, and decide one. A decision queues the turn again.
import type { Config } from '../config.js';
import { ApprovalInputError } from '../errors.js';
import { createClient } from '../queue/client.js';
import type { ApprovalView } from '../queue/approvalViews.js';
import { approvalStatuses, type ApprovalStatus } from '../store/schema.js';
import type { CliIo } from './main.js';

export interface ApprovalsFlags {
  tenant?: string;
  status?: string;
  json?: boolean;
}

export interface DecideFlags {
  tenant?: string;
  message?: string;
  input?: string;
  answer?: string[];
  json?: boolean;
}

/** Exit codes of approve / deny. */
export const DECIDE_EXIT = { decided: 0, invalid: 2, notFound: 4, alreadyDecided: 5 } as const;

const INPUT_PREVIEW_CHARS = 160;

export async function approvalsCommand(config: Config, io: CliIo, flags: ApprovalsFlags): Promise<number> {
  const status = flags.status ?? 'pending';
  if (status !== 'all' && !(approvalStatuses as readonly string[]).includes(status)) {
    io.err(`--status must be one of ${[...approvalStatuses, 'all'].join(', ')} (got ${JSON.stringify(status)})`);
    return 2;
  }
  const client = createClient(config);
  try {
    const list = await client.listApprovals({ tenantId: flags.tenant, ...(status === 'all' ? {} : { status: status as ApprovalStatus }) });
    if (flags.json) {
      io.out(JSON.stringify({ approvals: list }));
      return 0;
    }
    if (list.length === 0) io.out(`no ${status === 'all' ? '' : `${status} `}approvals${flags.tenant ? ` for tenant ${flags.tenant}` : ''}`);
    for (const a of list) io.out(approvalLine(a));
    return 0;
  } finally {
    await client.close();
  }
}

function approvalLine(a: ApprovalView): string {
  const input = JSON.stringify(a.input);
  const preview = input.length > INPUT_PREVIEW_CHARS ? `${input.slice(0, INPUT_PREVIEW_CHARS)}…` : input;
  const expires = a.expiresAt ? ` expires ${a.expiresAt}` : '';
  return `${a.approvalId} ${a.status} ${a.toolName} ${preview} (turn ${a.turnId}, requested ${a.requestedAt}${expires})`;
}

export async function decideCommand(config: Config, io: CliIo, decision: 'allow' | 'deny', id: string, flags: DecideFlags): Promise<number> {
  const client = createClient(config);
  try {
    const found = await client.getApproval(id, flags.tenant);
    if (!found) {
      io.err(`no approval ${id}${flags.tenant ? ` for tenant ${flags.tenant}` : ''}`);
      return DECIDE_EXIT.notFound;
    }
    let updatedInput: Record<string, unknown> | undefined;
    if (flags.input !== undefined) {
      try {
        updatedInput = JSON.parse(flags.input) as Record<string, unknown>;
      } catch {
        io.err(`--input must be a JSON object (got ${JSON.stringify(flags.input)})`);
        return DECIDE_EXIT.invalid;
      }
    }
    const answers = flags.answer?.length ? answersFor(found, flags.answer) : undefined;
    if (typeof answers === 'string') {
      io.err(answers);
      return DECIDE_EXIT.invalid;
    }
    const r = await client.decideApproval({ id, tenantId: flags.tenant, decision, message: flags.message, updatedInput, answers, decidedBy: `cli:${process.env.USER ?? 'unknown'}` });
    if (r.outcome === 'not_found') {
      io.err(`no approval ${id}`);
      return DECIDE_EXIT.notFound;
    }
    if (flags.json) io.out(JSON.stringify({ outcome: r.outcome, approval: r.approval }));
    else io.out(`${id} ${r.approval.status}${r.outcome === 'already_decided' ? ' (decided before: nothing changed)' : ''}`);
    return r.outcome === 'decided' ? DECIDE_EXIT.decided : DECIDE_EXIT.alreadyDecided;
  } catch (err) {
    if (!(err instanceof ApprovalInputError)) throw err;
    io.err(err.message);
    return DECIDE_EXIT.invalid;
  } finally {
    await client.close();
  }
}

/** `--answer` values for an AskUserQuestion call: in order, one per question (`Question text=answer` names one). */
function answersFor(a: ApprovalView, given: string[]): Record<string, string> | string {
  const questions = ((a.input as { questions?: { question?: unknown }[] } | null)?.questions ?? []).map((q) => q.question).filter((q): q is string => typeof q === 'string');
  if (questions.length === 0) return `--answer is for AskUserQuestion calls; approval ${a.approvalId} is a ${a.toolName} call`;
  const answers: Record<string, string> = {};
  let next = 0;
  for (const value of given) {
    const named = questions.find((q) => value.startsWith(`${q}=`));
    if (named !== undefined) answers[named] = value.slice(named.length + 1);
    else if (next < questions.length) answers[questions[next++]!] = value;
    else return `more --answer values than questions (${questions.length})`;
    while (next < questions.length && answers[questions[next]!] !== undefined) next++;
  }
  return answers;
}
