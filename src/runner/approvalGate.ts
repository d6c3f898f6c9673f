// The approval gate (docs/approvals.md): a PreToolUse command hook, given to the CLI with
// `--settings`, that answers for every tool call a turn's approval rules name. A call with
// a decision recorded for its tool_use_id gets that decision (allow, with the input a
// person may have changed; or deny, with what the model is told); any other gated call is
// deferred, which stops `claude -p` before the tool runs (shared/claude-cli README
// "Deferring a tool call"). The hook is `node -e <code> <spec>`: no file the agent could
// write, and the decisions travel in argv, which the agent can read but not change. It
// fails closed: anything it cannot do ends in exit code 2, which the CLI treats as a block.
import { createHash } from 'node:crypto';
import { z } from 'zod';

/** A tool name as a rule names it: the CLI's tools and `mcp__server__tool`. */
const TOOL_NAME = /^[A-Za-z0-9_-]{1,200}$/;
const RULE = /^([A-Za-z0-9_-]{1,200})(?:\((.{1,400})\))?$/su;

/** One of the CLI's rule syntax (`Bash`, `Bash(git push:*)`, `mcp__crm__send_reply`): a gated tool call. */
export const approvalRuleSchema = z
  .string()
  .regex(RULE, { error: 'must be a tool name, optionally with a pattern in parentheses: Bash, Bash(git push:*), mcp__crm__send_reply' })
  .refine((r) => !/[\p{Cc}]/u.test(r), { error: 'must not contain control characters' });

/** What a turn (or its conversation) says about approvals. */
export const approvalPolicySchema = z.strictObject({
  /** Tool calls that need a person's allow before they run. */
  tools: z.array(approvalRuleSchema).min(1, { error: 'must name at least one tool' }).max(50),
  /** A pending approval is answered deny after this long; default: it waits for ever. */
  timeoutMs: z.number().int().min(1000).max(366 * 24 * 60 * 60 * 1000).optional(),
});
export type ApprovalPolicy = z.infer<typeof approvalPolicySchema>;

/** What the gate answers for one tool_use_id. */
export interface GateDecision {
  decision: 'allow' | 'deny';
  /** The call's tool (so the hook is started for it). */
  tool: string;
  /** With deny: what the model is told. */
  message?: string | undefined;
  /** With allow: the input the tool runs with instead of the model's. */
  updatedInput?: Record<string, unknown> | undefined;
  /** With allow and no `updatedInput`: gateInputDigest of the input the person approved, which the permission lock checks. */
  inputSha256?: string | undefined;
}

/** Everything the gate of one CLI run knows. */
export interface GateSpec {
  rules: string[];
  decisions: Record<string, GateDecision>;
  /** Unique per run: the name of the marker the first deferral of the run takes (see GATE_CODE). */
  runKey: string;
  /**
   * The permission lock (docs/approvals.md "It fails closed"): the locked tools also get an
   * `ask` rule, which a hook that fails to answer cannot lift, and the CLI asks the worker
   * itself about each such call over stdio (./permissionAnswers.ts), which the agent cannot
   * kill: a gated call no person allowed is refused.
   */
  lock?: boolean | undefined;
  /**
   * The run's permission mode is bypassPermissions (set by the runner from the run's own
   * options, see argv.ts `runGate`): only then may the lock allow a call the rules do not
   * gate, which the mode would have run anyway. In other modes a Bash pattern gets no lock.
   */
  bypass?: boolean | undefined;
}

/**
 * JSON with every object's keys sorted: the same text for the same value, whatever order
 * Postgres's jsonb or the CLI put the keys in.
 */
