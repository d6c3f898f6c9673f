// The `agentq` command. Each action loads the configuration itself, so `--help` works
// even when the environment is invalid, and an invalid environment is reported by name.
import { Command, CommanderError } from 'commander';
import { describeConfig, loadConfig, type Config } from '../config.js';
import { asSchemaNotMigrated, ConfigError, SchemaTooNewError, StoreInputError, TurnInputError } from '../errors.js';
import { configMarkdownPage } from './configCommand.js';
import type { ApprovalsFlags, DecideFlags } from './approvalCommands.js';
import type { EnqueueFlags } from './turnCommands.js';
import type { WorkerFlags } from './workerCommand.js';
import { registerScheduleCommands } from './scheduleCommand.js';

// Each command's module is imported when that command runs: `agentq worker` must not pay
// for the HTTP server, the doctor's probes or the others at start-up (cold start of
// ephemeral workers; `npm run bench -- --filter ephemeral`).

export interface CliIo {
  env: Readonly<Record<string, string | undefined>>;
  out: (text: string) => void;
  err: (text: string) => void;
  /** All of standard input as UTF-8, refused past `maxBytes` (`agentq enqueue <conversation> -`); default: process.stdin. */
  readStdin?: (maxBytes: number) => Promise<string>;
}

/** `agentq transcript … | head`: a reader that closed the pipe ends the command quietly, as SIGPIPE would. */
function exitOnClosedStdout(err: NodeJS.ErrnoException): void {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
}

const defaultIo = (): CliIo => {
  if (!process.stdout.listeners('error').includes(exitOnClosedStdout)) process.stdout.on('error', exitOnClosedStdout);
  return {
    // The entrypoint is the one place that hands the process environment to loadConfig.
    env: process.env,
    out: (t) => process.stdout.write(`${t}\n`),
    err: (t) => process.stderr.write(`${t}\n`),
  };
};

