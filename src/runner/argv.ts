// argv for one CLI invocation, built from typed options. No shell is ever involved and
// no secret is ever placed here: secrets travel in the environment only.
import { asksWorker, gateFlags, type GateSpec } from './approvalGate.js';
import type { ValidRunOptions } from './options.js';

/**
 * The longest prompt passed as an argument, in UTF-8 bytes. Linux refuses any single
 * argument over 128 KiB (MAX_ARG_STRLEN: the spawn fails with E2BIG); a longer prompt goes
 * to the CLI's stdin, which `-p` reads as the prompt when there is no prompt argument.
 */
export const PROMPT_ARG_MAX_BYTES = 100_000;

type InputOptions = Pick<ValidRunOptions, 'prompt' | 'streamInput' | 'gate' | 'permissionMode'>;

/** The run's approval gate as its CLI gets it: with `bypass` from the run's own permission mode. */
export function runGate(o: Pick<ValidRunOptions, 'gate' | 'permissionMode'>): GateSpec | undefined {
  return o.gate && { ...o.gate, bypass: o.permissionMode === 'bypassPermissions' };
}

/** Whether the CLI answers its permission requests to this process (approvalGate.ts `asksWorker`): stdin stays open until its result. */
export function permissionsOnStdio(o: Pick<ValidRunOptions, 'gate' | 'permissionMode'>): boolean {
  const gate = runGate(o);
  return gate !== undefined && asksWorker(gate);
}

/** Whether the CLI reads stream-json messages on stdin: `streamInput`, or a run that asks the worker for permissions. */
export function streamsInput(o: InputOptions): boolean {
  return o.streamInput === true || permissionsOnStdio(o);
}

/** Whether the prompt goes to the CLI on stdin instead of in argv (see PROMPT_ARG_MAX_BYTES). */
export function promptOnStdin(o: InputOptions): boolean {
  return !streamsInput(o) && o.prompt !== undefined && Buffer.byteLength(o.prompt) > PROMPT_ARG_MAX_BYTES;
}

/** Flags every run carries: headless, machine-readable, one JSON event per line. */
export const BASE_FLAGS = ['-p', '--output-format', 'stream-json', '--verbose'] as const;

export function buildArgv(o: ValidRunOptions): string[] {
  const argv: string[] = [...BASE_FLAGS];
  const stream = streamsInput(o);
  if (stream) argv.push('--input-format', 'stream-json');
  if (o.session.mode === 'new') {
    argv.push('--session-id', o.session.sessionId);
  } else {
    argv.push('--resume', o.session.sessionId);
    if (o.session.fork) {
      argv.push('--fork-session');
      if (o.session.forkSessionId) argv.push('--session-id', o.session.forkSessionId);
    }
  }
  if (o.model) argv.push('--model', o.model);
  if (o.systemPrompt !== undefined) argv.push('--system-prompt', o.systemPrompt);
  if (o.appendSystemPrompt !== undefined) argv.push('--append-system-prompt', o.appendSystemPrompt);
  if (o.permissionMode) argv.push('--permission-mode', o.permissionMode);
  if (o.maxTurns !== undefined) argv.push('--max-turns', String(o.maxTurns));
  if (o.maxBudgetUsd !== undefined) argv.push('--max-budget-usd', String(o.maxBudgetUsd));
  if (o.includePartialMessages) argv.push('--include-partial-messages');
  // Variadic flags take every following word up to the next flag; the prompt is put
  // after `--` so it is never swallowed by them (and may itself start with `-`).
  if (o.allowedTools?.length) argv.push('--allowedTools', ...o.allowedTools);
  if (o.disallowedTools?.length) argv.push('--disallowedTools', ...o.disallowedTools);
  if (o.addDirs?.length) argv.push('--add-dir', ...o.addDirs);
  if (o.mcpConfig?.length) argv.push('--mcp-config', ...o.mcpConfig);
  const gate = runGate(o);
  if (gate) argv.push(...gateFlags(gate));
  // In stream-json input mode the prompt goes to stdin as the first message; a long one too.
  // Resuming a deferred tool call sends none: the CLI asks the gate about that call again.
  if (!stream && !promptOnStdin(o) && o.prompt !== undefined) argv.push('--', o.prompt);
  return argv;
}
