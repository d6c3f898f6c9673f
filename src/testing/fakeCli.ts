#!/usr/bin/env node
// A fake `claude` CLI for fast tests. It accepts the flags the runner passes to the real
// CLI, writes session files at the real path with real-looking JSONL, and prints the
// real stream-json shapes (see shared/claude-cli/README.md and examples/). Behaviour is
// scripted per test through FAKE_CLAUDE_SCRIPT or a `#fake {json}` first prompt line, and
// every invocation can be recorded to FAKE_CLAUDE_LOG. Only node built-ins are used so
// it starts in a few tens of milliseconds.
import { ArgError, type CliOptions, effectivePermissionMode, parseArgs, validateOptions } from './fakeCli/args.js';
import { DEFAULT_MODEL, Emitter, FAKE_CLI_VERSION, missingSessionResult } from './fakeCli/events.js';
import { configDir, planSession } from './fakeCli/plan.js';
import { Recorder } from './fakeCli/record.js';
import { pluginList } from './fakeCli/stateFile.js';
import { promptText, SessionWriter } from './fakeCli/sessionFile.js';
import { type FakeSpec, mergeSpecs, SpecError, specFromEnv, splitDirective } from './fakeCli/spec.js';
import { continueOpenCall, runTurn, type Session, setSigtermPolicy, type TurnEnv, type TurnInput } from './fakeCli/turn.js';
import { openCall, type GatedCall } from './fakeCli/gate.js';
import { StdinLines } from './fakeCli/stdinLines.js';

function fail(recorder: Recorder, message: string): number {
  process.stderr.write(`${message}\n`);
  recorder.write({ event: 'error', pid: process.pid, argv: process.argv.slice(2), cwd: process.cwd(), error: message, at: Date.now() });
  return 1;
}

/** Builds a turn from message content; the env script is overridden by a `#fake` line. */
function turnInput(content: unknown, envSpec: FakeSpec, turn: number): TurnInput {
  const prompt = promptText(content) ?? '';
  const { spec, text } = splitDirective(prompt);
  return { content, prompt, text, spec: mergeSpecs(envSpec, spec), turn };
}

/** The user message of one `--input-format stream-json` line, or undefined to skip it. */
function parseInputLine(line: string): unknown {
  if (line.trim() === '') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    process.stderr.write(`Error parsing streaming input line: ${line}\n`);
    return undefined;
  }
  if (typeof value !== 'object' || value === null) return undefined;
  const { type, message } = value as { type?: unknown; message?: { content?: unknown } };
  if (type !== 'user' || typeof message !== 'object' || message === null) return undefined;
  return message.content;
}

/**
 * Stream-json input: one turn per user line, strictly one after another, until EOF. A
 * resumed session with a tool call left open and no prompt answers that call first, as
 * the real CLI does (measured, both versions).
 */
async function runStreamInput(env: TurnEnv, session: Session, envSpec: FakeSpec, first: TurnInput | undefined, open: GatedCall | undefined): Promise<number> {
  let code = 0;
  let turn = 0;
  const run = async (input: TurnInput): Promise<void> => {
    const c = await runTurn(env, session, input);
    if (c !== 0) code = c;
  };
  // Session lines go through a buffer, as with the real CLI in this mode (FAKE_CLAUDE_SESSION_BUFFER_MS,
  // default 30), unless CLAUDE_CODE_EAGER_FLUSH is set: then a turn's lines are written before its result.
  session.writer.bufferMs = process.env.CLAUDE_CODE_EAGER_FLUSH ? 0 : Number(process.env.FAKE_CLAUDE_SESSION_BUFFER_MS ?? 30) || 0;
  const stdin = new StdinLines(process.stdin);
  env.stdin = stdin;
  try {
    if (first) await run({ ...first, turn: ++turn });
    else if (open) {
      turn++;
      const c = await continueOpenCall(env, session, open, envSpec);
      if (c !== 0) code = c;
    }
    for (let line = await stdin.next(); line !== undefined; line = await stdin.next()) {
      const content = parseInputLine(line);
      if (content !== undefined) await run(turnInput(content, envSpec, ++turn));
    }
  } finally {
    session.writer.flush();
  }
  return code;
}

