// The one place that reads the environment. Every variable agentq understands is in
// `configVariables` with its default and a one-line doc; `loadConfig(env)` validates them
// all at once and returns a frozen, typed object. Nothing else touches process.env.
import { accessSync, constants } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import os from 'node:os';
import { z } from 'zod';
import { ConfigError } from './errors.js';

const intFrom = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int({ error: 'must be a whole number' })
    .min(min, { error: `must be >= ${min}` })
    .max(max, { error: `must be <= ${max}` });

const url = (protocols: readonly string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    { error: `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}` },
  );

/** Environment names that must never reach the CLI, even when listed in AGENTQ_CLI_ENV_ALLOW. */
export const NEVER_PASSED_TO_CLI: readonly string[] = ['DATABASE_URL', 'REDIS_URL'];

/**
 * One entry per environment variable: the schema (with its default) and a one-line doc.
 * docs/configuration.md is written from this list (`npx agentq config --markdown`; test/docs.test.ts checks it).
 */
export const configVariables = {
  DATABASE_URL: {
    schema: url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/postgres'),
    doc: 'Postgres connection string: the system of record.',
  },
  REDIS_URL: {
    schema: url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
    doc: 'Redis connection string used by BullMQ for dispatch.',
  },
  AGENTQ_QUEUE: {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1-64 characters of A-Z a-z 0-9 _ -' })
      .default('agentq'),
    doc: 'BullMQ queue name (and key prefix part); separate deployments use separate names.',
  },
  AGENTQ_QUEUE_PREFIX: {
    schema: z
      .string()
      .regex(/^[A-Za-z0-9_{}-]{1,64}$/, { error: 'must be 1-64 characters of A-Z a-z 0-9 _ - { }' })
      .default('bull'),
    doc: 'Prefix of every Redis key and channel of the queue. On Redis Cluster use a hash tag, e.g. `{agentq}`, so all of a queue\'s keys share a slot.',
  },
  AGENTQ_CONCURRENCY: {
    schema: intFrom(1, 256).default(4),
    doc: 'Turns one worker process runs at once.',
  },
  AGENTQ_WORKSPACE_ROOT: {
    schema: z
      .string()
      .refine((p) => path.isAbsolute(p), { error: 'must be an absolute path' })
      .default(path.join(os.tmpdir(), 'agentq', 'workspaces')),
    doc: 'Directory under which each conversation gets its stable working directory.',
  },
  AGENTQ_CLAUDE_PATH: {
    schema: z.string().min(1, { error: 'must not be empty' }).optional(),
    doc: 'Path of the `claude` executable; default: the bundled @anthropic-ai/claude-code binary.',
  },
  AGENTQ_CLI_ENV_ALLOW: {
    schema: z
      .string()
      .default('')
      .transform((s) => s.split(',').map((v) => v.trim()).filter(Boolean))
      .pipe(
        z
          .array(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: 'must be environment variable names' }))
          .refine((names) => !names.some((n) => NEVER_PASSED_TO_CLI.includes(n) || n.startsWith('AGENTQ_')), {
            error: `must not name ${NEVER_PASSED_TO_CLI.join(', ')} or AGENTQ_* variables`,
          }),
      ),
    doc: 'Comma-separated extra environment variable names passed to the CLI besides the built-in allow-list.',
  },
  AGENTQ_CLI_MAX_LINE_BYTES: {
    schema: intFrom(1024).default(16 * 1024 * 1024),
    doc: 'Longest stdout line accepted from the CLI; a longer one ends the run as a protocol error.',
  },
  AGENTQ_CLI_KILL_GRACE_MS: {
    schema: intFrom(0).default(3000),
    doc: 'After SIGTERM to the CLI process group, wait this long before SIGKILL.',
  },
  AGENTQ_CLI_IDLE_TIMEOUT_MS: {
    schema: intFrom(0).default(10 * 60 * 1000),
    doc: 'End a run that printed nothing for this long (0 = never); the CLI itself waits 300 s on a stalled API stream.',
  },
  AGENTQ_CLI_TIMEOUT_MS: {
    schema: intFrom(0).default(4 * 60 * 60 * 1000),
    doc: 'Wall-clock limit for one CLI run (0 = none).',
  },
  AGENTQ_CLI_STDERR_TAIL_BYTES: {
    schema: intFrom(0).default(16 * 1024),
    doc: 'How much of the end of the CLI stderr is kept for error reports.',
  },
  AGENTQ_RUN_MEMORY_MAX_MB: {
    schema: intFrom(0, 1024 * 1024).default(0),
    doc: "Memory cap of one CLI run with everything it starts (a cgroup; the OOM killer acts inside the run only), in MiB; 0 = none. Set, a worker refuses to start where cgroups cannot enforce it.",
  },
  AGENTQ_RUN_PIDS_MAX: {
    schema: intFrom(0, 1_000_000).default(0),
    doc: 'Processes and threads one CLI run may have at once, its tools included (a cgroup); 0 = none.',
  },
  AGENTQ_RUN_CPU_MAX: {
    schema: z.coerce.number({ error: 'must be a number' }).min(0, { error: 'must be >= 0' }).max(1024, { error: 'must be <= 1024' }).default(0),
    doc: 'CPU of one CLI run with its tools, in cores (e.g. 1.5; a cgroup quota); 0 = none.',
  },
  AGENTQ_SESSION_MAX_LINE_BYTES: {
    schema: intFrom(1024, 512 * 1024 * 1024).default(16 * 1024 * 1024),
    doc: 'Longest session-file line the store accepts; a longer one fails the persist and stores nothing of it.',
  },
  AGENTQ_SESSION_MAX_BYTES: {
    schema: intFrom(1024 * 1024, Number.MAX_SAFE_INTEGER).default(1024 * 1024 * 1024),
    doc: 'Largest session file (and total of its subagent transcripts) the worker reads from a run; a larger one is refused unread, the turn retried and, after AGENTQ_MAX_ATTEMPTS, failed.',
  },
  AGENTQ_WORKSPACE_MAX_BYTES: {
    schema: intFrom(0, 1024 * 1024 * 1024).default(100 * 1024 * 1024),
    doc: 'Cap on the bytes of regular files archived from a workspace (before compression); over it the commit fails and nothing is stored.',
  },
  AGENTQ_WORKSPACE_MAX_ENTRIES: {
    schema: intFrom(1, 10_000_000).default(100_000),
    doc: 'Cap on the entries (files, directories, links) walked in a workspace or a session folder; past it (or past 64 levels deep) the walk stops and nothing is stored.',
  },
  AGENTQ_WORKSPACE_EXCLUDE: {
    schema: z
      .string()
      .default('node_modules')
      .transform((s) => s.split(',').map((v) => v.trim()).filter(Boolean))
      .pipe(
        z.array(
          z.string().refine((g) => !g.startsWith('/') && !g.split('/').includes('..'), {
            error: 'must be names or globs relative to the workspace (no leading /, no ..)',
          }),
        ),
      ),
    doc: 'Comma-separated names or globs left out of workspace archives: a name without / matches at any depth, one with / matches the path from the workspace root.',
  },
  AGENTQ_EVENT_RETENTION_MS: {
    schema: intFrom(0).default(30 * 24 * 60 * 60 * 1000),
    doc: 'Turn events (stream-json lines) older than this are pruned (0 = keep forever).',
  },
  AGENTQ_RUNS_ROOT: {
    schema: z
      .string()
      .refine((p) => path.isAbsolute(p), { error: 'must be an absolute path' })
      .default(path.join(os.tmpdir(), 'agentq', 'runs')),
    doc: 'Directory for per-attempt CLAUDE_CONFIG_DIR / HOME / tmp dirs, removed after each attempt, and (unsandboxed) the per-conversation links to them in .config-links.',
  },
  AGENTQ_SESSION_CACHE_MAX_BYTES: {
    schema: intFrom(0).default(1024 * 1024 * 1024),
    doc: 'Committed session files a worker keeps (under AGENTQ_RUNS_ROOT/.cache) to skip hydrating when the next turn lands on it; 0 disables.',
  },
  AGENTQ_LEASE_MS: {
    schema: intFrom(1000).default(60_000),
    doc: 'How long a worker holds a conversation without renewing; renewed every third of it while a turn runs.',
  },
  AGENTQ_WARM_IDLE_MS: {
    schema: intFrom(0).default(0),
    doc: 'Warm conversations: keep a turn\'s CLI process running this long after it for the conversation\'s next turn (a turn\'s `options.warm` wins); 0: off.',
  },
  AGENTQ_WARM_MAX: {
    schema: intFrom(1).default(8),
    doc: 'Most warm conversations (CLI processes kept between turns) per worker; keeping one more lets the least recently used go.',
  },
  AGENTQ_WARM_HANDOFF_TIMEOUT_MS: {
    schema: intFrom(10).default(300),
    doc: 'How long a worker waits for the answer of the worker keeping a conversation warm before it takes the turn over and runs it cold.',
  },
  AGENTQ_WARM_HANDOFF_DELAY_MS: {
    schema: intFrom(10).default(1000),
    doc: 'After a warm owner accepted a turn, when the job that asked is looked at again (it completes once the turn is committed).',
  },
  AGENTQ_JOB_LOCK_MS: {
    schema: intFrom(1000).default(30_000),
    doc: 'BullMQ job lock (renewed at half of it); a worker silent this long is considered stalled.',
  },
  AGENTQ_CHECKPOINT_INTERVAL_MS: {
    schema: intFrom(100).default(5000),
    doc: 'How often new session lines and events of a running turn are saved to Postgres.',
  },
  AGENTQ_SHUTDOWN_GRACE_MS: {
    schema: intFrom(0).default(30_000),
    doc: 'On SIGTERM, how long running turns may finish before they are interrupted and handed back.',
  },
  AGENTQ_MAX_ATTEMPTS: {
    schema: intFrom(1, 100).default(5),
    doc: 'Attempts per turn for retryable failures (API errors, crashes, timeouts) before it fails.',
  },
  AGENTQ_RETRY_BASE_MS: {
    schema: intFrom(0).default(5000),
    doc: 'First retry delay; doubled per attempt with jitter, capped by AGENTQ_RETRY_MAX_MS.',
  },
  AGENTQ_RETRY_MAX_MS: {
    schema: intFrom(0).default(5 * 60 * 1000),
    doc: 'Longest retry delay.',
  },
  AGENTQ_RECONCILE_INTERVAL_MS: {
    schema: intFrom(100).default(15_000),
    doc: 'How often each worker re-dispatches due turns that have no BullMQ job (Redis loss, producer crash).',
  },
  AGENTQ_MISSING_SESSION_POLICY: {
    schema: z.enum(['fail', 'fresh']).default('fail'),
    doc: 'When a stored session cannot be resumed: fail the turn, or start a fresh session primed with a summary of earlier turns.',
  },
  AGENTQ_CONTINUATION_PROMPT: {
    schema: z
      .string()
      .min(1)
      .default('The previous run of this turn was interrupted. Continue the task from where it stopped. The task was:'),
    doc: 'Prompt a retried attempt resumes with when the interrupted attempt left checkpointed lines; the original prompt follows it.',
  },
  AGENTQ_MAX_PROMPT_CHARS: {
    schema: intFrom(1, 1_000_000).default(200_000),
    doc: 'Longest prompt enqueueTurn accepts.',
  },
  AGENTQ_METRICS_PORT: {
    schema: intFrom(0, 65535).optional(),
    doc: 'When set, `agentq worker` serves Prometheus metrics at http://AGENTQ_METRICS_HOST:<port>/metrics (`--metrics-port` wins); unset: no endpoint.',
  },
  AGENTQ_METRICS_HOST: {
    schema: z.string().min(1).default('127.0.0.1'),
    doc: 'Address the worker metrics endpoint listens on (0.0.0.0 in containers).',
  },
  AGENTQ_API_HOST: {
    schema: z.string().min(1).default('127.0.0.1'),
    doc: 'Address `agentq api` listens on (0.0.0.0 in containers).',
  },
  AGENTQ_API_PORT: {
    schema: intFrom(0, 65535).default(8080),
    doc: 'Port `agentq api` listens on (`--port` wins); 0 picks a free one.',
  },
  AGENTQ_API_KEYS: {
    schema: z
      .string()
      .transform((s, ctx) => {
        const keys: { token: string; tenant: string }[] = [];
        for (const pair of s.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
          const eq = pair.indexOf('=');
          const token = eq === -1 ? '' : pair.slice(0, eq);
          const tenant = eq === -1 ? '' : pair.slice(eq + 1);
          if (token.length < 16 || !/^[A-Za-z0-9._~+/-]+$/.test(token) || !/^[A-Za-z0-9_-]{1,64}$/.test(tenant)) {
            ctx.addIssue({ code: 'custom', message: 'must be comma-separated token=tenant pairs (token: 16+ characters of A-Z a-z 0-9 . _ ~ + / -; tenant: 1-64 of A-Z a-z 0-9 _ -)' });
            return z.NEVER;
          }
          keys.push({ token, tenant });
        }
        return keys;
      })
      .default([]),
    doc: 'API keys of the HTTP API: comma-separated `token=tenant` pairs (Bearer token → tenant). With none, every request gets 401.',
  },
  AGENTQ_API_RATE_LIMIT: {
    schema: intFrom(0, 1_000_000).default(600),
    doc: 'Requests per minute one API key may make (429 beyond); 0 disables the limit.',
  },
  AGENTQ_API_BODY_LIMIT_BYTES: {
    schema: intFrom(1024, 64 * 1024 * 1024).default(1024 * 1024),
    doc: 'Largest request body the HTTP API accepts (413 beyond).',
  },
  AGENTQ_API_SSE_PING_MS: {
    schema: intFrom(100, 10 * 60 * 1000).default(15_000),
    doc: 'How often an open event stream (GET /v1/turns/:id/events) gets a `: ping` comment, so proxies do not close it as idle.',
  },
  AGENTQ_API_ADMIN_TENANTS: {
    schema: z
      .string()
      .default('default')
      .transform((s) => s.split(',').map((v) => v.trim()).filter(Boolean))
      .pipe(z.array(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be tenant names (1-64 of A-Z a-z 0-9 _ -)' }))),
    doc: 'Tenants whose API keys may open the queue dashboard at /admin/queues (it shows every tenant\'s jobs).',
  },
  AGENTQ_SANDBOX: {
    schema: z.enum(['auto', 'bwrap', 'off']).default('auto'),
    doc: 'Isolation of each CLI run: `bwrap` requires bubblewrap (a worker refuses to start without it), `auto` uses it when it works here and logs an error when not, `off` runs the CLI as the worker user: unsafe for untrusted prompts.',
  },
  AGENTQ_SANDBOX_ALLOW_HOSTS: {
    schema: z
      .string()
      .default('')
      .transform((s) => s.split(',').map((v) => v.trim()).filter(Boolean))
      .pipe(
        z
          .array(
            z
              .string()
              .regex(/^[A-Za-z0-9]([A-Za-z0-9.-]{0,252}[A-Za-z0-9])?:\d{1,5}$/, { error: 'must be host:port entries (a host name, not a URL)' })
              .transform((e) => ({ host: e.slice(0, e.lastIndexOf(':')), port: Number(e.slice(e.lastIndexOf(':') + 1)) }))
              .refine((e) => e.port >= 1 && e.port <= 65535, { error: 'ports must be 1-65535' }),
          )
          .max(20, { error: 'at most 20 hosts' }),
      ),
    doc: 'Comma-separated `host:port` a sandboxed run may reach besides the model API (MCP servers): the worker forwards each as raw TCP, inside the sandbox the name resolves to a private loopback address. Empty: nothing else.',
  },
  AGENTQ_LOG_LEVEL: {
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    doc: 'pino log level.',
  },
  AGENTQ_MODEL: {
    schema: z.enum(['api', 'mock']).default('api'),
    doc: '`api`: CLI runs talk to the Messages API at ANTHROPIC_BASE_URL (default api.anthropic.com) with the configured credentials. `mock`: the worker starts the built-in mock model and points its CLI runs at it: offline, no key, no cost (what `agentq dev` uses).',
  },
  ANTHROPIC_API_KEY: {
    schema: z.string().min(1, { error: 'must not be empty when set' }).optional(),
    doc: 'API key passed to the CLI; when unset, `npm run demo` uses the built-in mock model.',
  },
  ANTHROPIC_BASE_URL: {
    schema: url(['http:', 'https:']).optional(),
    doc: 'Messages API base URL passed to the CLI (a proxy, or the mock model in tests).',
  },
} as const;

type Variables = typeof configVariables;
type EnvValues = { [K in keyof Variables]: z.output<Variables[K]['schema']> };

const envSchema = z.object(
  Object.fromEntries(Object.entries(configVariables).map(([name, v]) => [name, v.schema])) as {
    [K in keyof Variables]: Variables[K]['schema'];
  },
);

/** The typed configuration. Names carry their unit (`...Ms`, `...Bytes`). */
export interface Config {
  readonly databaseUrl: string;
  readonly redisUrl: string;
  readonly queueName: string;
  /** BullMQ key prefix (a hash tag on Redis Cluster). */
  readonly queuePrefix: string;
  readonly concurrency: number;
  readonly workspaceRoot: string;
  readonly claudePath: string;
  readonly logLevel: EnvValues['AGENTQ_LOG_LEVEL'];
  readonly cli: {
    /** The environment the CLI inherits: the allow-list applied to the worker's environment. */
    readonly env: Readonly<Record<string, string>>;
    /** AGENTQ_CLI_ENV_ALLOW: the names the operator allowed besides the built-in list. */
    readonly envAllow: readonly string[];
    readonly maxLineBytes: number;
    readonly killGraceMs: number;
    readonly idleTimeoutMs: number;
    readonly timeoutMs: number;
    readonly stderrTailBytes: number;
    /** Cgroup limits of each run (AGENTQ_RUN_*); all 0: none. */
    readonly limits: {
      readonly memoryMaxBytes: number;
      readonly pidsMax: number;
      readonly cpuMax: number;
    };
  };
  readonly store: {
    /** Longest session-file line accepted by persist. @defaultValue 16 MiB */
    readonly sessionMaxLineBytes: number;
    /** AGENTQ_SESSION_MAX_BYTES */
    readonly sessionMaxBytes: number;
    /** Cap on the uncompressed bytes of files in a workspace archive. @defaultValue 100 MiB */
    readonly workspaceMaxBytes: number;
    /** AGENTQ_WORKSPACE_MAX_ENTRIES */
    readonly workspaceMaxEntries: number;
    /** Names/globs left out of workspace archives. @defaultValue ['node_modules'] */
    readonly workspaceExclude: readonly string[];
    /** Age after which turn events are pruned; 0 keeps them. @defaultValue 30 days */
    readonly eventRetentionMs: number;
  };
  readonly worker: {
    readonly runsRoot: string;
    readonly sessionCacheMaxBytes: number;
    readonly leaseMs: number;
    /** 0: warm conversations off unless a turn asks. */
    readonly warmIdleMs: number;
    readonly warmMax: number;
    readonly warmHandoffTimeoutMs: number;
    readonly warmHandoffDelayMs: number;
    readonly jobLockMs: number;
    readonly checkpointIntervalMs: number;
    readonly shutdownGraceMs: number;
    readonly maxAttempts: number;
    readonly retryBaseMs: number;
    readonly retryMaxMs: number;
    readonly reconcileIntervalMs: number;
    readonly missingSessionPolicy: 'fail' | 'fresh';
    readonly continuationPrompt: string;
    readonly maxPromptChars: number;
    /** Port of the worker's /metrics endpoint; undefined: none. */
    readonly metricsPort: number | undefined;
    readonly metricsHost: string;
  };
  readonly api: {
    readonly host: string;
    readonly port: number;
    /** Bearer token → tenant. */
    readonly keys: readonly { readonly token: string; readonly tenant: string }[];
    /** Requests per minute per key; 0: no limit. */
    readonly rateLimitPerMinute: number;
    readonly bodyLimitBytes: number;
    /** A `: ping` comment on open event streams this often. @defaultValue 15000 */
    readonly ssePingMs: number;
    readonly adminTenants: readonly string[];
  };
  readonly sandbox: {
    /** @defaultValue 'auto' */
    readonly mode: 'auto' | 'bwrap' | 'off';
    /** `bwrap` and `socat` found on PATH; undefined when absent. */
    readonly bwrapPath: string | undefined;
    readonly socatPath: string | undefined;
    /** AGENTQ_SANDBOX_ALLOW_HOSTS: what a run may reach besides the model API. */
    readonly allowHosts: readonly { readonly host: string; readonly port: number }[];
  };
  readonly anthropic: {
    readonly apiKey: string | undefined;
    readonly baseUrl: string | undefined;
  };
  /** AGENTQ_MODEL: the Messages API, or the built-in mock model. */
  readonly model: 'api' | 'mock';
}

/** Prefixes and names of the worker's environment that the CLI may see (invariant 9 of docs/design.md). */
const CLI_ENV_PREFIXES = ['ANTHROPIC_', 'CLAUDE_CODE_', 'DISABLE_', 'LC_'];
const CLI_ENV_NAMES = [
  'PATH',
  'LANG',
  'TZ',
  'TERM',
  'IS_SANDBOX',
  'HTTP_PROXY',
  'HTTPS_PROXY',
  'NO_PROXY',
  'http_proxy',
  'https_proxy',
  'no_proxy',
  'NODE_EXTRA_CA_CERTS',
  'SSL_CERT_FILE',
  'SSL_CERT_DIR',
];

/** Applies the CLI allow-list to an environment. DATABASE_URL and REDIS_URL never pass. */
export function cliEnvironment(
  env: Readonly<Record<string, string | undefined>>,
  extraNames: readonly string[],
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value === undefined || NEVER_PASSED_TO_CLI.includes(name)) continue;
    const allowed =
      CLI_ENV_NAMES.includes(name) || extraNames.includes(name) || CLI_ENV_PREFIXES.some((p) => name.startsWith(p));
    if (allowed) out[name] = value;
  }
  return out;
}