function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
      .join(',')}}`;
  }
  return JSON.stringify(v) ?? 'null';
}

/**
 * The digest the permission lock compares a call's input by: sha256 of its canonical JSON.
 * Undefined for an input nested too deep to walk (the model wrote it): the lock then
 * allows no call by it, and the approved call is refused rather than the worker failing.
 */
export function gateInputDigest(input: unknown): string | undefined {
  try {
    return createHash('sha256').update(canonicalJson(input)).digest('hex');
  } catch {
    return undefined;
  }
}

/** The tool name a rule is about. */
export function ruleTool(rule: string): string {
  return RULE.exec(rule)?.[1] ?? rule;
}

const collapse = (s: string) => s.replace(/\s+/g, ' ').trim();

/**
 * Whether the rules gate a call, as GATE_CODE decides it: a rule's tool name equals the
 * call's; a pattern narrows only Bash, on the command's text (any occurrence, whitespace
 * collapsed); a pattern on another tool gates the whole tool; `*` gates every call.
 */
export function callIsGated(rules: readonly string[], tool: string, input: Record<string, unknown>): boolean {
  return rules.some((r) => {
    if (r === '*') return true;
    const m = /^([A-Za-z0-9_-]+)(?:\((.*)\))?$/s.exec(r);
    if (!m || m[1] !== tool) return false;
    if (m[2] === undefined || tool !== 'Bash') return true;
    const needle = collapse(m[2].replace(/:?\*$/, ''));
    const command = input.command;
    return needle === '' || collapse(typeof command === 'string' ? command : command ? String(command) : '').includes(needle);
  });
}

/**
 * The tools the permission lock gives an `ask` rule: each tool a rule gates whole. A Bash
 * pattern asks for every Bash call, so it is locked only in bypassPermissions, where the
 * lock allows the calls the pattern does not match; elsewhere it would decide calls the
 * mode leaves to `allowedTools` (a pattern is a convenience, not a boundary: docs/approvals.md).
 * None for `*` (a stored policy that no longer parses), which names no tool.
 */
export function lockedTools(spec: Pick<GateSpec, 'rules' | 'bypass'>): string[] {
  const whole = spec.rules.filter((r) => spec.bypass === true || ruleTool(r) !== 'Bash' || RULE.exec(r)?.[2] === undefined);
  return [...new Set(whole.map(ruleTool))].filter((t) => TOOL_NAME.test(t));
}

/**
 * Whether the run's CLI asks the worker for permissions (`--permission-prompt-tool stdio`,
 * in stream-json input mode: argv.ts, runClaude.ts): with the permission lock, and in
 * every run that gates AskUserQuestion, which the CLI offers in `-p` only with a prompt
 * tool (measured, both versions). Without the worker answering, each such ask is refused.
 */
export function asksWorker(spec: GateSpec): boolean {
  return needsPromptTool(spec) || (spec.lock === true && lockedTools(spec).length > 0);
}

/**
 * Message a subagent's model gets for a gated call. The CLI does not defer a subagent's
 * call (measured, both tested CLIs: it ends the subagent without running it, and says
 * nothing of why), so the gate refuses it with a reason the subagent can report.
 */
export const SUBAGENT_NOT_GATED =
  'agentq: not run. This tool call needs a person to approve it, and a subagent cannot wait for one. ' +
  'Report that it is needed: the main agent can make the call itself and wait for the approval.';

/** Message the model gets for a call a person denied without saying why. */
export const DENIED_MESSAGE = 'agentq: a person denied this tool call.';

/** Message the model gets for a gated call that was not deferred because another call of the same message was. */
export const SIBLING_NOT_RUN =
  'agentq: not run. Another tool call in this message is waiting for a person to approve it, and only one call waits at a time. ' +
  'If this call is still needed, ask for it again, in a message of its own, after that one is decided.';

/** Message the model gets for a gated call the permission lock refused (the gate's hook did not answer for it). */
export const UNAPPROVED_NOT_RUN =
  'agentq: not run. No person approved this call, and the approval gate could not stop the run to ask for it. If it is still needed, ask for it again.';

/**
 * A word in the gate's command line (the shell's and node's): a stopping run spares the
 * processes carrying it its SIGTERM (see gateSettings), and SIGKILLs them with the CLI.
 */
export const GATE_PROCESS_TAG = 'agentq-approval-gate';

// The hook itself, plain JavaScript for `node -e` (no single quotes: it is put in single
// quotes for the shell). argv[1] is the spec, base64 JSON. Matching: a rule's tool name
// equals the call's; a pattern narrows only Bash, on the command's text (any occurrence,
// whitespace collapsed: a convenience, not a boundary, docs/approvals.md); a pattern on
// another tool gates the whole tool. The first gated call without a decision in a run is
// deferred; later ones of the same message are denied with SIBLING_NOT_RUN (measured: the
// CLI reports only one deferred call and drops the others from the session). A subagent's
// call (its input names an agent_id) is denied with SUBAGENT_NOT_GATED.
const GATE_CODE = `
/* ${GATE_PROCESS_TAG} */
const fs = require("fs"), path = require("path"), os = require("os");
const fail = (why) => { process.stderr.write("agentq approval gate: " + why + "; the call is blocked\\n"); process.exit(2); };
try {
  const spec = JSON.parse(Buffer.from(process.argv[1], "base64").toString("utf8"));
  const call = JSON.parse(fs.readFileSync(0, "utf8"));
  const name = call.tool_name, input = call.tool_input || {};
  const norm = (s) => String(s).replace(/\\s+/g, " ").trim();
  const tmp = process.env.CLAUDE_CODE_TMPDIR || os.tmpdir();
  const gated = spec.rules.some((r) => {
    if (r === "*") return true;
    const m = /^([A-Za-z0-9_-]+)(?:\\((.*)\\))?$/s.exec(r);
    if (!m || m[1] !== name) return false;
    if (m[2] === undefined || name !== "Bash") return true;
    const needle = norm(m[2].replace(/:?\\*$/, ""));
    return needle === "" || norm(input.command || "").includes(needle);
  });
  const answer = (decision, reason, updatedInput) => {
    const out = { hookEventName: "PreToolUse", permissionDecision: decision, permissionDecisionReason: reason };
    if (updatedInput) out.updatedInput = updatedInput;
    process.stdout.write(JSON.stringify({ hookSpecificOutput: out }) + "\\n");
    process.exit(0);
  };
  const d = Object.prototype.hasOwnProperty.call(spec.decisions, call.tool_use_id) ? spec.decisions[call.tool_use_id] : undefined;
  if (d && d.decision === "allow" && d.tool === name) answer("allow", "approved by a person (agentq)", d.updatedInput);
  if (d) answer("deny", d.message || spec.denied);
  if (!gated) process.exit(0);
  if (call.agent_id) answer("deny", spec.subagent);
  const marker = path.join(tmp, ".agentq-gate-" + spec.runKey);
  try { fs.mkdirSync(marker); } catch (e) {
    if (e && e.code === "EEXIST") answer("deny", spec.sibling);
    throw e;
  }
  answer("defer", "agentq: waiting for a person to approve this tool call");
} catch (e) { fail(e && e.message ? e.message : String(e)); }
`;

/** How long the CLI lets the hook run; it takes milliseconds, and a hook the CLI gave up on would not block the call. */
const HOOK_TIMEOUT_S = 600;

/**
 * The `--settings` JSON of a gated run: one PreToolUse hook for the rules' tools. The
 * matcher only saves starting the hook for other tools; the hook checks the name itself.
 * With the lock, the locked tools (lockedTools) also get an `ask` rule.
 */
export function gateSettings(spec: GateSpec, nodePath: string = process.execPath): string {
  // The hook answers by tool_use_id; the digests are the worker's (./permissionAnswers.ts), not put in argv.
  const decisions = Object.fromEntries(Object.entries(spec.decisions).map(([id, { inputSha256: _digest, ...d }]) => [id, d]));
  const payload = Buffer.from(JSON.stringify({ rules: spec.rules, decisions, runKey: spec.runKey, sibling: SIBLING_NOT_RUN, subagent: SUBAGENT_NOT_GATED, denied: DENIED_MESSAGE })).toString('base64');
  const code = GATE_CODE.replace(/\n\s*/g, ' ').trim();
  if (code.includes("'") || nodePath.includes("'")) throw new Error('the approval gate cannot be quoted for the shell');
  // Killed half-way, a hook is a non-blocking error, and the CLI goes on and runs the call.
  // So a stopping run never sends the gate SIGTERM (GATE_PROCESS_TAG): it finishes its
  // answer (it takes milliseconds), and only SIGKILL, which stops the CLI too, ends it. The
  // shell also ignores the signals (and so does node, which inherits that) for whatever
  // else may send them; a signal that lands before the trap runs is what the tag is for
  // (seen in the chaos suite: a drained worker's SIGTERM let a call run unapproved).
  const command = `trap '' TERM INT HUP; '${nodePath}' -e '${code}' '${payload}' || exit 2`;
  const hook = { type: 'command', command, timeout: HOOK_TIMEOUT_S };
  const tools = [...spec.rules.map(ruleTool), ...Object.values(spec.decisions).map((d) => d.tool)];
  // `*`: every tool (a stored policy that no longer parses gates everything).
  const matcher = spec.rules.includes('*') ? '*' : [...new Set(tools)].filter((t) => TOOL_NAME.test(t)).join('|');
  const settings: { permissions?: { ask: string[] }; hooks: Record<string, { matcher: string; hooks: (typeof hook)[] }[]> } = {
    hooks: { PreToolUse: [{ matcher, hooks: [hook] }] },
  };
  // The lock: the CLI asks the worker about these tools' calls (./permissionAnswers.ts).
  const locked = spec.lock === true ? lockedTools(spec) : [];
  if (locked.length > 0) settings.permissions = { ask: locked };
  return JSON.stringify(settings);
}

/** In -p mode the CLI offers AskUserQuestion only with a permission prompt tool (measured, both versions). */
function needsPromptTool(spec: GateSpec): boolean {
  return spec.rules.some((r) => ruleTool(r) === 'AskUserQuestion');
}

/** The CLI flags of a gated run (see buildArgv). */
export function gateFlags(spec: GateSpec, nodePath?: string): string[] {
  const flags = [
    // No settings file is read: a hook the agent planted in one could run commands of its
    // own on any tool call, or rewrite an allowed call's input (docs/approvals.md).
    '--setting-sources',
    '',
    '--settings',
    gateSettings(spec, nodePath),
  ];
  if (asksWorker(spec)) flags.push('--permission-prompt-tool', 'stdio');
  return flags;
}
