// The behaviour script of one fake turn. Tests choose it through env FAKE_CLAUDE_SCRIPT
// (inline JSON, applies to every turn) and override it per prompt with a first line
// `#fake {json}`. Unknown fields are rejected so that a typo in a test fails loudly
// instead of silently running the default behaviour.

export interface CrashSpec {
  /** Crash after system/init, the pre-delay session lines and the delay; else right at start. */
  afterInit?: boolean;
  exitCode?: number;
  signal?: NodeJS.Signals;
}

export interface ApiErrorSpec {
  status: number;
  message?: string;
  retries?: number;
}

export interface FakeSpec {
  delayMs?: number;
  initDelayMs?: number;
  linesBeforeDelay?: boolean;
  crash?: CrashSpec;
  hang?: boolean;
  ignoreSigterm?: boolean;
  spawnChild?: boolean;
  /** Like the real Bash tool: a child in its own session, left running after a normal end. */
  backgroundChild?: boolean;
  garbageLine?: boolean;
  unknownEvent?: boolean;
  oversizedLineBytes?: number;
  apiError?: ApiErrorSpec;
  retries?: number;
  maxTurns?: boolean;
  budget?: boolean;
  exitCode?: number;
  stderr?: string;
  reply?: string;
  costUsd?: number;
  extraLines?: number;
  lineBytes?: number;
  newSessionIdOnResume?: boolean;
  /** On --resume, answer as if the session file did not exist (the CLI's own "No conversation found"). */
  resumeMissing?: boolean;
  /** With --include-partial-messages: wait this long before each partial event, streaming the reply slowly. */
  partialDelayMs?: number;
  /**
   * Like the real Task tool: append one line to the transcript of subagent `<id>`
   * (`<session>/subagents/agent-<id>.jsonl`, with its `.meta.json`) with the session lines.
   */
  subagent?: string;
  /**
   * Like the real CLI with a tool output too large for the transcript: write the prompt's
   * text to `<session>/tool-results/<name>.txt`.
   */
  toolResult?: string;
  /** Ask for one Bash call that appends its tool_use_id to this file, asking the `--settings` hook first (./gate.ts). */
  gatedCall?: string;
  /** With gatedCall: like a CLI whose line of the call never reached the session file (a full disk) while it reported the deferral. */
  gatedCallLost?: boolean;
  /** Like a prompt-injected agent: plant links, FIFOs and link loops in the session folder (./sessionFolder.ts). */
  plant?: PlantSpec;
  /** Like the real CLI refusing a tool its permission mode does not allow: the result's `permission_denials` names one call of it. */
  deniedTool?: string;
  /** Like an agent editing its workspace: relative path (under the cwd) → the file's new content. */
  workspaceWrite?: Record<string, string>;
}

export interface PlantSpec {
  /** Path under `<session>/` → the target of a symbolic link made there (replacing what is there). */
  links?: Record<string, string>;
  /** Paths under `<session>/` made FIFOs. */
  fifos?: string[];
  /** Links to `.` and `..` made in `<session>/loops/`, this many of each. */
  loops?: number;
  /** At the end of the turn, after its last write, the session file itself becomes a link to this target. */
  sessionFileLink?: string;
}

/** Thrown for a malformed script; the CLI reports it and exits 1. */
export class SpecError extends Error {}

type FieldType = 'number' | 'boolean' | 'string' | 'object';

const FIELD_TYPES: Record<keyof FakeSpec, FieldType> = {
  delayMs: 'number',
  initDelayMs: 'number',
  linesBeforeDelay: 'boolean',
  crash: 'object',
  hang: 'boolean',
  ignoreSigterm: 'boolean',
  spawnChild: 'boolean',
  backgroundChild: 'boolean',
  garbageLine: 'boolean',
  unknownEvent: 'boolean',
  oversizedLineBytes: 'number',
  apiError: 'object',
  retries: 'number',
  maxTurns: 'boolean',
  budget: 'boolean',
  exitCode: 'number',
  stderr: 'string',
  reply: 'string',
  costUsd: 'number',
  extraLines: 'number',
  lineBytes: 'number',
  newSessionIdOnResume: 'boolean',
  resumeMissing: 'boolean',
  partialDelayMs: 'number',
  subagent: 'string',
  toolResult: 'string',
  plant: 'object',
  deniedTool: 'string',
  gatedCall: 'string',
  gatedCallLost: 'boolean',
  workspaceWrite: 'object',
};

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function checkType(where: string, value: unknown, type: FieldType): void {
  const ok = type === 'object' ? isPlainObject(value) : typeof value === type;
  if (!ok) throw new SpecError(`${where}: expected ${type}, got ${JSON.stringify(value)}`);
}

