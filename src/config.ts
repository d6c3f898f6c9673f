// The one place that reads the environment. `configCatalog` is shaped like `Config`: each
// leaf is one environment variable (its name, schema with default, a one-line doc), and
// the `Config` type, what `loadConfig(env)` returns and what `agentq config` shows are
// derived from it; docs/configuration.md is generated from it too (`npx agentq config
// --markdown`, checked by test/docs.test.ts). `loadConfig` validates every variable at once
// and returns a frozen, typed object. Nothing else touches process.env.
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

const absolutePath = z.string().refine((p) => path.isAbsolute(p), { error: 'must be an absolute path' });

/** Environment names that must never reach the CLI, even when listed in AGENTQ_CLI_ENV_ALLOW. */
export const NEVER_PASSED_TO_CLI: readonly string[] = ['DATABASE_URL', 'REDIS_URL'];

/** One environment variable of the catalog. Where it sits in `configCatalog` is where its value goes in `Config`. */
export interface ConfigVariable<S extends z.ZodType = z.ZodType> {
  /** The variable's name. */
  readonly env: string;
  /** Validates the string (an empty one counts as unset) and gives the value, default included. */
  readonly schema: S;
  /** One line for docs/configuration.md. */
  readonly doc: string;
  /** A URL that may hold a password: errors and `agentq config` show it without. */
  readonly url?: true;
  /** A secret: errors quote only its length, and `agentq config` shows what this returns instead. */
  secret?(value: z.output<S>): unknown;
}

function variable<S extends z.ZodType>(
  env: string,
  schema: S,
  doc: string,
  redaction?: Pick<ConfigVariable<S>, 'url' | 'secret'>,
): ConfigVariable<S> {
  return { env, schema, doc, ...redaction };
}

interface CatalogTree {
  readonly [key: string]: ConfigVariable | CatalogTree;
}

function isVariable(node: ConfigVariable | CatalogTree): node is ConfigVariable {
  return node.schema instanceof z.ZodType;
}

/**
 * Every setting, shaped like `Config`. The JSDoc of each entry is what an editor shows on
 * the `Config` field; the `doc` string is its line in docs/configuration.md. Order matters:
 * it is the order of that page and of the error messages.
 */
