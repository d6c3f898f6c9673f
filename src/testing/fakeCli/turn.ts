// One fake turn: the sequence of stdout events and session lines the real CLI produces
// for a prompt, with the scripted deviations (delays, crashes, API errors...) that the
// runner's tests need. Each step is a small function so the order stays readable.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { CliOptions } from './args.js';
import {
  apiErrorName,
  apiErrorText,
  apiMessage,
  apiRetryEvent,
  assistantEvent,
  type Emitter,
  initEvent,
  modelUsage,
  partialEvents,
  resultEvent,
  resultUsage,
  syntheticErrorMessage,
  type Tokens,
} from './events.js';
import { readPgid, type Recorder } from './record.js';
import { promptText, type SessionWriter } from './sessionFile.js';
import type { CrashSpec, FakeSpec } from './spec.js';
import { askHook, askParent, asksFor, hookCommand, newGatedCall, runGatedCall, type GatedCall } from './gate.js';
import type { StdinLines } from './stdinLines.js';
import { linkSessionFile, plantInFolder, readSubagents, readToolResults, writeSubagentLine, writeToolResult } from './sessionFolder.js';
import { readStateFile, touchStateFile } from './stateFile.js';

export const DEFAULT_COST_USD = 0.0001;

/** The session all turns of this process write to. */
export interface Session {
  writer: SessionWriter;
  resumed: boolean;
  forkedFrom: string | undefined;
  /** User prompts already in the file; grows by one per turn. */
  prompts: string[];
  /**
   * Cost of the turns this process answered so far. The real CLI (2.1.197) reports
   * `total_cost_usd` summed over every message of a stream-json input process, not per turn.
   */
  costUsdSoFar?: number;
}

/** Per-process settings shared by every turn. */
export interface TurnEnv {
  opts: CliOptions;
  argv: readonly string[];
  cwd: string;
  model: string;
  permissionMode: string;
  apiKeySource: string;
  emitter: Emitter;
  recorder: Recorder;
  /** In stream-json input mode: stdin, for the turns' messages and the parent's permission answers. */
  stdin?: StdinLines | undefined;
}

export interface TurnInput {
  /** Message content as stored in the session file (string or content blocks). */
  content: unknown;
  /** The whole prompt text, including a `#fake` directive line if any. */
  prompt: string;
  /** The prompt text after the directive line: what the reply echoes. */
  text: string;
  spec: FakeSpec;
  /** 1-based turn number within this process (>1 only with --input-format stream-json). */
  turn: number;
}

// ---- process-level helpers -------------------------------------------------------------

const exitOnSigterm = (): void => process.exit(143);
const ignoreSigterm = (): void => {};

/** The real CLI exits 143 on SIGTERM without a result; `ignoreSigterm` scripts a stuck one. */
export function setSigtermPolicy(ignore: boolean): void {
  process.removeListener('SIGTERM', exitOnSigterm);
  process.removeListener('SIGTERM', ignoreSigterm);
  process.on('SIGTERM', ignore ? ignoreSigterm : exitOnSigterm);
}

const children = new Set<number>();

/**
 * A long-running grandchild in our process group (not detached), like a Bash tool's
 * command: it survives our own death, so only killing the whole group cleans it up.
 */
function spawnChild(): number | undefined {
  const child = spawn('sleep', ['1000'], { stdio: 'ignore' });
  child.on('error', (err) => process.stderr.write(`fake claude: could not spawn child: ${err.message}\n`));
  child.unref(); // must not keep us alive after a normal end
  if (child.pid !== undefined) children.add(child.pid);
  return child.pid;
}

/**
 * A child in its own session (setsid), as the real CLI's Bash tool starts commands: no
 * signal to our process group reaches it, and it is deliberately left running.
 */
function spawnBackgroundChild(): number | undefined {
  const child = spawn('sleep', ['1000'], { stdio: 'ignore', detached: true });
  child.on('error', (err) => process.stderr.write(`fake claude: could not spawn child: ${err.message}\n`));
  child.unref();
  return child.pid;
}

