// One CLI invocation, fully observed: spawn (own process group, allow-listed env, no
// shell), stdout parsed line by line into typed events delivered with back-pressure,
// stderr kept as a bounded tail, cancellation and timeouts that take the whole process
// group down, and a closed-set outcome at the end.
import { randomUUID } from 'node:crypto';
import { mkdirSync, statSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import type { Config } from '../config.js';
import { RunOptionsError } from '../errors.js';
import { GATE_PROCESS_TAG } from './approvalGate.js';
import { buildArgv, permissionsOnStdio, promptOnStdin, runGate, streamsInput } from './argv.js';
import { RunCgroup, type CgroupHost, type RunLimits } from './cgroups.js';
import type { ConfigSeed } from './configSeed.js';
import { buildRunEnv } from './env.js';
import { collectToolUses, deferredToolUseOf, parseEventLine, permissionDenialsOf, type ClaudeEvent, type ResultEvent } from './events.js';
import { LineSplitter, LineTooLongError, TailBuffer } from './lineSplitter.js';
import { parseRunOptions, type RunOptions, type ValidRunOptions } from './options.js';
import { classifyRun, emptyFacts, type RunFacts, type RunOutcome, type Termination } from './outcome.js';
import { CONVERSATION_LINK_VAR, killProcessesWithEnv, linkMark, PARENT_PID_VAR, processStartTicks, RUN_MARKER_VAR, signalRun } from './processTree.js';
import type { SandboxSettings } from '../sandbox/settings.js';
import { wrapInSandbox, type SandboxedSpawn } from '../sandbox/wrapRun.js';
import { controlResponseLine, PermissionAnswers } from './permissionAnswers.js';
import { spawnDirect } from './spawnDirect.js';
import { spawnThroughHelper } from './spawnHelper.js';
import type { SpawnedRun, SpawnRequest } from './spawnTypes.js';

/** How the runner runs the CLI; usually `runnerSettings(config)`. */
export interface RunnerSettings {
  claudePath: string;
  /** The allow-listed base environment of the CLI. */
  env: Readonly<Record<string, string>>;
  maxLineBytes: number;
  killGraceMs: number;
  /** 0 = no idle limit. */
  idleTimeoutMs: number;
  /** 0 = no wall-clock limit. */
  timeoutMs: number;
  stderrTailBytes: number;
  /** When set, every run is isolated with bubblewrap (src/sandbox); undefined: unsandboxed. */
  sandbox?: SandboxSettings | undefined;
  /** When set, every run gets a cgroup with these limits (./cgroups.ts); undefined: none. */
  cgroups?: { host: CgroupHost; limits: RunLimits } | undefined;
  /** The CLI state file each run's config directory starts with, once made (./configSeed.ts). */
  configSeed?: ConfigSeed | undefined;
  /** How runs are started: through the spawn helper (./spawnHelper.ts, the default) or by this process. */
  spawn?: 'helper' | 'direct' | undefined;
}

/**
 * `sandbox`: what the worker's probe found usable (see src/sandbox/resolve.ts); `cgroups`:
 * where run groups go, when config.cli.limits sets any (see probeCgroups).
 */
export function runnerSettings(config: Config, sandbox?: SandboxSettings, cgroups?: CgroupHost): RunnerSettings {
  const { limits, spawn, ...cli } = config.cli;
  return { claudePath: config.claudePath, ...cli, spawn: spawn === 'direct' ? 'direct' : 'helper', sandbox, cgroups: cgroups && { host: cgroups, limits } };
}

export interface RunHooks {
  /** Aborting cancels the run: SIGTERM to the process group, SIGKILL after the grace period. */
  signal?: AbortSignal;
  /**
   * Called for every stdout line in order. The next line is not read until the returned
   * promise settles (back-pressure). If it throws, the run is stopped and `outcome`
   * rejects with that error.
   */
  onEvent?: (event: ClaudeEvent) => void | Promise<void>;
  /** Called once the process exists, with its pid (= its process group id). */
  onSpawn?: (pid: number) => void;
}

export interface ClaudeRun {
  readonly argv: readonly string[];
  /** Resolves when the process and all of its group are gone and stdout is drained. */
  readonly outcome: Promise<RunOutcome>;
  /** With `streamInput`: sends one more user message into the running CLI. */
  sendUserMessage(text: string): Promise<void>;
  /** With `streamInput`: closes stdin; the CLI finishes what is queued and exits. */
  endInput(): void;
}

/** After the CLI exits, how long stdout and stderr may stay open (held by an escaped grandchild). */
const DRAIN_AFTER_EXIT_MS = 2000;

export function userMessageLine(text: string): string {
  return `${JSON.stringify({
    type: 'user',
    message: { role: 'user', content: [{ type: 'text', text }] },
    parent_tool_use_id: null,
    session_id: '',
  })}\n`;
}

function prepareDirs(o: ValidRunOptions): void {
  let isDir = false;
  try {
    isDir = statSync(o.cwd).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir) throw new RunOptionsError(`Invalid run options:\n  cwd: ${o.cwd} is not an existing directory`, ['cwd']);
  for (const dir of [o.configDir, o.tmpDir, o.homeDir]) if (dir) mkdirSync(dir, { recursive: true });
}

/** Starts one CLI run. Throws RunOptionsError synchronously for bad options. */
export function startClaude(options: RunOptions, settings: RunnerSettings, hooks: RunHooks = {}): ClaudeRun {
  const o = parseRunOptions(options);
  prepareDirs(o);
  // Into the attempt's own directory, not through its link, which may lead elsewhere by now.
  settings.configSeed?.seed(o.attemptLink?.target ?? o.configDir);
  const argv = buildArgv(o);
  const longPrompt = promptOnStdin(o);
  // The CLI asks this process about its permissions (./permissionAnswers.ts): stdin stays
  // open, in stream-json input mode, until the run's result.
  const permissions = permissionsOnStdio(o) ? new PermissionAnswers(runGate(o)!) : undefined;
  const requestedSessionId = o.session.sessionId;
  const startedAt = performance.now();
  // Marks every process of this run, so tool processes in their own sessions are found.
  const runId = randomUUID();

  const state = {
    initSessionId: undefined as string | undefined,
    result: undefined as ResultEvent | undefined,
    termination: undefined as Termination | undefined,
    handlerError: undefined as unknown,
    lastActivity: Date.now(),
    inHandler: false,
    // With streamInput, a process may wait for its next message after a result (a warm
    // conversation): the idle and wall-clock limits count only while a message is answered.
    awaiting: true,
  };
  const stderrTail = new TailBuffer(settings.stderrTailBytes);

  if (hooks.signal?.aborted) {
    const facts = emptyFacts(0);
    return {
      argv,
      outcome: Promise.resolve({ ...facts, type: 'cancelled', reason: abortReason(hooks.signal) }),
      sendUserMessage: () => Promise.reject(new Error('the run was cancelled before it started')),
      endInput: () => undefined,
    };
  }

  const env: Record<string, string> = { ...buildRunEnv(settings.env, o), [RUN_MARKER_VAR]: runId };
  // In stream-json input mode the CLI buffers its session lines and writes them up to
  // ~100 ms later (docs/warm-conversations.md). A locked run writes each as it comes, as
  // `-p` does otherwise: a write that fails (a full disk) fails the run, instead of losing
  // lines after its result, such as a deferred call's.
  if (permissions) env.CLAUDE_CODE_EAGER_FLUSH = '1';
  // Lets the next attempt on this machine find this run by its conversation, sandboxed too (src/worker/configLink.ts).
  if (o.attemptLink) env[CONVERSATION_LINK_VAR] = linkMark(o.attemptLink.link);
  // Sandboxed: the same CLI argv and environment, started by bwrap (src/sandbox). The
  // worker's pid stays out of it (bwrap dies with the worker: --die-with-parent); unsandboxed,
  // it lets the orphan sweep find runs whose worker died.
  const sandboxed: SandboxedSpawn | undefined = settings.sandbox
    ? wrapInSandbox(settings.sandbox, {
        file: settings.claudePath,
        args: argv,
        env,
        cwd: o.cwd,
        configDir: o.configDir,
        homeDir: o.homeDir,
        tmpDir: o.tmpDir,
        addDirs: o.addDirs ?? [],
      })
    : undefined;
  if (!sandboxed) env[PARENT_PID_VAR] = String(process.pid);
  // With limits: the spawn joins the run's cgroup before it executes (then bwrap or the CLI).
  let group: RunCgroup | undefined;
  let spawnFile = sandboxed?.file ?? settings.claudePath;
  let spawnArgs: readonly string[] = sandboxed?.args ?? argv;
  if (settings.cgroups) {
    try {
      group = RunCgroup.create(settings.cgroups.host, runId, settings.cgroups.limits);
    } catch (err) {
      sandboxed?.close();
      throw err;
    }
    ({ file: spawnFile, args: spawnArgs } = group.wrap(spawnFile, spawnArgs));
  }
  const request: SpawnRequest = {
    file: spawnFile,
    args: spawnArgs,
    cwd: o.cwd,
    env: sandboxed?.env ?? env,
    stdin: streamsInput(o) || longPrompt,
    // Sandboxed, fd 3 carries bwrap's options (the host paths are not put in its argv).
    fd3: sandboxed?.fd3,
    linkCheck: o.attemptLink,
  };
  // Until the helper answers, signals wait for the pid (see `terminate`).
  const launched: Promise<SpawnedRun> = settings.spawn === 'direct' ? Promise.resolve(spawnDirect(request)) : spawnThroughHelper(request);

  let child: SpawnedRun | undefined;
  let pid: number | undefined;
  let scan: { sinceTicks?: number; spawnedAtMs: number } = { spawnedAtMs: Date.now() };
  let killTimer: NodeJS.Timeout | undefined;
  const signalTermination = () => {
    if (pid === undefined) return;
    // Sandboxed, the group is bwrap itself: SIGTERM there would kill the whole sandbox at
    // once (--die-with-parent); the CLI and its tools get it instead, as unsandboxed, and
    // bwrap exits with the CLI's status.
    // A gated run's hooks are spared: see gateSettings.
    signalRun(pid, runId, 'SIGTERM', { ...scan, spareRoot: sandboxed !== undefined, ...(o.gate ? { spareTagged: GATE_PROCESS_TAG } : {}) });
    killTimer = setTimeout(() => signalRun(pid!, runId, 'SIGKILL', scan), settings.killGraceMs);
  };
  const terminate = (why: Termination) => {
    if (state.termination) return;
    state.termination = why;
    if (child) signalTermination();
  };

  const ready = launched.then((spawned) => {
    child = spawned;
    pid = spawned.pid;
    // After the CLI exits its own start time is gone; remember it to bound the final sweep.
    const startTicks = pid === undefined ? undefined : processStartTicks(pid);
    scan = { ...(startTicks === undefined ? {} : { sinceTicks: startTicks }), spawnedAtMs: scan.spawnedAtMs };
    if (pid !== undefined && spawned.stdout) hooks.onSpawn?.(pid);
    spawned.stderr?.on('data', (chunk: Buffer) => stderrTail.push(chunk));
    // A write to a CLI that is gone fails in its callback (and shows in the outcome), not as an uncaught error.
    spawned.stdin?.on('error', () => undefined);
    // Cancelled or timed out while it was starting.
    if (state.termination) signalTermination();
    return spawned;
  });
  const exited = ready.then((spawned) => spawned.exited);

  const onAbort = () => terminate({ kind: 'cancelled', reason: abortReason(hooks.signal) });
  hooks.signal?.addEventListener('abort', onAbort, { once: true });
  const startWallTimer = () =>
    settings.timeoutMs > 0
      ? setTimeout(() => terminate({ kind: 'timed_out', timeout: 'wall', limitMs: settings.timeoutMs }), settings.timeoutMs)
      : undefined;
  let wallTimer = startWallTimer();
  const idleTimer =
    settings.idleTimeoutMs > 0
      ? setInterval(
          () => {
            if (state.awaiting && !state.inHandler && Date.now() - state.lastActivity > settings.idleTimeoutMs) {
              terminate({ kind: 'timed_out', timeout: 'idle', limitMs: settings.idleTimeoutMs });
            }
          },
          Math.max(10, Math.min(1000, Math.floor(settings.idleTimeoutMs / 4))),
        )
      : undefined;

  // Writes a line to the CLI's stdin, in order; a write error (the CLI already gone) shows up in the outcome.
  const writeStdin = (line: string) =>
    ready.then(
      ({ stdin }) =>
        new Promise<void>((resolve, reject) => {
          if (!stdin) return reject(new Error('the CLI did not start'));
          stdin.write(line, (err) => (err ? reject(err) : resolve()));
        }),
    );
  const endStdin = () => void ready.then(({ stdin }) => stdin?.end());
  const answerControl = (data: Record<string, unknown>) => {
    const requestId = typeof data.request_id === 'string' ? data.request_id : undefined;
    if (requestId === undefined || !permissions) return;
    const answer = permissions.answer(data.request);
    writeStdin(controlResponseLine(requestId, answer ?? { error: 'agentq answers only permission requests' })).catch(() => undefined);
  };

  const toolUses = new Set<string>();
  const deliver = async (event: ClaudeEvent) => {
    if (event.kind === 'init') state.initSessionId = event.data.session_id;
    collectToolUses(event, toolUses);
    if (event.kind === 'other' && event.data.type === 'control_request') answerControl(event.data);
    if (event.kind === 'result') {
      // A run that asks for permissions takes nothing after its result (a gated turn is
      // never kept warm): the CLI exits once stdin ends.
      if (permissions && state.result === undefined) endStdin();
      state.result = event.data;
      if (o.streamInput) {
        state.awaiting = false;
        clearTimeout(wallTimer);
        wallTimer = undefined;
      }
    }
    if (!hooks.onEvent) return;
    state.inHandler = true;
    try {
      await hooks.onEvent(event);
    } finally {
      state.inHandler = false;
      state.lastActivity = Date.now();
    }
  };

  const readStdout = async () => {
    const { stdout } = await ready;
    if (!stdout) return;
    const splitter = new LineSplitter(settings.maxLineBytes);
    try {
      for await (const chunk of stdout as AsyncIterable<Buffer>) {
        state.lastActivity = Date.now();
        for (const line of splitter.push(chunk)) {
          if (line.trim() !== '') await deliver(parseEventLine(line));
        }
      }
      const last = splitter.flush();
      if (last !== undefined && last.trim() !== '') await deliver(parseEventLine(last));
    } catch (err) {
      if (err instanceof LineTooLongError) {
        terminate({ kind: 'protocol_error', message: err.message });
      } else if (state.handlerError === undefined && !isStreamTeardown(err)) {
        state.handlerError = err;
        terminate({ kind: 'cancelled', reason: `event handler failed: ${(err as Error).message}` });
      }
      stdout.destroy();
    }
  };
  const reading = readStdout();

  const sendUserMessage = (text: string) => {
    if (!o.streamInput) return Promise.reject(new Error('this run was not started with streamInput'));
    if (!state.awaiting) {
      // The next message after a result: its own turn, with its own limits.
      state.awaiting = true;
      state.lastActivity = Date.now();
      wallTimer ??= startWallTimer();
    }
    // In the order asked for: every write waits for the same start.
    return writeStdin(userMessageLine(text));
  };
  // In stream-json input mode the prompt is the first message on stdin (none when resuming
  // a deferred call); a prompt too long for argv is all of stdin.
  if (streamsInput(o)) {
    if (o.prompt !== undefined) writeStdin(userMessageLine(o.prompt)).catch(() => undefined);
  } else if (longPrompt) {
    void ready.then(({ stdin }) => stdin?.end(o.prompt));
  }

  const outcome = (async (): Promise<RunOutcome> => {
    const exit = await exited;
    // Whatever the CLI left behind (tool processes, background jobs) goes with it. With no
    // pid (a spawn helper that died before it answered may still have started the run),
    // what carries the run's marker.
    if (pid !== undefined) signalRun(pid, runId, 'SIGKILL', scan);
    else if (exit.error && settings.spawn !== 'direct') killProcessesWithEnv(RUN_MARKER_VAR, runId);
    const oomKilled = group !== undefined && group.oomKills() > 0;
    if (group) await emptyAndRemove(group);
    sandboxed?.close();
    // The stderr tail is whole too: the exit can be seen before the last of it is read.
    const stderrRead = ready.then(({ stderr }) => (stderr ? finished(stderr).catch(() => undefined) : undefined));
    const drained = await Promise.race([
      Promise.all([reading, stderrRead]).then(() => true),
      new Promise<false>((r) => setTimeout(() => r(false), DRAIN_AFTER_EXIT_MS).unref()),
    ]);
    if (!drained) {
      child?.stdout?.destroy();
      child?.stderr?.destroy();
      await reading;
    }
    child?.release();
    clearTimeout(wallTimer);
    clearInterval(idleTimer);
    clearTimeout(killTimer);
    hooks.signal?.removeEventListener('abort', onAbort);
    if (state.handlerError !== undefined) throw state.handlerError instanceof Error ? state.handlerError : new Error(String(state.handlerError));
    const facts: RunFacts = {
      ...emptyFacts(performance.now() - startedAt),
      sessionId: state.result?.session_id ?? state.initSessionId,
      costUsd: state.result?.total_cost_usd ?? 0,
      usage: state.result?.usage,
      numTurns: state.result?.num_turns ?? 0,
      exitCode: exit.code ?? undefined,
      signal: exit.signal ?? undefined,
      stderrTail: stderrTail.toString(),
      resultText: state.result?.result,
      toolCalls: toolUses.size,
      permissionDenials: permissionDenialsOf(state.result),
      deferredToolUse: deferredToolUseOf(state.result),
    };
    return classifyRun({
      facts,
      requestedSessionId,
      claudePath: settings.claudePath,
      spawnError: exit.error,
      termination: state.termination,
      result: state.result,
      oomKilledAtBytes: oomKilled ? settings.cgroups?.limits.memoryMaxBytes : undefined,
    });
  })();

  return {
    argv,
    outcome,
    sendUserMessage,
    endInput: () => {
      // Asked for permissions, the CLI needs stdin until its result (ended there, see deliver).
      if (!permissions || state.result !== undefined) endStdin();
    },
  };
}

/** Kills what is left in the run's group (a process that escaped even the run marker), waits until it is empty, removes it. */
async function emptyAndRemove(group: RunCgroup): Promise<void> {
  const deadline = Date.now() + 2000;
  for (;;) {
    const left = group.pids();
    if (left.length === 0 || Date.now() > deadline) break;
    group.signalAll('SIGKILL');
    await new Promise((r) => setTimeout(r, 10));
  }
  group.remove();
}

/** Runs the CLI to the end and returns its outcome. */
export function runClaude(options: RunOptions, settings: RunnerSettings, hooks?: RunHooks): Promise<RunOutcome> {
  const run = startClaude(options, settings, hooks);
  // A one-shot run in stream-json input mode: the prompt is all there is to say.
  if (options.streamInput) run.endInput();
  return run.outcome;
}


function abortReason(signal: AbortSignal | undefined): string {
  const reason: unknown = signal?.reason;
  if (reason instanceof Error) return reason.message;
  return typeof reason === 'string' ? reason : 'aborted';
}

function isStreamTeardown(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ABORT_ERR';
}