const configCatalog = {
  /** Postgres connection string: the system of record. `DATABASE_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`. */
  databaseUrl: variable('DATABASE_URL', url(['postgres:', 'postgresql:']).default('postgres://postgres@127.0.0.1:5432/postgres'),
    'Postgres connection string: the system of record.', { url: true }),
  /** Redis connection string (BullMQ). `REDIS_URL`, default `redis://127.0.0.1:6379`. */
  redisUrl: variable('REDIS_URL', url(['redis:', 'rediss:']).default('redis://127.0.0.1:6379'),
    'Redis connection string used by BullMQ for dispatch.', { url: true }),
  /** BullMQ queue name. `AGENTQ_QUEUE`, default `agentq`. */
  queueName: variable('AGENTQ_QUEUE', z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be 1-64 characters of A-Z a-z 0-9 _ -' }).default('agentq'),
    'BullMQ queue name (and key prefix part); separate deployments use separate names.'),
  /** BullMQ key prefix (a hash tag on Redis Cluster). `AGENTQ_QUEUE_PREFIX`, default `bull`. */
  queuePrefix: variable('AGENTQ_QUEUE_PREFIX', z.string().regex(/^[A-Za-z0-9_{}-]{1,64}$/, { error: 'must be 1-64 characters of A-Z a-z 0-9 _ - { }' }).default('bull'),
    'Prefix of every Redis key and channel of the queue. On Redis Cluster use a hash tag, e.g. `{agentq}`, so all of a queue\'s keys share a slot.'),
  /** Turns one worker process runs at once. `AGENTQ_CONCURRENCY`, default 4. */
  concurrency: variable('AGENTQ_CONCURRENCY', intFrom(1, 256).default(4), 'Turns one worker process runs at once.'),
  /** Parent of the conversations' working directories. `AGENTQ_WORKSPACE_ROOT`, default `<os tmpdir>/agentq/workspaces`. */
  workspaceRoot: variable('AGENTQ_WORKSPACE_ROOT', absolutePath.default(path.join(os.tmpdir(), 'agentq', 'workspaces')),
    'Directory under which each conversation gets its stable working directory.'),
  /** `AGENTQ_CLAUDE_PATH`; unset, `loadConfig` fills in the bundled binary (see `Config.claudePath`). */
  claudePath: variable('AGENTQ_CLAUDE_PATH', z.string().min(1, { error: 'must not be empty' }).optional(),
    'Path of the `claude` executable; default: the bundled @anthropic-ai/claude-code binary.'),
  cli: {
    /** Names passed to the CLI besides the built-in allow-list. `AGENTQ_CLI_ENV_ALLOW`, default none. */
    envAllow: variable(
      'AGENTQ_CLI_ENV_ALLOW',
      z
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
      'Comma-separated extra environment variable names passed to the CLI besides the built-in allow-list.',
    ),
    /** Longest stdout line accepted from the CLI. `AGENTQ_CLI_MAX_LINE_BYTES`, default 16 MiB. */
    maxLineBytes: variable('AGENTQ_CLI_MAX_LINE_BYTES', intFrom(1024).default(16 * 1024 * 1024),
      'Longest stdout line accepted from the CLI; a longer one ends the run as a protocol error.'),
    /** Wait between SIGTERM and SIGKILL. `AGENTQ_CLI_KILL_GRACE_MS`, default 3000. */
    killGraceMs: variable('AGENTQ_CLI_KILL_GRACE_MS', intFrom(0).default(3000),
      'After SIGTERM to the CLI process group, wait this long before SIGKILL.'),
    /** A run silent this long ends; 0: never. `AGENTQ_CLI_IDLE_TIMEOUT_MS`, default 10 min. */
    idleTimeoutMs: variable('AGENTQ_CLI_IDLE_TIMEOUT_MS', intFrom(0).default(10 * 60 * 1000),
      'End a run that printed nothing for this long (0 = never); the CLI itself waits 300 s on a stalled API stream.'),
    /** Wall-clock limit of one run; 0: none. `AGENTQ_CLI_TIMEOUT_MS`, default 4 h. */
    timeoutMs: variable('AGENTQ_CLI_TIMEOUT_MS', intFrom(0).default(4 * 60 * 60 * 1000), 'Wall-clock limit for one CLI run (0 = none).'),
    /** End of the CLI's stderr kept for error reports. `AGENTQ_CLI_STDERR_TAIL_BYTES`, default 16 KiB. */
    stderrTailBytes: variable('AGENTQ_CLI_STDERR_TAIL_BYTES', intFrom(0).default(16 * 1024),
      'How much of the end of the CLI stderr is kept for error reports.'),
    /** How runs are started. `AGENTQ_CLI_SPAWN`: `auto` (default), `helper` or `direct`. */
    spawn: variable('AGENTQ_CLI_SPAWN', z.enum(['auto', 'helper', 'direct']).default('auto'),
      'How CLI runs are started: `helper` forks them from a small helper process, so the worker never waits for a fork (docs/runner.md); `direct` spawns them from the worker; `auto` is `helper` for a worker that stays and `direct` for one with a lifetime (--once, --max-turns-per-process, --idle-exit-ms), whose few turns would wait for the helper to start.'),
    /** Cgroup limits of each run; 0: none. */
    limits: {
      /** Memory cap of a run in bytes. `AGENTQ_RUN_MEMORY_MAX_MB` (in MiB, converted here), default 0: none. */
      memoryMaxBytes: variable('AGENTQ_RUN_MEMORY_MAX_MB', intFrom(0, 1024 * 1024).default(0).transform((mib) => mib * 1024 * 1024),
        'Memory cap of one CLI run with everything it starts (a cgroup; the OOM killer acts inside the run only), in MiB; 0 = none. Set, a worker refuses to start where cgroups cannot enforce it.'),
      /** Processes and threads of a run. `AGENTQ_RUN_PIDS_MAX`, default 0: none. */
      pidsMax: variable('AGENTQ_RUN_PIDS_MAX', intFrom(0, 1_000_000).default(0),
        'Processes and threads one CLI run may have at once, its tools included (a cgroup); 0 = none.'),
      /** CPU of a run in cores. `AGENTQ_RUN_CPU_MAX`, default 0: none. */
      cpuMax: variable('AGENTQ_RUN_CPU_MAX', z.coerce.number({ error: 'must be a number' }).min(0, { error: 'must be >= 0' }).max(1024, { error: 'must be <= 1024' }).default(0),
        'CPU of one CLI run with its tools, in cores (e.g. 1.5; a cgroup quota); 0 = none.'),
    },
  },
  store: {
    /** Longest session-file line accepted by persist. `AGENTQ_SESSION_MAX_LINE_BYTES`, default 16 MiB. */
    sessionMaxLineBytes: variable('AGENTQ_SESSION_MAX_LINE_BYTES', intFrom(1024, 512 * 1024 * 1024).default(16 * 1024 * 1024),
      'Longest session-file line the store accepts; a longer one fails the persist and stores nothing of it.'),
    /** Largest session file (with its subagents) read from a run. `AGENTQ_SESSION_MAX_BYTES`, default 1 GiB. */
    sessionMaxBytes: variable('AGENTQ_SESSION_MAX_BYTES', intFrom(1024 * 1024, Number.MAX_SAFE_INTEGER).default(1024 * 1024 * 1024),
      'Largest session file (and total of its subagent transcripts) the worker reads from a run; a larger one is refused unread, the turn retried and, after AGENTQ_MAX_ATTEMPTS, failed.'),
    /** Cap on the uncompressed bytes of files in a workspace archive. `AGENTQ_WORKSPACE_MAX_BYTES`, default 100 MiB. */
    workspaceMaxBytes: variable('AGENTQ_WORKSPACE_MAX_BYTES', intFrom(0, 1024 * 1024 * 1024).default(100 * 1024 * 1024),
      'Cap on the bytes of regular files archived from a workspace (before compression); over it the commit fails and nothing is stored.'),
    /** Cap on the entries walked in a workspace or session folder. `AGENTQ_WORKSPACE_MAX_ENTRIES`, default 100000. */
    workspaceMaxEntries: variable('AGENTQ_WORKSPACE_MAX_ENTRIES', intFrom(1, 10_000_000).default(100_000),
      'Cap on the entries (files, directories, links) walked in a workspace or a session folder; past it (or past 64 levels deep) the walk stops and nothing is stored.'),
    /** Names/globs left out of workspace archives. `AGENTQ_WORKSPACE_EXCLUDE`, default `node_modules`. */
    workspaceExclude: variable(
      'AGENTQ_WORKSPACE_EXCLUDE',
      z
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
      'Comma-separated names or globs left out of workspace archives: a name without / matches at any depth, one with / matches the path from the workspace root.',
    ),
    /** Age after which turn events are pruned; 0 keeps them. `AGENTQ_EVENT_RETENTION_MS`, default 30 days. */
    eventRetentionMs: variable('AGENTQ_EVENT_RETENTION_MS', intFrom(0).default(30 * 24 * 60 * 60 * 1000),
      'Turn events (stream-json lines) older than this are pruned (0 = keep forever).'),
  },
  worker: {
    /** Per-attempt config/home/tmp directories. `AGENTQ_RUNS_ROOT`, default `<os tmpdir>/agentq/runs`. */
    runsRoot: variable('AGENTQ_RUNS_ROOT', absolutePath.default(path.join(os.tmpdir(), 'agentq', 'runs')),
      'Directory for per-attempt CLAUDE_CONFIG_DIR / HOME / tmp dirs, removed after each attempt (those of a killed worker by the next housekeeping of a worker on this host), (unsandboxed) the per-conversation links to them in .config-links, and the worker\'s config-seed scratch directory.'),
    /** Committed session files kept to skip hydrating; 0 disables. `AGENTQ_SESSION_CACHE_MAX_BYTES`, default 1 GiB. */
    sessionCacheMaxBytes: variable('AGENTQ_SESSION_CACHE_MAX_BYTES', intFrom(0).default(1024 * 1024 * 1024),
      'Committed session files a worker keeps (under AGENTQ_RUNS_ROOT/.cache) to skip hydrating when the next turn lands on it; 0 disables.'),
    /** How long a worker holds a conversation without renewing. `AGENTQ_LEASE_MS`, default 60000. */
    leaseMs: variable('AGENTQ_LEASE_MS', intFrom(1000).default(60_000),
      'How long a worker holds a conversation without renewing; renewed every third of it while a turn runs.'),
    /** Keep a turn's CLI process this long for the next turn; 0: warm conversations off unless a turn asks. `AGENTQ_WARM_IDLE_MS`, default 0. */
    warmIdleMs: variable('AGENTQ_WARM_IDLE_MS', intFrom(0).default(0),
      'Warm conversations: keep a turn\'s CLI process running this long after it for the conversation\'s next turn (a turn\'s `options.warm` wins); 0: off.'),
    /** Most warm conversations per worker. `AGENTQ_WARM_MAX`, default 8. */
    warmMax: variable('AGENTQ_WARM_MAX', intFrom(1).default(8),
      'Most warm conversations (CLI processes kept between turns) per worker; keeping one more lets the least recently used go.'),
    /** Wait for the warm owner's answer before running cold. `AGENTQ_WARM_HANDOFF_TIMEOUT_MS`, default 300. */
    warmHandoffTimeoutMs: variable('AGENTQ_WARM_HANDOFF_TIMEOUT_MS', intFrom(10).default(300),
      'How long a worker waits for the answer of the worker keeping a conversation warm before it takes the turn over and runs it cold.'),
    /** When a job handed to a warm owner is looked at again. `AGENTQ_WARM_HANDOFF_DELAY_MS`, default 1000. */
    warmHandoffDelayMs: variable('AGENTQ_WARM_HANDOFF_DELAY_MS', intFrom(10).default(1000),
      'After a warm owner accepted a turn, when the job that asked is looked at again (it completes once the turn is committed).'),
    /** BullMQ job lock, renewed at half of it. `AGENTQ_JOB_LOCK_MS`, default 30000. */
    jobLockMs: variable('AGENTQ_JOB_LOCK_MS', intFrom(1000).default(30_000),
      'BullMQ job lock (renewed at half of it); a worker silent this long is considered stalled.'),
    /** How often a running turn is saved to Postgres. `AGENTQ_CHECKPOINT_INTERVAL_MS`, default 5000. */
    checkpointIntervalMs: variable('AGENTQ_CHECKPOINT_INTERVAL_MS', intFrom(100).default(5000),
      'How often new session lines and events of a running turn are saved to Postgres.'),
    /** On SIGTERM, how long running turns may finish. `AGENTQ_SHUTDOWN_GRACE_MS`, default 30000. */
    shutdownGraceMs: variable('AGENTQ_SHUTDOWN_GRACE_MS', intFrom(0).default(30_000),
      'On SIGTERM, how long running turns may finish before they are interrupted and handed back.'),
    /** Attempts per turn for retryable failures. `AGENTQ_MAX_ATTEMPTS`, default 5. */
    maxAttempts: variable('AGENTQ_MAX_ATTEMPTS', intFrom(1, 100).default(5),
      'Attempts per turn for retryable failures (API errors, crashes, timeouts) before it fails.'),
    /** First retry delay, doubled per attempt. `AGENTQ_RETRY_BASE_MS`, default 5000. */
    retryBaseMs: variable('AGENTQ_RETRY_BASE_MS', intFrom(0).default(5000),
      'First retry delay; doubled per attempt with jitter, capped by AGENTQ_RETRY_MAX_MS.'),
    /** Longest retry delay. `AGENTQ_RETRY_MAX_MS`, default 5 min. */
    retryMaxMs: variable('AGENTQ_RETRY_MAX_MS', intFrom(0).default(5 * 60 * 1000), 'Longest retry delay.'),
    /** How often due turns without a BullMQ job are re-dispatched. `AGENTQ_RECONCILE_INTERVAL_MS`, default 15000. */
    reconcileIntervalMs: variable('AGENTQ_RECONCILE_INTERVAL_MS', intFrom(100).default(15_000),
      'How often each worker re-dispatches due turns that have no BullMQ job (Redis loss, producer crash).'),
    /** A stored session that cannot be resumed: fail, or start fresh. `AGENTQ_MISSING_SESSION_POLICY`, default `fail`. */
    missingSessionPolicy: variable('AGENTQ_MISSING_SESSION_POLICY', z.enum(['fail', 'fresh']).default('fail'),
      'When a stored session cannot be resumed: fail the turn, or start a fresh session primed with a summary of earlier turns.'),
    /** What a retried attempt resumes with, before the original prompt. `AGENTQ_CONTINUATION_PROMPT`. */
    continuationPrompt: variable('AGENTQ_CONTINUATION_PROMPT',
      z.string().min(1).default('The previous run of this turn was interrupted. Continue the task from where it stopped. The task was:'),
      'Prompt a retried attempt resumes with when the interrupted attempt left checkpointed lines; the original prompt follows it.'),
    /** Longest prompt enqueueTurn accepts. `AGENTQ_MAX_PROMPT_CHARS`, default 200000. */
    maxPromptChars: variable('AGENTQ_MAX_PROMPT_CHARS', intFrom(1, 1_000_000).default(200_000),
      'Longest prompt enqueueTurn accepts.'),
    /** Port of the worker's /metrics endpoint; undefined: none. `AGENTQ_METRICS_PORT`, default unset. */
    metricsPort: variable('AGENTQ_METRICS_PORT', intFrom(0, 65535).optional(),
      'When set, `agentq worker` serves Prometheus metrics at http://AGENTQ_METRICS_HOST:<port>/metrics (`--metrics-port` wins); unset: no endpoint.'),
    /** Address of the metrics endpoint. `AGENTQ_METRICS_HOST`, default `127.0.0.1`. */
    metricsHost: variable('AGENTQ_METRICS_HOST', z.string().min(1).default('127.0.0.1'),
      'Address the worker metrics endpoint listens on (0.0.0.0 in containers).'),
  },
  api: {
    /** Address `agentq api` listens on. `AGENTQ_API_HOST`, default `127.0.0.1`. */
    host: variable('AGENTQ_API_HOST', z.string().min(1).default('127.0.0.1'), 'Address `agentq api` listens on (0.0.0.0 in containers).'),
    /** Port `agentq api` listens on; 0 picks one. `AGENTQ_API_PORT`, default 8080. */
    port: variable('AGENTQ_API_PORT', intFrom(0, 65535).default(8080), 'Port `agentq api` listens on (`--port` wins); 0 picks a free one.'),
    /** Bearer token → tenant. `AGENTQ_API_KEYS` (`token=tenant,…`), default none: every request gets 401. */
    keys: variable(
      'AGENTQ_API_KEYS',
      z
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
      'API keys of the HTTP API: comma-separated `token=tenant` pairs (Bearer token → tenant). With none, every request gets 401.',
      { secret: (keys) => keys.map((k) => ({ token: '***', tenant: k.tenant })) },
    ),
    /** Requests per minute per key; 0: no limit. `AGENTQ_API_RATE_LIMIT`, default 600. */
    rateLimitPerMinute: variable('AGENTQ_API_RATE_LIMIT', intFrom(0, 1_000_000).default(600),
      'Requests per minute one API key may make (429 beyond); 0 disables the limit.'),
    /** Largest request body accepted. `AGENTQ_API_BODY_LIMIT_BYTES`, default 1 MiB. */
    bodyLimitBytes: variable('AGENTQ_API_BODY_LIMIT_BYTES', intFrom(1024, 64 * 1024 * 1024).default(1024 * 1024),
      'Largest request body the HTTP API accepts (413 beyond).'),
    /** A `: ping` comment on open event streams this often. `AGENTQ_API_SSE_PING_MS`, default 15000. */
    ssePingMs: variable('AGENTQ_API_SSE_PING_MS', intFrom(100, 10 * 60 * 1000).default(15_000),
      'How often an open event stream (GET /v1/turns/:id/events) gets a `: ping` comment, so proxies do not close it as idle.'),
    /** Tenants whose keys may open /admin/queues. `AGENTQ_API_ADMIN_TENANTS`, default `default`. */
    adminTenants: variable(
      'AGENTQ_API_ADMIN_TENANTS',
      z
        .string()
        .default('default')
        .transform((s) => s.split(',').map((v) => v.trim()).filter(Boolean))
        .pipe(z.array(z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'must be tenant names (1-64 of A-Z a-z 0-9 _ -)' }))),
      'Tenants whose API keys may open the queue dashboard at /admin/queues (it shows every tenant\'s jobs).',
    ),
  },
  sandbox: {
    /** Isolation of each CLI run: `bwrap`, `auto` or `off`. `AGENTQ_SANDBOX`, default `auto`. */
    mode: variable('AGENTQ_SANDBOX', z.enum(['auto', 'bwrap', 'off']).default('auto'),
      'Isolation of each CLI run: `bwrap` requires bubblewrap (a worker refuses to start without it), `auto` uses it when it works here and logs an error when not, `off` runs the CLI as the worker user: unsafe for untrusted prompts.'),
    /** What a sandboxed run may reach besides the model API. `AGENTQ_SANDBOX_ALLOW_HOSTS` (`host:port,…`), default none. */
    allowHosts: variable(
      'AGENTQ_SANDBOX_ALLOW_HOSTS',
      z
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
      'Comma-separated `host:port` a sandboxed run may reach besides the model API (MCP servers): the worker forwards each as raw TCP, inside the sandbox the name resolves to a private loopback address. Empty: nothing else.',
    ),
  },
  /** pino log level. `AGENTQ_LOG_LEVEL`, default `info`. */
  logLevel: variable('AGENTQ_LOG_LEVEL', z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    'pino log level.'),
  /** The Messages API, or the built-in mock model. `AGENTQ_MODEL`, default `api`. */
  model: variable('AGENTQ_MODEL', z.enum(['api', 'mock']).default('api'),
    '`api`: CLI runs talk to the Messages API at ANTHROPIC_BASE_URL (default api.anthropic.com) with the configured credentials. `mock`: the worker starts the built-in mock model and points its CLI runs at it: offline, no key, no cost (what `agentq dev` uses).'),
  anthropic: {
    /** API key passed to the CLI. `ANTHROPIC_API_KEY`, default unset. */
    apiKey: variable('ANTHROPIC_API_KEY', z.string().min(1, { error: 'must not be empty when set' }).optional(),
      'API key passed to the CLI; when unset, `npm run demo` uses the built-in mock model.', { secret: (key) => (key ? '***' : undefined) }),
    /** Messages API base URL passed to the CLI. `ANTHROPIC_BASE_URL`, default unset (api.anthropic.com). */
    baseUrl: variable('ANTHROPIC_BASE_URL', url(['http:', 'https:']).optional(),
      'Messages API base URL passed to the CLI (a proxy, or the mock model in tests).'),
  },
} as const satisfies CatalogTree;

