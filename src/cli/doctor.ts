// `agentq doctor`: checks that each thing a worker needs answers, and says what to do
// when one does not. Exit 0 when every check passes, 1 when one fails. Spends no tokens:
// the Messages API check sends no key and no prompt.
import { randomUUID } from 'node:crypto';
import { access, constants, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Config } from '../config.js';
import { probeSandbox } from '../sandbox/probe.js';
import { checkCredentials } from '../runner/apiCredentials.js';
import { describeCliVersion, probeCliVersion } from '../runner/cliVersion.js';
import { hasLimits, probeCgroups } from '../runner/cgroups.js';
import { schemaStatus } from '../store/migrate.js';
import type { CliIo } from './main.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const TIMEOUT_MS = 10_000;
/** The Messages API check: any HTTP answer within this counts as reachable. */
const API_TIMEOUT_MS = 5000;

async function checkCli(config: Config): Promise<Check> {
  const r = await probeCliVersion(config.claudePath, config.cli.env, TIMEOUT_MS);
  if (r.ok) return { name: 'claude CLI', ok: true, detail: `${r.output} at ${config.claudePath}: ${describeCliVersion(r.version).note}` };
  return {
    name: 'claude CLI',
    ok: false,
    detail: `${config.claudePath} did not run (${r.message}); set AGENTQ_CLAUDE_PATH or reinstall @anthropic-ai/claude-code`,
  };
}

async function checkPostgres(config: Config): Promise<Check> {
  const client = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: TIMEOUT_MS });
  try {
    await client.connect();
    const r = await client.query<{ v: string }>('select version() as v');
    return { name: 'postgres', ok: true, detail: r.rows[0]?.v.split(' on ')[0] ?? 'connected' };
  } catch (err) {
    return { name: 'postgres', ok: false, detail: `cannot reach DATABASE_URL: ${(err as Error).message}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function checkMigrations(config: Config): Promise<Check> {
  const name = 'migrations';
  try {
    const s = await schemaStatus(config.databaseUrl);
    if (s.current) return { name, ok: true, detail: `current (${s.appliedCount} applied)` };
    if (s.pending.length > 0) return { name, ok: false, detail: `${s.pending.length} pending (${s.pending.join(', ')}); run \`agentq migrate\`` };
    return { name, ok: false, detail: 'the database was migrated by a newer agentq; upgrade this install' };
  } catch (err) {
    return { name, ok: false, detail: `cannot read the migration history: ${(err as Error).message}` };
  }
}

async function checkRedis(config: Config): Promise<Check> {
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    connectTimeout: TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // connect() only says "Connection is closed."; the socket error says why.
  let socketError: Error | undefined;
  redis.on('error', (err: Error) => {
    socketError ??= err;
  });
  try {
    await redis.connect();
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    return { name: 'redis', ok: true, detail: `redis ${version}` };
  } catch (err) {
    return { name: 'redis', ok: false, detail: `cannot reach REDIS_URL: ${(socketError ?? (err as Error)).message}` };
  } finally {
    redis.disconnect();
  }
}

/** The directory exists and this process can create and remove a file in it. */
async function checkWritableDir(name: string, dir: string, variable: string): Promise<Check> {
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) return { name, ok: false, detail: `${dir} is not a directory; set ${variable}` };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOENT' && code !== 'ENOTDIR') return { name, ok: false, detail: `${dir} cannot be read (${code ?? (err as Error).message}); set ${variable}` };
    // A fresh install: the worker creates the directory on first use, if its nearest existing ancestor lets it.
    const parent = await writableAncestor(path.dirname(dir));
    if (parent.ok) return { name, ok: true, detail: `${dir} does not exist yet; the worker creates it (${parent.dir} is writable)` };
    return { name, ok: false, detail: `${dir} does not exist and cannot be created (${parent.why}); create it or set ${variable}` };
  }
  const probe = path.join(dir, `.agentq-doctor-${randomUUID()}`);
  try {
    await writeFile(probe, 'probe', { flag: 'wx' });
    await unlink(probe);
    return { name, ok: true, detail: `${dir} is writable` };
  } catch (err) {
    await unlink(probe).catch(() => undefined);
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    return { name, ok: false, detail: `cannot create a file in ${dir} (${code}); fix its permissions or set ${variable}` };
  }
}

