// Command-line parsing for the fake `claude`. It accepts the same flags the runner passes
// to the real CLI and rejects anything else, so a typo in the runner fails a fast test
// instead of being silently ignored. Value and variadic handling follow commander (which
// the real CLI uses): a variadic option swallows every following argument up to the next
// one that starts with `-`.

export type OutputFormat = 'text' | 'json' | 'stream-json';
export type InputFormat = 'text' | 'stream-json';

export interface CliOptions {
  print: boolean;
  version: boolean;
  prompt: string | undefined;
  outputFormat: OutputFormat;
  inputFormat: InputFormat;
  verbose: boolean;
  resume: string | undefined;
  sessionId: string | undefined;
  forkSession: boolean;
  model: string | undefined;
  systemPrompt: string | undefined;
  appendSystemPrompt: string | undefined;
  allowedTools: string[];
  disallowedTools: string[];
  permissionMode: string | undefined;
  maxTurns: number | undefined;
  maxBudgetUsd: number | undefined;
  includePartialMessages: boolean;
  addDirs: string[];
  mcpConfigs: string[];
  dangerouslySkipPermissions: boolean;
  /** `--settings <file-or-json>`: only inline JSON is read (its PreToolUse hook, ./gate.ts). */
  settings: string | undefined;
  /** `--permission-prompt-tool`: `stdio` asks the parent about each `ask` (./gate.ts). */
  permissionPromptTool: string | undefined;
}

/** A usage error: printed to stderr, exit code 1 (what commander does). */
export class ArgError extends Error {}

type FlagSpec =
  | { kind: 'boolean'; names: string[]; set: (o: CliOptions) => void }
  | {
      kind: 'value';
      names: string[];
      usage: string;
      choices?: readonly string[];
      set: (o: CliOptions, v: string) => void;
    }
  | { kind: 'variadic'; names: string[]; usage: string; set: (o: CliOptions, vs: string[]) => void };

const PERMISSION_MODES = ['acceptEdits', 'bypassPermissions', 'default', 'dontAsk', 'plan', 'auto'] as const;

const FLAGS: readonly FlagSpec[] = [
  { kind: 'boolean', names: ['-p', '--print'], set: (o) => void (o.print = true) },
  { kind: 'boolean', names: ['-v', '--version'], set: (o) => void (o.version = true) },
  { kind: 'boolean', names: ['--verbose'], set: (o) => void (o.verbose = true) },
  { kind: 'boolean', names: ['--fork-session'], set: (o) => void (o.forkSession = true) },
  { kind: 'boolean', names: ['--include-partial-messages'], set: (o) => void (o.includePartialMessages = true) },
  {
    kind: 'boolean',
    names: ['--dangerously-skip-permissions'],
    set: (o) => void (o.dangerouslySkipPermissions = true),
  },
  {
    kind: 'value',
    names: ['--output-format'],
    usage: '--output-format <format>',
    choices: ['text', 'json', 'stream-json'],
    set: (o, v) => void (o.outputFormat = v as OutputFormat),
  },
  {
    kind: 'value',
    names: ['--input-format'],
    usage: '--input-format <format>',
    choices: ['text', 'stream-json'],
    set: (o, v) => void (o.inputFormat = v as InputFormat),
  },
  { kind: 'value', names: ['-r', '--resume'], usage: '-r, --resume [value]', set: (o, v) => void (o.resume = v) },
  { kind: 'value', names: ['--session-id'], usage: '--session-id <uuid>', set: (o, v) => void (o.sessionId = v) },
  { kind: 'value', names: ['--model'], usage: '--model <model>', set: (o, v) => void (o.model = v) },
  {
    kind: 'value',
    names: ['--system-prompt'],
    usage: '--system-prompt <prompt>',
    set: (o, v) => void (o.systemPrompt = v),
  },
  {
    kind: 'value',
    names: ['--append-system-prompt'],
    usage: '--append-system-prompt <prompt>',
    set: (o, v) => void (o.appendSystemPrompt = v),
  },
  {
    kind: 'value',
    names: ['--permission-mode'],
    usage: '--permission-mode <mode>',
    choices: PERMISSION_MODES,
    set: (o, v) => void (o.permissionMode = v),
  },
  {
    kind: 'value',
    names: ['--max-turns'],
    usage: '--max-turns <turns>',
    set: (o, v) => void (o.maxTurns = parseNumber('--max-turns <turns>', v)),
  },
  {
    kind: 'value',
    names: ['--max-budget-usd'],
    usage: '--max-budget-usd <amount>',
    set: (o, v) => void (o.maxBudgetUsd = parseNumber('--max-budget-usd <amount>', v)),
  },
  {
    kind: 'variadic',
    names: ['--allowedTools', '--allowed-tools'],
    usage: '--allowedTools, --allowed-tools <tools...>',
    set: (o, vs) => void o.allowedTools.push(...splitToolList(vs)),
  },
  {
    kind: 'variadic',
    names: ['--disallowedTools', '--disallowed-tools'],
    usage: '--disallowedTools, --disallowed-tools <tools...>',
    set: (o, vs) => void o.disallowedTools.push(...splitToolList(vs)),
  },
  { kind: 'value', names: ['--settings'], usage: '--settings <file-or-json>', set: (o, v) => void (o.settings = v) },
  { kind: 'value', names: ['--setting-sources'], usage: '--setting-sources <sources>', set: () => undefined },
  { kind: 'value', names: ['--permission-prompt-tool'], usage: '--permission-prompt-tool <tool>', set: (o, v) => void (o.permissionPromptTool = v) },
  { kind: 'variadic', names: ['--add-dir'], usage: '--add-dir <directories...>', set: (o, vs) => void o.addDirs.push(...vs) },
  {
    kind: 'variadic',
    names: ['--mcp-config'],
    usage: '--mcp-config <configs...>',
    set: (o, vs) => void o.mcpConfigs.push(...vs),
  },
];