function turnEnv(opts: CliOptions, recorder: Recorder): TurnEnv {
  return {
    opts,
    argv: process.argv.slice(2),
    cwd: process.cwd(),
    model: opts.model ?? DEFAULT_MODEL,
    permissionMode: effectivePermissionMode(opts),
    apiKeySource: process.env.ANTHROPIC_API_KEY ? 'ANTHROPIC_API_KEY' : 'none',
    emitter: new Emitter(opts.outputFormat),
    recorder,
  };
}

async function readAllStdin(): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : text;
}

async function main(argv: readonly string[]): Promise<number> {
  setSigtermPolicy(false);
  const recorder = new Recorder(process.env.FAKE_CLAUDE_LOG || undefined);
  let opts: CliOptions;
  let envSpec: FakeSpec;
  let first: TurnInput | undefined;
  if (argv[0] === 'plugin' && argv[1] === 'list') return pluginList();
  try {
    opts = parseArgs(argv);
    if (opts.version) {
      process.stdout.write(`${FAKE_CLI_VERSION} (Claude Code)\n`);
      return 0;
    }
    // Like the real CLI with -p and no prompt argument: the prompt is what stdin holds.
    if (opts.prompt === undefined && opts.inputFormat === 'text' && !process.stdin.isTTY) opts.prompt = await readAllStdin();
    const invalid = validateOptions(opts, process.env, process.getuid?.());
    if (invalid) return fail(recorder, invalid);
    envSpec = specFromEnv(process.env);
    first = opts.prompt === undefined ? undefined : turnInput(opts.prompt, envSpec, 1);
  } catch (err) {
    if (err instanceof ArgError || err instanceof SpecError) return fail(recorder, err.message);
    throw err;
  }

  const copyOnResume = opts.forkSession || (first?.spec ?? envSpec).newSessionIdOnResume === true;
  const plan = planSession(opts, configDir(process.env), process.cwd(), copyOnResume);
  const env = turnEnv(opts, recorder);
  if (plan.kind === 'in-use') return fail(recorder, `Error: Session ID ${plan.sessionId} is already in use.`);
  // `resumeMissing` scripts a CLI that cannot find a session the worker did hydrate.
  const scriptedMissing = opts.resume !== undefined && (first?.spec ?? envSpec).resumeMissing === true;
  if (plan.kind === 'missing' || scriptedMissing) {
    const missingId = plan.kind === 'missing' ? plan.sessionId : opts.resume!;
    // Text mode has only the stderr line; json and stream-json also get a result object.
    if (opts.outputFormat !== 'text') env.emitter.result(missingSessionResult(missingId));
    return fail(recorder, `No conversation found with session ID: ${missingId}`);
  }

  const session: Session = {
    writer: new SessionWriter(plan.file, plan.sessionId, plan.history),
    resumed: plan.resumed,
    forkedFrom: plan.forkedFrom,
    prompts: [...(plan.history?.prompts ?? [])],
  };
  // No prompt: only a resume of a session with a tool call left open (a deferral) goes on.
  const open = !first && plan.resumed ? openCall(plan.file) : undefined;
  if (opts.inputFormat === 'stream-json') return runStreamInput(env, session, envSpec, first, open);
  if (!first) {
    if (open) return continueOpenCall(env, session, open, envSpec);
    return fail(recorder, 'Error: Input must be provided either through stdin or as a prompt argument when using --print');
  }
  return runTurn(env, session, first);
}

/**
 * Exits once stdout has been written out: a pipe is asynchronous here, and process.exit
 * drops what a slow reader has not taken yet (a busy machine lost a 150 KiB result line).
 */
function exitAfterStdout(code: number): void {
  process.stdout.write('', () => process.exit(code));
}

main(process.argv.slice(2)).then(
  (code) => exitAfterStdout(code),
  (err: unknown) => {
    // A bad `#fake` line inside stream-json input surfaces here: report it without a stack.
    const text = err instanceof SpecError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`fake claude: ${text}\n`);
    process.exit(1);
  },
);