type Catalog = typeof configCatalog;

/** A parsed value as `Config` holds it: frozen all the way down. */
type Frozen<T> = T extends readonly (infer E)[] ? readonly Frozen<E>[] : T extends object ? { readonly [K in keyof T]: Frozen<T[K]> } : T;

/** `T` with its fields listed: what editors show of it instead of a type's name. */
type Listed<T> = T extends infer V ? { [K in keyof V]: V[K] } : never;

/** The values of a catalog (sub)tree. Homomorphic, so each field keeps its catalog entry's JSDoc. */
type ValuesOf<T> = {
  readonly [K in keyof T]: T[K] extends ConfigVariable<infer S> ? Frozen<z.output<S>> : Listed<ValuesOf<T[K]>>;
};

/**
 * The typed configuration: `configCatalog`'s values (names carry their unit, `...Ms`,
 * `...Bytes`), plus the fields `loadConfig` derives, declared here.
 */
export interface Config extends ValuesOf<Catalog> {
  /** Path of the `claude` executable: `AGENTQ_CLAUDE_PATH`, default the binary of the bundled `@anthropic-ai/claude-code` (`bundledClaudePath()`). */
  readonly claudePath: string;
  readonly cli: Listed<
    ValuesOf<Catalog['cli']> & {
      /**
       * The environment the CLI inherits: the built-in allow-list and AGENTQ_CLI_ENV_ALLOW applied
       * to the worker's environment, with the configured ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL.
       * `agentq config` shows only its names.
       */
      readonly env: Readonly<Record<string, string>>;
    }
  >;
  readonly sandbox: Listed<
    ValuesOf<Catalog['sandbox']> & {
      /** `bwrap` found on the worker's PATH; undefined when absent. */
      readonly bwrapPath: string | undefined;
      /** `socat` found on the worker's PATH; undefined when absent. */
      readonly socatPath: string | undefined;
    }
  >;
}