/** A normal end cleans up its children; crashes and signals deliberately leave them. */
function killChildren(): void {
  for (const pid of children) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  children.clear();
}

function sleep(ms: number | undefined): Promise<void> {
  // A pending timer keeps the event loop alive, so the process cannot exit early.
  return new Promise((resolve) => setTimeout(resolve, ms ?? 0));
}

function forever(): Promise<never> {
  return new Promise<never>(() => {
    setInterval(() => {}, 1 << 30);
  });
}

async function crash(c: CrashSpec): Promise<never> {
  if (c.signal) {
    // Our own SIGTERM handler would turn a self-sent SIGTERM into a clean exit 143.
    process.removeAllListeners(c.signal);
    process.kill(process.pid, c.signal);
    // Delivery to a multi-threaded process can lag; exit with the code only if it never kills us.
    await sleep(1000);
  }
  process.exit(c.exitCode ?? 1);
}

// ---- the turn --------------------------------------------------------------------------

function tokensFor(text: string, reply: string): Tokens {
  return { input: 10 + Math.ceil(Buffer.byteLength(text) / 4), output: 1 + Math.ceil(Buffer.byteLength(reply) / 4) };
}

function recordStart(env: TurnEnv, session: Session, input: TurnInput, childPid: number | undefined): void {
  const pgid = readPgid();
  env.recorder.write({
    event: 'start',
    pid: process.pid,
    ppid: process.ppid,
    // The worker that started the run, as it names itself in an unsandboxed run's
    // environment (the parent is its spawn helper, docs/runner.md).
    ...(process.env.AGENTQ_PARENT_PID ? { workerPid: Number(process.env.AGENTQ_PARENT_PID) } : {}),
    ...(pgid === undefined ? {} : { pgid }),
    argv: env.argv,
    cwd: env.cwd,
    sessionId: session.writer.sessionId,
    resumed: session.resumed,
    ...(session.forkedFrom === undefined ? {} : { forkedFrom: session.forkedFrom }),
    prompt: input.prompt,
    promptText: input.text,
    history: [...session.prompts],
    subagents: readSubagents(session.writer.file, session.writer.sessionId),
    toolResults: readToolResults(session.writer.file, session.writer.sessionId),
    turn: input.turn,
    ...(childPid === undefined ? {} : { childPid }),
    startedAt: Date.now(),
    // When this process was spawned (wall clock, sub-ms): the worker cold-start benchmark's end mark.
    processStartedAt: performance.timeOrigin,
    stateFile: readStateFile(),
  });
  if (process.env.CLAUDE_CONFIG_DIR) touchStateFile(session.writer.sessionId);
}

/** Unusual stdout lines a tolerant parser must survive. */
function emitOddLines(env: TurnEnv, sessionId: string, spec: FakeSpec): void {
  if (spec.unknownEvent) {
    env.emitter.event({ type: 'some_future_type', subtype: 'fake', session_id: sessionId, uuid: randomUUID() });
  }
  if (spec.garbageLine) env.emitter.raw('this is not JSON {{{ (fake garbage line)');
  if (spec.oversizedLineBytes) env.emitter.raw(oversizedLine(sessionId, spec.oversizedLineBytes));
}

/** A valid JSON tool-result line of exactly `bytes` bytes (or the minimum it can be). */
function oversizedLine(sessionId: string, bytes: number): string {
  const build = (content: string): string =>
    JSON.stringify({
      type: 'user',
      message: { role: 'user', content: [{ tool_use_id: 'toolu_fake_big', type: 'tool_result', content }] },
      parent_tool_use_id: null,
      session_id: sessionId,
      uuid: '00000000-0000-4000-8000-000000000000',
    });
  return build('x'.repeat(Math.max(0, bytes - Buffer.byteLength(build('')))));
}