/** The first executable `name` in the PATH directories, if any. */
function findOnPath(name: string, pathVar: string | undefined): string | undefined {
  for (const dir of (pathVar ?? '/usr/local/bin:/usr/bin:/bin').split(':')) {
    if (!path.isAbsolute(dir)) continue;
    const candidate = path.join(dir, name);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** The bundled CLI binary of the pinned @anthropic-ai/claude-code dependency. */
export function bundledClaudePath(): string {
  const require = createRequire(import.meta.url);
  const pkgJson = require.resolve('@anthropic-ai/claude-code/package.json');
  return path.join(path.dirname(pkgJson), 'bin', 'claude.exe');
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Variables whose values are secrets: an error names them, never shows them. */
const SECRET_VARIABLES = ['AGENTQ_API_KEYS', 'ANTHROPIC_API_KEY'];
/** Variables whose values are URLs that may hold a password. */
const URL_VARIABLES = ['DATABASE_URL', 'REDIS_URL'];

/** A URL with its password replaced by `***` (`***` alone when it does not parse). */
export function redactUrl(raw: string): string {
  try {
    const u = new URL(raw);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '***';
  }
}

/** How an invalid value is quoted in an error: secrets are not, URLs without their password. */
function shownValue(name: string, value: string | undefined): string {
  if (value === undefined) return 'null';
  if (SECRET_VARIABLES.includes(name)) return `${value.length} characters, not shown: it holds secrets`;
  if (URL_VARIABLES.includes(name)) return JSON.stringify(redactUrl(value));
  return JSON.stringify(value);
}

/**
 * Validates the environment and returns the frozen configuration. Empty strings count
 * as unset. Throws ConfigError naming every invalid variable and what it allows.
 */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const input: Record<string, string | undefined> = {};
  for (const name of Object.keys(configVariables)) {
    const value = env[name];
    input[name] = value === '' ? undefined : value;
  }
  const parsed = envSchema.safeParse(input);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => {
      const name = String(issue.path[0] ?? '?');
      return { name, text: `${name}: ${issue.message} (got ${shownValue(name, input[name])})` };
    });
    throw new ConfigError(
      `Invalid configuration:\n  ${problems.map((p) => p.text).join('\n  ')}`,
      [...new Set(problems.map((p) => p.name))],
    );
  }
  const v = parsed.data as EnvValues;
  const cliEnv = cliEnvironment(env, v.AGENTQ_CLI_ENV_ALLOW);
  // The configured key and URL win over whatever the allow-list copied.
  if (v.ANTHROPIC_API_KEY) cliEnv.ANTHROPIC_API_KEY = v.ANTHROPIC_API_KEY;
  if (v.ANTHROPIC_BASE_URL) cliEnv.ANTHROPIC_BASE_URL = v.ANTHROPIC_BASE_URL;
  const config: Config = {
    databaseUrl: v.DATABASE_URL,
    redisUrl: v.REDIS_URL,
    queueName: v.AGENTQ_QUEUE,
    queuePrefix: v.AGENTQ_QUEUE_PREFIX,
    concurrency: v.AGENTQ_CONCURRENCY,
    workspaceRoot: v.AGENTQ_WORKSPACE_ROOT,
    claudePath: v.AGENTQ_CLAUDE_PATH ?? bundledClaudePath(),
    logLevel: v.AGENTQ_LOG_LEVEL,
    cli: {
      env: cliEnv,
      envAllow: v.AGENTQ_CLI_ENV_ALLOW,
      maxLineBytes: v.AGENTQ_CLI_MAX_LINE_BYTES,
      killGraceMs: v.AGENTQ_CLI_KILL_GRACE_MS,
      idleTimeoutMs: v.AGENTQ_CLI_IDLE_TIMEOUT_MS,
      timeoutMs: v.AGENTQ_CLI_TIMEOUT_MS,
      stderrTailBytes: v.AGENTQ_CLI_STDERR_TAIL_BYTES,
      limits: { memoryMaxBytes: v.AGENTQ_RUN_MEMORY_MAX_MB * 1024 * 1024, pidsMax: v.AGENTQ_RUN_PIDS_MAX, cpuMax: v.AGENTQ_RUN_CPU_MAX },
    },
    sandbox: {
      mode: v.AGENTQ_SANDBOX,
      bwrapPath: findOnPath('bwrap', env.PATH),
      socatPath: findOnPath('socat', env.PATH),
      allowHosts: v.AGENTQ_SANDBOX_ALLOW_HOSTS,
    },
    anthropic: { apiKey: v.ANTHROPIC_API_KEY, baseUrl: v.ANTHROPIC_BASE_URL },
    model: v.AGENTQ_MODEL,
    store: {
      sessionMaxLineBytes: v.AGENTQ_SESSION_MAX_LINE_BYTES,
      sessionMaxBytes: v.AGENTQ_SESSION_MAX_BYTES,
      workspaceMaxBytes: v.AGENTQ_WORKSPACE_MAX_BYTES,
      workspaceMaxEntries: v.AGENTQ_WORKSPACE_MAX_ENTRIES,
      workspaceExclude: v.AGENTQ_WORKSPACE_EXCLUDE,
      eventRetentionMs: v.AGENTQ_EVENT_RETENTION_MS,
    },
    worker: {
      runsRoot: v.AGENTQ_RUNS_ROOT,
      sessionCacheMaxBytes: v.AGENTQ_SESSION_CACHE_MAX_BYTES,
      leaseMs: v.AGENTQ_LEASE_MS,
      warmIdleMs: v.AGENTQ_WARM_IDLE_MS,
      warmMax: v.AGENTQ_WARM_MAX,
      warmHandoffTimeoutMs: v.AGENTQ_WARM_HANDOFF_TIMEOUT_MS,
      warmHandoffDelayMs: v.AGENTQ_WARM_HANDOFF_DELAY_MS,
      jobLockMs: v.AGENTQ_JOB_LOCK_MS,
      checkpointIntervalMs: v.AGENTQ_CHECKPOINT_INTERVAL_MS,
      shutdownGraceMs: v.AGENTQ_SHUTDOWN_GRACE_MS,
      maxAttempts: v.AGENTQ_MAX_ATTEMPTS,
      retryBaseMs: v.AGENTQ_RETRY_BASE_MS,
      retryMaxMs: v.AGENTQ_RETRY_MAX_MS,
      reconcileIntervalMs: v.AGENTQ_RECONCILE_INTERVAL_MS,
      missingSessionPolicy: v.AGENTQ_MISSING_SESSION_POLICY,
      continuationPrompt: v.AGENTQ_CONTINUATION_PROMPT,
      maxPromptChars: v.AGENTQ_MAX_PROMPT_CHARS,
      metricsPort: v.AGENTQ_METRICS_PORT,
      metricsHost: v.AGENTQ_METRICS_HOST,
    },
    api: {
      host: v.AGENTQ_API_HOST,
      port: v.AGENTQ_API_PORT,
      keys: v.AGENTQ_API_KEYS,
      rateLimitPerMinute: v.AGENTQ_API_RATE_LIMIT,
      bodyLimitBytes: v.AGENTQ_API_BODY_LIMIT_BYTES,
      ssePingMs: v.AGENTQ_API_SSE_PING_MS,
      adminTenants: v.AGENTQ_API_ADMIN_TENANTS,
    },
  };
  return deepFreeze(config);
}