/** The nearest existing ancestor of `dir`, and whether a file can be created in it. */
async function writableAncestor(dir: string): Promise<{ ok: true; dir: string } | { ok: false; why: string }> {
  for (let d = dir; ; d = path.dirname(d)) {
    try {
      const s = await stat(d);
      if (!s.isDirectory()) return { ok: false, why: `${d} is not a directory` };
      await access(d, constants.W_OK);
      return { ok: true, dir: d };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' && path.dirname(d) !== d) continue;
      return { ok: false, why: `${d}: ${code ?? (err as Error).message}` };
    }
  }
}

/** Whether CLI runs can authenticate: credentials present, and the Messages API takes them (no tokens spent). */
async function checkAnthropic(config: Config): Promise<Check> {
  return { name: 'anthropic API', ...(await checkCredentials(config, API_TIMEOUT_MS)) };
}

/** Whether CLI runs can be isolated here (AGENTQ_SANDBOX), by starting a test sandbox. */
async function checkSandbox(config: Config): Promise<Check> {
  const name = 'sandbox';
  const { mode, bwrapPath, socatPath } = config.sandbox;
  if (mode === 'off') return { name, ok: true, detail: 'AGENTQ_SANDBOX=off: CLI runs are NOT isolated (unsafe for untrusted prompts)' };
  const p = await probeSandbox(bwrapPath, socatPath);
  if (p.ok) return { name, ok: true, detail: `AGENTQ_SANDBOX=${mode}: ${p.version} isolates runs (test sandbox started in ${p.ms} ms)` };
  const detail = `AGENTQ_SANDBOX=${mode}: ${p.reason}${p.version ? ` (${p.version})` : ''}`;
  // auto still runs turns, unisolated: a failed check, since that is what an operator must fix.
  return { name, ok: false, detail: `${detail}; ${mode === 'bwrap' ? 'workers will refuse to start' : 'runs are NOT isolated'} — see docs/sandbox.md` };
}

/** Whether the AGENTQ_RUN_* limits can be enforced here, by creating and removing a probe group. */
async function checkRunLimits(config: Config): Promise<Check> {
  const name = 'run limits';
  const limits = config.cli.limits;
  if (!hasLimits(limits)) return { name, ok: true, detail: 'no AGENTQ_RUN_* limits: a run may use all of the worker\'s memory, processes and CPU' };
  try {
    const host = probeCgroups(limits);
    const set = [
      limits.memoryMaxBytes > 0 ? `memory ${Math.round(limits.memoryMaxBytes / (1024 * 1024))} MiB` : '',
      limits.pidsMax > 0 ? `${limits.pidsMax} processes` : '',
      limits.cpuMax > 0 ? `${limits.cpuMax} cores` : '',
    ].filter(Boolean);
    return { name, ok: true, detail: `cgroup v${host.version} enforces ${set.join(', ')} per run` };
  } catch (err) {
    return { name, ok: false, detail: `${(err as Error).message}; workers will refuse to start` };
  }
}

/** Every check, in a fixed order; they run concurrently. */
export async function runDoctor(config: Config): Promise<Check[]> {
  return Promise.all([
    checkPostgres(config),
    checkMigrations(config),
    checkRedis(config),
    checkCli(config),
    checkWritableDir('workspace root', config.workspaceRoot, 'AGENTQ_WORKSPACE_ROOT'),
    checkWritableDir('runs root', config.worker.runsRoot, 'AGENTQ_RUNS_ROOT'),
    checkAnthropic(config),
    checkSandbox(config),
    checkRunLimits(config),
  ]);
}

/** Prints the checks (text or `--json`); resolves to the exit code: 0 all ok, 1 one failed. */
export async function doctorCommand(config: Config, io: CliIo, flags: { json?: boolean }): Promise<number> {
  const checks = await runDoctor(config);
  const ok = checks.every((c) => c.ok);
  if (flags.json) io.out(JSON.stringify({ ok, checks }));
  else {
    for (const c of checks) io.out(`${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}`);
    if (!ok) io.err(`doctor: ${checks.filter((c) => !c.ok).map((c) => c.name).join(', ')} failed`);
  }
  return ok ? 0 : 1;
}