function writeUserLines(env: TurnEnv, session: Session, input: TurnInput): void {
  const ctx = turnContext(env, session);
  session.writer.queueOperation('enqueue', input.content);
  session.writer.queueOperation('dequeue');
  session.writer.user(ctx, input.content);
  for (let i = 0; i < (input.spec.extraLines ?? 0); i++) session.writer.attachment(ctx, i);
  if (input.spec.subagent) writeSubagentLine(session.writer.file, session.writer.sessionId, input.spec.subagent, input.text);
  if (input.spec.toolResult) writeToolResult(session.writer.file, session.writer.sessionId, input.spec.toolResult, input.text);
  if (input.spec.plant) plantInFolder(session.writer.file, session.writer.sessionId, input.spec.plant);
  for (const [rel, content] of Object.entries(input.spec.workspaceWrite ?? {})) {
    mkdirSync(path.dirname(path.join(env.cwd, rel)), { recursive: true });
    writeFileSync(path.join(env.cwd, rel), content);
  }
}

function turnContext(env: TurnEnv, session: Session) {
  return { sessionId: session.writer.sessionId, cwd: env.cwd, permissionMode: env.permissionMode, model: env.model };
}

function emitRetries(env: TurnEnv, sessionId: string, spec: FakeSpec): void {
  const retries = spec.apiError?.retries ?? spec.retries ?? 0;
  const status = spec.apiError?.status ?? 529;
  for (let attempt = 1; attempt <= retries; attempt++) {
    env.emitter.event(apiRetryEvent(sessionId, attempt, retries, status));
  }
}

interface Timing {
  startedAt: number;
  apiMs: number;
}

/** The scripted API failure: synthetic assistant message, is_error result, exit 1. */
function finishWithApiError(env: TurnEnv, session: Session, spec: FakeSpec, timing: Timing): number {
  const status = spec.apiError?.status ?? 500;
  const text = apiErrorText(status, spec.apiError?.message);
  const message = syntheticErrorMessage(text);
  const sessionId = session.writer.sessionId;
  session.writer.assistant(turnContext(env, session), message, { isApiErrorMessage: true, error: apiErrorName(status) });
  // The stdout line carries the uuid of its session line, as the real CLI's does.
  env.emitter.event(assistantEvent(sessionId, message, { error: apiErrorName(status), uuid: session.writer.leafUuid }));
  env.emitter.result(
    resultEvent({
      subtype: 'success',
      isError: true,
      apiErrorStatus: status,
      result: text,
      stopReason: 'stop_sequence',
      sessionId,
      numTurns: 1,
      durationMs: Date.now() - timing.startedAt,
      durationApiMs: 0,
      costUsd: 0,
      usage: resultUsage({ input: 0, output: 0 }),
      modelUsage: {},
      terminalReason: 'completed',
    }),
  );
  return spec.exitCode ?? 1;
}