function checkApiError(raw: Record<string, unknown>): void {
  checkType('apiError.status', raw.status, 'number');
  if (raw.message !== undefined) checkType('apiError.message', raw.message, 'string');
  if (raw.retries !== undefined) checkType('apiError.retries', raw.retries, 'number');
}

function checkCrash(raw: Record<string, unknown>): void {
  if (raw.afterInit !== undefined) checkType('crash.afterInit', raw.afterInit, 'boolean');
  if (raw.exitCode !== undefined) checkType('crash.exitCode', raw.exitCode, 'number');
  if (raw.signal !== undefined) checkType('crash.signal', raw.signal, 'string');
}

/** A relative path of plain names. */
const safe = (p: unknown) => typeof p === 'string' && p !== '' && !p.startsWith('/') && !p.split('/').includes('..');

function checkPlant(raw: Record<string, unknown>): void {
  if (raw.links !== undefined && !(isPlainObject(raw.links) && Object.entries(raw.links).every(([k, v]) => safe(k) && typeof v === 'string'))) {
    throw new SpecError(`plant.links: expected relative paths to link targets, got ${JSON.stringify(raw.links)}`);
  }
  if (raw.fifos !== undefined && !(Array.isArray(raw.fifos) && raw.fifos.every(safe))) throw new SpecError(`plant.fifos: expected relative paths, got ${JSON.stringify(raw.fifos)}`);
  if (raw.loops !== undefined) checkType('plant.loops', raw.loops, 'number');
  if (raw.sessionFileLink !== undefined) checkType('plant.sessionFileLink', raw.sessionFileLink, 'string');
}

/** Validates an already-parsed script object. */
export function toSpec(raw: unknown, source: string): FakeSpec {
  if (!isPlainObject(raw)) throw new SpecError(`${source}: the script must be a JSON object`);
  for (const [key, value] of Object.entries(raw)) {
    const type = FIELD_TYPES[key as keyof FakeSpec];
    if (!type) throw new SpecError(`${source}: unknown field "${key}"`);
    checkType(`${source} ${key}`, value, type);
  }
  if (isPlainObject(raw.apiError)) checkApiError(raw.apiError);
  if (isPlainObject(raw.crash)) checkCrash(raw.crash);
  if (isPlainObject(raw.plant)) checkPlant(raw.plant);
  if (isPlainObject(raw.workspaceWrite) && !Object.entries(raw.workspaceWrite).every(([k, v]) => safe(k) && typeof v === 'string')) {
    throw new SpecError(`${source} workspaceWrite: expected relative paths to file contents, got ${JSON.stringify(raw.workspaceWrite)}`);
  }
  return raw as FakeSpec;
}

function parseJson(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SpecError(`${source}: invalid JSON (${(err as Error).message})`);
  }
}

/** The env-wide script, or an empty one when FAKE_CLAUDE_SCRIPT is unset or blank. */
export function specFromEnv(env: NodeJS.ProcessEnv): FakeSpec {
  const text = env.FAKE_CLAUDE_SCRIPT;
  if (text === undefined || text.trim() === '') return {};
  return toSpec(parseJson(text, 'FAKE_CLAUDE_SCRIPT'), 'FAKE_CLAUDE_SCRIPT');
}

const DIRECTIVE = '#fake ';

/**
 * Splits a prompt into its `#fake {json}` directive (first line) and the real prompt text
 * (everything after that line). A prompt without a directive is all text.
 */
export function splitDirective(prompt: string): { spec: FakeSpec; text: string } {
  if (!prompt.startsWith(DIRECTIVE)) return { spec: {}, text: prompt };
  const nl = prompt.indexOf('\n');
  const firstLine = nl === -1 ? prompt : prompt.slice(0, nl);
  const text = nl === -1 ? '' : prompt.slice(nl + 1);
  const json = firstLine.slice(DIRECTIVE.length).trim();
  return { spec: toSpec(parseJson(json, '#fake directive'), '#fake directive'), text };
}

/** Field-by-field override: the directive wins over the env script. */
export function mergeSpecs(base: FakeSpec, override: FakeSpec): FakeSpec {
  return { ...base, ...override };
}
