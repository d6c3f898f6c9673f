// The fake CLI's side of a PreToolUse gate (for the chaos suite and fast tests of
// approvals, docs/approvals.md): with `gatedCall` in its script a turn asks for one Bash
// call that appends its tool_use_id to a marker file, and asks the hook given with
// `--settings` first, like the real CLI: `defer` stops the run with `tool_deferred`;
// `allow` runs the call; `deny` or a blocking exit (2) refuses it. A hook that answers
// nothing (killed, not started) lets the call run, unless an `ask` rule names its tool: then
// with `--permission-prompt-tool stdio` the parent decides, asked on stdout and answering on
// stdin, as with both tested CLIs; without a prompt tool the call is refused. A later
// `-p --resume <id>` without a prompt asks the hook again about the call left open.
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { appendFileSync, readFileSync } from 'node:fs';
import type { StdinLines } from './stdinLines.js';

export interface GatedCall {
  id: string;
  name: string;
  input: { command: string };
}

export type HookAnswer = {
  decision: 'allow' | 'deny' | 'defer' | 'none';
  reason?: string;
  /** How the hook process ended (for the record the chaos suite reads). */
  exit?: { status: number | null; signal: string | null; error?: string };
};

interface Settings {
  permissions?: { ask?: string[] };
  hooks?: Record<string, { hooks?: { command?: string }[] }[] | undefined>;
}

/** The first PreToolUse command hook in `--settings <json>`, if any. */
export function hookCommand(settings: string | undefined): string | undefined {
  if (settings === undefined) return undefined;
  return (JSON.parse(settings) as Settings).hooks?.PreToolUse?.[0]?.hooks?.[0]?.command;
}

/** True when `--settings` has an `ask` rule for the tool (only whole-tool rules are modelled). */
export function asksFor(settings: string | undefined, tool: string): boolean {
  if (settings === undefined) return false;
  return (JSON.parse(settings) as Settings).permissions?.ask?.includes(tool) === true;
}

export function newGatedCall(marker: string): GatedCall {
  const id = `toolu_fake_${randomUUID().replace(/-/g, '').slice(0, 20)}`;
  return { id, name: 'Bash', input: { command: `echo ${id} >> ${marker}` } };
}

/** Asks the hook about `call`; no hook: no opinion. */
export function askHook(command: string | undefined, call: GatedCall, sessionId: string): HookAnswer {
  if (command === undefined) return { decision: 'none' };
  const input = JSON.stringify({ session_id: sessionId, hook_event_name: 'PreToolUse', tool_name: call.name, tool_input: call.input, tool_use_id: call.id });
  const r = spawnSync('/bin/sh', ['-c', command], { input, encoding: 'utf8', env: process.env });
  const exit = { status: r.status, signal: r.signal, ...(r.error ? { error: r.error.message } : {}) };
  if (r.status === 2) return { decision: 'deny', reason: r.stderr.trim(), exit };
  if (r.status !== 0 || r.stdout.trim() === '') return { decision: 'none', exit };
  const out = (JSON.parse(r.stdout) as { hookSpecificOutput?: { permissionDecision?: HookAnswer['decision']; permissionDecisionReason?: string } }).hookSpecificOutput;
  return { decision: out?.permissionDecision ?? 'none', reason: out?.permissionDecisionReason, exit };
}

/**
 * An `ask`. With `--permission-prompt-tool stdio` in stream-json input mode (`stdin`), a
 * `can_use_tool` control request on stdout (`emit`), answered by a control response on
 * stdin; with stdin ended, or not a stream ('closed'), "Stream closed". Without a prompt
 * tool (undefined) `-p` cannot ask. Each refuses the call.
 */
export async function askParent(stdin: StdinLines | 'closed' | undefined, emit: (line: string) => void, call: GatedCall): Promise<{ allowed: boolean; message: string; input: GatedCall['input'] }> {
  if (stdin === undefined) return { allowed: false, message: `Claude requested permissions to use ${call.name}, but you haven't granted it yet.`, input: call.input };
  const closed = { allowed: false, message: 'Tool permission request failed: Error: Stream closed', input: call.input };
  if (stdin === 'closed') return closed;
  const requestId = randomUUID();
  const answer = stdin.response(requestId);
  const request = { subtype: 'can_use_tool', tool_name: call.name, input: call.input, tool_use_id: call.id, matched_ask_rule: { source: 'flagSettings', tool_name: call.name } };
  emit(JSON.stringify({ type: 'control_request', request_id: requestId, request }));
  const response = (await answer) as { behavior?: unknown; message?: unknown; updatedInput?: { command?: unknown } } | undefined;
  if (response === undefined) return closed;
  if (response.behavior === 'allow') {
    const command = response.updatedInput?.command;
    return { allowed: true, message: '', input: typeof command === 'string' ? { command } : call.input };
  }
  return { allowed: false, message: typeof response.message === 'string' ? response.message : 'denied', input: call.input };
}

/** Runs the call the way the fake's Bash tool would: only the marker line (no shell). */
export function runGatedCall(call: GatedCall): void {
  const m = /^echo (\S+) >> (.+)$/.exec(call.input.command);
  if (m) appendFileSync(m[2]!, `${m[1]}\n`);
}

/** The last tool call of the session file without a result: what a prompt-less resume continues. */
export function openCall(file: string): GatedCall | undefined {
  let open: GatedCall | undefined;
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    let entry: { type?: string; message?: { content?: unknown } };
    try {
      entry = JSON.parse(line) as typeof entry;
    } catch {
      continue;
    }
    const content = Array.isArray(entry.message?.content) ? (entry.message.content as Record<string, unknown>[]) : [];
    for (const block of content) {
      if (entry.type === 'assistant' && block.type === 'tool_use') open = { id: String(block.id), name: String(block.name), input: block.input as GatedCall['input'] };
      if (entry.type === 'user' && block.type === 'tool_result' && open && block.tool_use_id === open.id) open = undefined;
    }
  }
  return open;
}