/** The normal reply, then a success result or the scripted max-turns / budget error. */
async function finishWithReply(env: TurnEnv, session: Session, input: TurnInput, timing: Timing): Promise<number> {
  const { spec } = input;
  const sessionId = session.writer.sessionId;
  const reply = spec.reply ?? `fake reply to: ${input.text}`;
  const tokens = tokensFor(input.text, reply);
  const messageId = `msg_fake_${randomUUID().replace(/-/g, '').slice(0, 20)}`;

  // Persist before printing, like the real CLI: whatever the runner sees is on disk.
  const stored = { ...apiMessage(messageId, env.model, reply, tokens, 'end_turn'), usage: resultUsage(tokens), stop_details: null };
  session.writer.assistant(turnContext(env, session), stored);
  session.writer.lastPrompt(input.prompt);

  const message = apiMessage(messageId, env.model, reply, tokens, null);
  const partial = env.opts.includePartialMessages ? partialEvents(sessionId, message, reply) : { before: [], after: [] };
  const emitPartial = async (e: Record<string, unknown>) => {
    if (spec.partialDelayMs) await sleep(spec.partialDelayMs);
    env.emitter.event(e);
  };
  for (const e of partial.before) await emitPartial(e);
  env.emitter.event(assistantEvent(sessionId, message, { uuid: session.writer.leafUuid }));
  for (const e of partial.after) await emitPartial(e);

  session.costUsdSoFar = (session.costUsdSoFar ?? 0) + (spec.costUsd ?? DEFAULT_COST_USD);
  const costUsd = session.costUsdSoFar;
  const common = {
    sessionId,
    durationMs: Date.now() - timing.startedAt,
    durationApiMs: timing.apiMs,
    costUsd,
    usage: resultUsage(tokens),
    modelUsage: modelUsage(env.model, tokens, costUsd),
  };
  if (spec.maxTurns) {
    const limit = env.opts.maxTurns ?? 1;
    env.emitter.result(
      resultEvent({
        ...common,
        subtype: 'error_max_turns',
        isError: true,
        numTurns: limit + 1,
        stopReason: 'tool_use',
        terminalReason: 'max_turns',
        errors: [`Reached maximum number of turns (${limit})`],
      }),
    );
    return spec.exitCode ?? 1;
  }
  if (spec.budget) {
    env.emitter.result(
      resultEvent({
        ...common,
        subtype: 'error_max_budget_usd',
        isError: true,
        numTurns: 1,
        stopReason: 'end_turn',
        terminalReason: 'max_budget_usd',
        errors: [`Reached maximum budget ($${env.opts.maxBudgetUsd ?? costUsd})`],
      }),
    );
    return spec.exitCode ?? 1;
  }
  env.emitter.result(
    resultEvent({
      ...common,
      subtype: 'success',
      isError: false,
      result: reply,
      numTurns: 1,
      stopReason: 'end_turn',
      terminalReason: 'completed',
      ...(spec.deniedTool !== undefined ? { permissionDenials: [{ tool_name: spec.deniedTool, tool_use_id: 'toolu_fake_denied', tool_input: {} }] } : {}),
    }),
  );
  return spec.exitCode ?? 0;
}

/** Runs one turn and returns the exit code it asks for (crash/hang never return). */
/** `-p --resume <id>` without a prompt: the hook is asked again about the call the session left open (./gate.ts). */
export async function continueOpenCall(env: TurnEnv, session: Session, call: GatedCall, spec: FakeSpec): Promise<number> {
  const startedAt = Date.now();
  const sessionId = session.writer.sessionId;
  const input: TurnInput = { content: '', prompt: '', text: `continued ${call.id}`, spec, turn: 1 };
  recordStart(env, session, input, undefined);
  env.emitter.event(initEvent({ ...env, sessionId, disallowedTools: env.opts.disallowedTools }));
  const timing = { startedAt, apiMs: 0 };
  const code = (await answerCall(env, session, call, timing)) === 'deferred' ? 0 : await finishWithReply(env, session, input, timing);
  env.recorder.write({ event: 'end', pid: process.pid, sessionId, turn: 1, exitCode: code, endedAt: Date.now() });
  return code;
}