export function buildProgram(io: CliIo, setExit: (code: number) => void): Command {
  const config = (): Config => loadConfig(io.env);
  const program = new Command('agentq')
    .description('Run Claude Code agent sessions as durable background jobs (BullMQ + Postgres).')
    .version('0.1.0')
    .showHelpAfterError()
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });

  program
    .command('config')
    .description('print the effective configuration (secrets redacted)')
    .option('--markdown', 'print docs/configuration.md (every environment variable) instead')
    .action((opts: { markdown?: boolean }) => {
      io.out(opts.markdown ? configMarkdownPage() : JSON.stringify(describeConfig(config()), null, 2));
    });

  program
    .command('doctor')
    .description('check Postgres, migrations, Redis, the CLI binary, the workspace and runs roots, and the Messages API URL (spends no tokens); exit 1 if one fails')
    .option('--json', 'print {ok, checks: [{name, ok, detail}]} as JSON')
    .action(async (opts: { json?: boolean }) => {
      const { doctorCommand } = await import('./doctor.js');
      setExit(await doctorCommand(config(), io, opts));
    });

  program
    .command('migrate')
    .description('apply pending database migrations (safe to run from several processes at once)')
    .option('--status', 'only report whether the schema is current')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { status?: boolean; json?: boolean }) => {
      const { migrateCommand } = await import('./migrateCommand.js');
      setExit(await migrateCommand(config(), io, opts));
    });

  program
    .command('worker')
    .description('run turns until SIGTERM/SIGINT (first signal drains, second interrupts), or ephemerally: --once, --max-turns-per-process, --idle-exit-ms')
    .option('--concurrency <n>', 'turns run at once (default AGENTQ_CONCURRENCY)')
    .option('--metrics-port <n>', 'serve Prometheus metrics at :<n>/metrics (default AGENTQ_METRICS_PORT; 0 picks a free port)')
    .option('--once', 'run one turn, then exit: 0 succeeded, 3 failed, 4 cancelled, 5 no turn within --wait-ms, 6 awaiting an approval, 75 handed back to the queue')
    .option('--wait-ms <n>', 'with --once: how long to wait for a turn to claim (default 10000)')
    .option('--max-turns-per-process <n>', 'exit 0 after this many turns (each committed or handed back)')
    .option('--idle-exit-ms <n>', 'exit 0 after this long with no turn running')
    .action(async (opts: WorkerFlags) => {
      const { workerCommand } = await import('./workerCommand.js');
      setExit(await workerCommand(config(), io, opts));
    });

  program
    .command('dev')
    .description('offline, for a first try: migrate, then run a worker against the built-in mock model and the HTTP API (viewer, dashboard); prints what to type next')
    .option('--port <n>', 'API port (default AGENTQ_API_PORT; 0 picks a free port)')
    .action(async (opts: { port?: string }) => {
      const { devCommand } = await import('./devCommand.js');
      setExit(await devCommand(io, opts));
    });

  program
    .command('api')
    .description('serve the HTTP API (and /docs) until SIGTERM/SIGINT')
    .option('--port <n>', 'port to listen on (default AGENTQ_API_PORT; 0 picks a free port)')
    .action(async (opts: { port?: string }) => {
      const { apiCommand } = await import('./apiCommand.js');
      setExit(await apiCommand(config(), io, opts));
    });

  program
    .command('enqueue')
    .description('enqueue a turn; prints its id, or with --wait its outcome')
    .argument('<conversation>', 'the conversation id, e.g. ticket-4812')
    .argument('[prompt]', 'the prompt of the turn; `-` reads it from standard input')
    .option('--prompt-file <file>', 'read the prompt from this file (for prompts too long for an argument)')
    .option('--wait', 'wait until the turn ends (exit 0 succeeded, 1 otherwise) or waits for an approval (exit 3, prints the approval id)')
    .option('--json', 'print one JSON line')
    .option('--timeout-ms <n>', 'with --wait: give up after this long (default 600000)')
    .option('--tenant <id>', 'tenant of the conversation (default "default")')
    .option('--idempotency-key <key>', 'enqueueing the same key again returns the same turn')
    .option('--priority <n>', 'BullMQ priority: 1 is most urgent, 0 (default) plain FIFO')
    .option('--delay-ms <n>', 'run no earlier than this many ms from now')
    .option('--options <json>', 'turn options as JSON, e.g. {"maxTurns":5,"model":"..."}')
    .action(async (conversation: string, prompt: string | undefined, opts: EnqueueFlags) => {
      const { enqueueCommand } = await import('./turnCommands.js');
      setExit(await enqueueCommand(config(), io, conversation, prompt, opts));
    });

  program
    .command('transcript')
    .description("a conversation's turns with their prompts, assistant text, tool calls and results, and cost")
    .argument('<conversation>', 'the conversation id')
    .option('--tenant <id>', 'tenant of the conversation (default "default")')
    .option('--json', 'print one JSON object per line (kind: turn, event, turn_end)')
    .option('--follow', 'keep printing new events and new turns until Ctrl-C')
    .action(async (conversation: string, opts: { tenant?: string; json?: boolean; follow?: boolean }) => {
      // The entrypoint owns signals: with --follow, Ctrl-C ends the polling cleanly.
      const stop = new AbortController();
      const onSigint = () => stop.abort();
      if (opts.follow) process.once('SIGINT', onSigint);
      try {
        const { transcriptCommand } = await import('./transcriptCommand.js');
        setExit(await transcriptCommand(config(), io, conversation, opts, stop.signal));
      } finally {
        process.off('SIGINT', onSigint);
      }
    });

  program
    .command('show')
    .description("a conversation's session and turns")
    .argument('<conversation>', 'the conversation id')
    .option('--json', 'print one JSON line')
    .option('--tenant <id>', 'tenant of the conversation (default "default")')
    .action(async (conversation: string, opts: { json?: boolean; tenant?: string }) => {
      const { showCommand } = await import('./turnCommands.js');
      setExit(await showCommand(config(), io, conversation, opts));
    });

  program
    .command('cancel')
    .description('cancel a turn: a queued one never runs, a running one is interrupted and committed as cancelled')
    .argument('<turn>', 'the turn id')
    .action(async (turn: string) => {
      const { cancelCommand } = await import('./turnCommands.js');
      setExit(await cancelCommand(config(), io, turn));
    });

  program
    .command('approvals')
    .description('tool calls that wait for a person (docs/approvals.md): id, status, tool, input, turn')
    .option('--tenant <id>', 'tenant (default "default")')
    .option('--status <s>', 'pending (default), allowed, denied, expired or all')
    .option('--json', 'print {approvals: [...]} as JSON')
    .action(async (opts: ApprovalsFlags) => {
      const { approvalsCommand } = await import('./approvalCommands.js');
      setExit(await approvalsCommand(config(), io, opts));
    });

  const collect = (value: string, previous: string[] = []) => [...previous, value];
  program
    .command('approve')
    .description('allow a gated tool call; the turn runs on, on any worker. Exit 0 decided, 2 bad input, 4 not found, 5 decided before')
    .argument('<approval>', 'the approval id')
    .option('--tenant <id>', 'tenant (default "default")')
    .option('--input <json>', 'run the tool with this input instead of the model\'s (a JSON object)')
    .option('--answer <text>', 'for AskUserQuestion: the answer to the next question (or "Question text=answer"); repeat for several', collect)
    .option('--message <text>', 'a note kept with the decision')
    .option('--json', 'print {outcome, approval} as JSON')
    .action(async (id: string, opts: DecideFlags) => {
      const { decideCommand } = await import('./approvalCommands.js');
      setExit(await decideCommand(config(), io, 'allow', id, opts));
    });

  program
    .command('deny')
    .description('refuse a gated tool call; the model is told (with --message, what you say). Exit codes as approve')
    .argument('<approval>', 'the approval id')
    .option('--tenant <id>', 'tenant (default "default")')
    .option('--message <text>', 'what the model is told')
    .option('--json', 'print {outcome, approval} as JSON')
    .action(async (id: string, opts: DecideFlags) => {
      const { decideCommand } = await import('./approvalCommands.js');
      setExit(await decideCommand(config(), io, 'deny', id, opts));
    });

  program
    .command('stats')
    .description('what an autoscaler needs: queue depth, turns waiting per priority, running turns, the oldest waiting turn, workers seen recently')
    .option('--json', 'print one JSON object')
    .option('--tenant <id>', 'count only this tenant\'s turns (the queue depth and workers are global)')
    .action(async (opts: { json?: boolean; tenant?: string }) => {
      const { statsCommand } = await import('./statsCommand.js');
      setExit(await statsCommand(config(), io, opts));
    });

  program
    .command('attach')
    .description("make an Agent SDK session (stored through agentq's sessionStore) the conversation's current session; the next turn continues it")
    .argument('<conversation>', 'the conversation id (created if missing)')
    .argument('<sessionId>', 'the SDK session id')
    .option('--tenant <id>', 'tenant of the conversation and of the SDK store (default "default")')
    .option('--project-key <key>', 'the SDK project key, when the session id is stored under several')
    .option('--json', 'print {conversationId, tenantId, sessionId, projectKeys, lines, moved} as JSON')
    .action(async (conversation: string, sessionId: string, opts: { tenant?: string; projectKey?: string; json?: boolean }) => {
      const { attachCommand } = await import('./attachCommand.js');
      setExit(await attachCommand(config(), io, conversation, sessionId, opts));
    });

  registerScheduleCommands(program, config, io, setExit);

  return program;
}

/** Runs the command line; resolves to the process exit code. */
export async function main(argv: readonly string[], io: CliIo = defaultIo()): Promise<number> {
  let code = 0;
  const program = buildProgram(io, (c) => {
    code = c;
  });
  try {
    await program.parseAsync([...argv]);
    return code;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    if (err instanceof ConfigError || err instanceof SchemaTooNewError || err instanceof TurnInputError || err instanceof StoreInputError) {
      io.err(err.message);
      return 2;
    }
    // A database that was never migrated: say what to do instead of a raw query error.
    const schema = asSchemaNotMigrated(err);
    if (schema) {
      io.err(schema.message);
      return 2;
    }
    throw err;
  }
}