/** The variables of a catalog tree by name, in catalog order. */
function variablesOf(tree: CatalogTree, into: Record<string, ConfigVariable> = {}): Record<string, ConfigVariable> {
  for (const node of Object.values(tree)) {
    if (!isVariable(node)) variablesOf(node, into);
    else if (node.env in into) throw new Error(`${node.env} is in the config catalog twice`);
    else into[node.env] = node;
  }
  return into;
}

/**
 * Every variable by name, with its schema and doc, in catalog order (the order of
 * docs/configuration.md and of error messages).
 */
export const configVariables: Readonly<Record<string, ConfigVariable>> = variablesOf(configCatalog);

const envSchema = z.object(Object.fromEntries(Object.entries(configVariables).map(([name, v]) => [name, v.schema])));

/** The catalog tree with each variable replaced by its parsed value. */
function valuesOf(tree: CatalogTree, parsed: Readonly<Record<string, unknown>>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(tree).map(([key, node]) => [key, isVariable(node) ? parsed[node.env] : valuesOf(node, parsed)]),
  );
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

/** The bundled CLI binary of the pinned `@anthropic-ai/claude-code` dependency. */
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
function shownInError(name: string, value: string | undefined): string {
  const variable = configVariables[name];
  if (value === undefined) return 'null';
  if (variable?.secret) return `${value.length} characters, not shown: it holds secrets`;
  if (variable?.url) return JSON.stringify(redactUrl(value));
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
      return { name, text: `${name}: ${issue.message} (got ${shownInError(name, input[name])})` };
    });
    throw new ConfigError(
      `Invalid configuration:\n  ${problems.map((p) => p.text).join('\n  ')}`,
      [...new Set(problems.map((p) => p.name))],
    );
  }
  const values = valuesOf(configCatalog, parsed.data) as ValuesOf<Catalog>;
  // The derived fields (declared in `Config`): the CLI environment, in which the configured
  // key and URL win over whatever the allow-list copied; the bundled CLI when none is
  // configured; the sandbox's helpers as found on PATH.
  const cliEnv = cliEnvironment(env, values.cli.envAllow);
  if (values.anthropic.apiKey) cliEnv.ANTHROPIC_API_KEY = values.anthropic.apiKey;
  if (values.anthropic.baseUrl) cliEnv.ANTHROPIC_BASE_URL = values.anthropic.baseUrl;
  const config: Config = {
    ...values,
    claudePath: values.claudePath ?? bundledClaudePath(),
    cli: { ...values.cli, env: cliEnv },
    sandbox: { ...values.sandbox, bwrapPath: findOnPath('bwrap', env.PATH), socatPath: findOnPath('socat', env.PATH) },
  };
  return deepFreeze(config);
}

/**
 * The effective configuration without secrets, as `agentq config` prints it: every field of
 * `config`, each variable shown as its catalog entry says (`url`, `secret`).
 */
export function describeConfig(config: Config): Record<string, unknown> {
  const shown = (value: unknown, node: ConfigVariable | CatalogTree | undefined): unknown => {
    if (node && isVariable(node)) return node.secret ? node.secret(value) : node.url ? redactUrl(value as string) : value;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [key, shown(inner, node?.[key])]));
  };
  const described = shown(config, configCatalog) as Record<string, Record<string, unknown>>;
  // Derived, so not in the catalog: the CLI environment holds the API key, so only its names.
  return { ...described, cli: { ...described.cli, env: Object.keys(config.cli.env).sort() } };
}