/** Asks the gate about `call`: deferred (the result says so; the run ends), or run / refused and recorded as its tool result. */
async function answerCall(env: TurnEnv, session: Session, call: GatedCall, timing: Timing): Promise<'deferred' | 'answered'> {
  const sessionId = session.writer.sessionId;
  const answer = askHook(hookCommand(env.opts.settings), call, sessionId);
  env.recorder.write({ event: 'gate', pid: process.pid, toolUseId: call.id, decision: answer.decision, ...(answer.exit ? { hook: answer.exit } : {}) });
  if (answer.decision === 'defer') {
    const event = resultEvent({
      subtype: 'success',
      isError: false,
      durationMs: Date.now() - timing.startedAt,
      durationApiMs: timing.apiMs,
      numTurns: 1,
      result: '',
      stopReason: 'tool_deferred',
      sessionId,
      costUsd: session.costUsdSoFar ?? 0,
      usage: resultUsage({ input: 0, output: 0 }),
      modelUsage: {},
      terminalReason: 'tool_deferred',
    });
    env.emitter.result({ ...event, deferred_tool_use: call });
    return 'deferred';
  }
  let allowed = answer.decision === 'allow' || answer.decision === 'none';
  let reason = answer.reason ?? 'denied';
  let ran = call;
  if (allowed && asksFor(env.opts.settings, call.name)) {
    // With the stdio prompt tool the parent is asked; stdin is there only in stream-json input mode.
    const stdin = env.opts.permissionPromptTool === 'stdio' ? (env.stdin ?? 'closed') : undefined;
    const permission = await askParent(stdin, (line) => env.emitter.raw(line), call);
    env.recorder.write({ event: 'permission', pid: process.pid, toolUseId: call.id, allowed: permission.allowed });
    allowed = permission.allowed;
    reason = permission.message;
    ran = { ...call, input: permission.input };
  }
  if (allowed) runGatedCall(ran);
  const content = [{ type: 'tool_result', tool_use_id: call.id, content: allowed ? 'ran' : reason, is_error: !allowed }];
  session.writer.user(turnContext(env, session), content);
  return 'answered';
}

export async function runTurn(env: TurnEnv, session: Session, input: TurnInput): Promise<number> {
  const { spec } = input;
  const sessionId = session.writer.sessionId;
  const startedAt = Date.now();
  setSigtermPolicy(spec.ignoreSigterm ?? false);
  session.writer.lineBytes = spec.lineBytes;

  const childPid = spec.spawnChild ? spawnChild() : spec.backgroundChild ? spawnBackgroundChild() : undefined;
  recordStart(env, session, input, childPid);
  if (spec.stderr) process.stderr.write(spec.stderr.endsWith('\n') ? spec.stderr : `${spec.stderr}\n`);
  if (spec.crash && !spec.crash.afterInit) await crash(spec.crash);

  await sleep(spec.initDelayMs);
  env.emitter.event(initEvent({ ...env, sessionId, disallowedTools: env.opts.disallowedTools }));
  emitOddLines(env, sessionId, spec);

  const linesBeforeDelay = spec.linesBeforeDelay ?? true;
  if (linesBeforeDelay) writeUserLines(env, session, input);
  if (spec.hang) await forever();

  emitRetries(env, sessionId, spec);
  const apiStartedAt = Date.now();
  await sleep(spec.delayMs);
  if (spec.crash?.afterInit) await crash(spec.crash);
  if (!linesBeforeDelay) writeUserLines(env, session, input);

  const timing = { startedAt, apiMs: Date.now() - apiStartedAt };
  if (spec.gatedCall && !spec.apiError) {
    const call = newGatedCall(spec.gatedCall);
    const message = { id: `msg_fake_${call.id}`, type: 'message', role: 'assistant', model: env.model, content: [{ type: 'tool_use', ...call }], stop_reason: 'tool_use' };
    if (!spec.gatedCallLost) session.writer.assistant(turnContext(env, session), message);
    if ((await answerCall(env, session, call, timing)) === 'deferred') {
      session.prompts.push(promptText(input.content) ?? input.prompt);
      env.recorder.write({ event: 'end', pid: process.pid, sessionId, turn: input.turn, exitCode: 0, endedAt: Date.now() });
      killChildren();
      return 0;
    }
  }
  const code = spec.apiError ? finishWithApiError(env, session, spec, timing) : await finishWithReply(env, session, input, timing);
  session.prompts.push(promptText(input.content) ?? input.prompt);
  if (spec.plant?.sessionFileLink) linkSessionFile(session.writer.file, spec.plant.sessionFileLink);
  env.recorder.write({ event: 'end', pid: process.pid, sessionId, turn: input.turn, exitCode: code, endedAt: Date.now() });
  killChildren();
  return code;
}