function defaults(): CliOptions {
  return {
    print: false,
    version: false,
    prompt: undefined,
    outputFormat: 'text',
    inputFormat: 'text',
    verbose: false,
    resume: undefined,
    sessionId: undefined,
    forkSession: false,
    model: undefined,
    systemPrompt: undefined,
    appendSystemPrompt: undefined,
    allowedTools: [],
    disallowedTools: [],
    permissionMode: undefined,
    maxTurns: undefined,
    maxBudgetUsd: undefined,
    includePartialMessages: false,
    addDirs: [],
    mcpConfigs: [],
    dangerouslySkipPermissions: false,
    settings: undefined,
    permissionPromptTool: undefined,
  };
}

function parseNumber(usage: string, v: string): number {
  const n = Number(v);
  if (v.trim() === '' || !Number.isFinite(n)) {
    throw new ArgError(`error: option '${usage}' argument '${v}' is invalid. Not a number.`);
  }
  return n;
}

/** `-x`, `--xyz`, `--xyz=1` are options; a lone `-` is a value (commander's rule). */
function looksLikeOption(arg: string): boolean {
  return arg.length > 1 && arg.startsWith('-');
}

/**
 * Splits tool lists the way the CLI accepts them: comma- or space-separated, but a
 * rule like `Bash(git diff:*)` keeps its inner spaces because they sit inside parentheses.
 */
export function splitToolList(values: string[]): string[] {
  const out: string[] = [];
  for (const value of values) {
    let depth = 0;
    let current = '';
    for (const ch of value) {
      if (ch === '(') depth++;
      if (ch === ')') depth = Math.max(0, depth - 1);
      if (depth === 0 && (ch === ',' || /\s/.test(ch))) {
        if (current) out.push(current);
        current = '';
      } else {
        current += ch;
      }
    }
    if (current) out.push(current);
  }
  return out;
}

function findFlag(name: string): FlagSpec | undefined {
  return FLAGS.find((f) => f.names.includes(name));
}

/** Parses argv (without node and script path). Throws ArgError on a usage error. */
export function parseArgs(argv: readonly string[]): CliOptions {
  const opts = defaults();
  const positionals: string[] = [];
  let i = 0;
  while (i < argv.length) {
    const arg = argv[i++] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i));
      break;
    }
    if (!looksLikeOption(arg)) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const name = eq === -1 ? arg : arg.slice(0, eq);
    const inline = eq === -1 ? undefined : arg.slice(eq + 1);
    const flag = findFlag(name);
    if (!flag || (flag.kind === 'boolean' && inline !== undefined)) {
      throw new ArgError(`error: unknown option '${arg}'`);
    }
    if (flag.kind === 'boolean') {
      flag.set(opts);
    } else if (flag.kind === 'value') {
      // Commander takes the next argument as the value even if it starts with `-`.
      const value = inline ?? argv[i++];
      if (value === undefined) throw new ArgError(`error: option '${flag.usage}' argument missing`);
      if (flag.choices && !flag.choices.includes(value)) {
        throw new ArgError(
          `error: option '${flag.usage}' argument '${value}' is invalid. Allowed choices are ${flag.choices.join(', ')}.`,
        );
      }
      flag.set(opts, value);
    } else {
      const values = inline === undefined ? [] : [inline];
      while (i < argv.length && !looksLikeOption(argv[i] as string)) values.push(argv[i++] as string);
      if (values.length === 0) throw new ArgError(`error: option '${flag.usage}' argument missing`);
      flag.set(opts, values);
    }
  }
  if (positionals.length > 1) {
    throw new ArgError(`error: too many arguments. Expected 1 argument but got ${positionals.length}.`);
  }
  opts.prompt = positionals[0];
  return opts;
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

/** The permission mode the CLI reports in system/init. */
export function effectivePermissionMode(opts: CliOptions): string {
  if (opts.permissionMode) return opts.permissionMode;
  return opts.dangerouslySkipPermissions ? 'bypassPermissions' : 'default';
}

/**
 * Cross-flag checks the real CLI makes before doing any work. Returns the stderr message
 * for the first violated rule, or undefined when the combination is acceptable.
 */
export function validateOptions(opts: CliOptions, env: NodeJS.ProcessEnv, uid: number | undefined): string | undefined {
  if (!opts.print) return 'Error: the fake claude CLI only supports headless mode (-p/--print)';
  if (opts.outputFormat === 'stream-json' && !opts.verbose) {
    return 'Error: When using --print, --output-format=stream-json requires --verbose';
  }
  if (opts.inputFormat === 'stream-json' && opts.outputFormat !== 'stream-json') {
    return 'Error: --input-format=stream-json requires output-format=stream-json.';
  }
  if (opts.sessionId !== undefined && !isUuid(opts.sessionId)) {
    return 'Error: Invalid session ID. Must be a valid UUID.';
  }
  if (opts.sessionId !== undefined && opts.resume !== undefined && !opts.forkSession) {
    return 'Error: --session-id can only be used with --continue or --resume if --fork-session is also specified.';
  }
  const bypass = opts.dangerouslySkipPermissions || opts.permissionMode === 'bypassPermissions';
  if (bypass && uid === 0 && env.IS_SANDBOX !== '1') {
    return '--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons';
  }
  // A resume without a prompt continues the tool call the session left open (./gate.ts).
  if (opts.inputFormat === 'text' && (opts.prompt === undefined || opts.prompt === '') && opts.resume === undefined) {
    return 'Error: Input must be provided either through stdin or as a prompt argument when using --print';
  }
  return undefined;
}
