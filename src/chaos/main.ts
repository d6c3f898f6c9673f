// `npm run chaos [-- --quick] [--json]`: turns under faults. Worker processes are
// SIGKILLed at random and replaced, Redis is flushed and Postgres restarted midway, all
// on private servers the suite starts itself; at the end it checks that no accepted turn
// was lost, none was committed twice, each ran in order with its whole history, the
// stored sessions have no gap or duplicate, and no CLI process or lease is left. A third
// of the conversations gate a tool call each turn (docs/approvals.md): a decider allows or
// denies them while the faults go on, and no gated call may run twice or without an allow.
// Their CLIs ask the worker itself about each call the gate's hook lets through (the
// permission lock).
import { chmodSync, closeSync, mkdirSync, mkdtempSync, openSync, writeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import pg from 'pg';
import { loadConfig } from '../config.js';
import { createClient, type AgentqClient } from '../queue/client.js';
import { createStoreDb } from '../store/db.js';
import { createPool } from '../store/pool.js';
import { hydrateSession } from '../store/hydrate.js';
import { migrate } from '../store/migrate.js';
import { fakeCliPath } from '../testing/fakeCliPath.js';
import { AUDIT_SQL, checkGatedCalls, checkRun, duplicateUuids, foreignData, processesWithMarker, promptsOutOfOrder, readCliLog, type CheckResult } from './checks.js';
import { startPrivatePostgres, startPrivateRedis } from './services.js';
import { WorkerPool } from './workerPool.js';



/** The fault each case injects on a timer, besides the midway Redis flush and Postgres restart. */
export const CASES = {
  kill: 'SIGKILL a random worker every 2 s and start a new one',
  freeze: 'SIGSTOP a random worker past its job lock and lease every 3 s, then SIGCONT it',
  deploy: 'SIGTERM a random worker every 3 s (it drains) while a third of the CLIs ignore SIGTERM',
  disk: 'fill the disk of the workspace and runs roots (a small tmpfs) every 3 s, free it 1.5 s later',
  hostile: 'SIGKILL a random worker every 2 s while a quarter of the conversations plant links (into the runs root, the session cache, other workspaces, /etc/shadow), FIFOs and link loops in their session folders',
} as const;
type CaseName = keyof typeof CASES;

interface Plan {
  turns: number;
  conversations: number;
  workers: number;
  concurrency: number;
  /** How often the case's fault is injected. */
  faultEveryMs: number;
  deadlineMs: number;
}

const say = (text: string) => process.stderr.write(`${text}\n`);

async function main(argv: string[], parentEnv: Readonly<Record<string, string | undefined>>): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: { quick: { type: 'boolean', default: false }, json: { type: 'boolean', default: false }, case: { type: 'string', default: 'kill' } },
  });
  const names = values.case === 'all' ? (Object.keys(CASES) as CaseName[]) : [values.case as CaseName];
  for (const name of names) {
    if (!(name in CASES)) {
      say(`unknown --case ${name}; known: ${Object.keys(CASES).join(', ')}, all`);
      return 2;
    }
  }
  let failed = 0;
  const summaries: Record<string, unknown>[] = [];
  for (const name of names) {
    const summary = await runCase(name, values.quick, parentEnv);
    summaries.push(summary);
    if ((summary.violations as unknown[]).length > 0 || summary.turns !== summary.planned) failed++;
  }
  const reportDir = path.resolve('.chaos');
  mkdirSync(reportDir, { recursive: true });
  writeFileSync(path.join(reportDir, 'last-report.json'), `${JSON.stringify(summaries, null, 2)}\n`);
  if (values.json) {
    const merged = summaries.length === 1 ? summaries[0] : { cases: summaries, turns: summaries.reduce((n, s) => n + Number(s.turns), 0) };
    for (const k of ['kills', 'lost', 'doubleCommitted', 'outOfOrder', 'orphans', 'leasesHeld']) {
      if (summaries.length > 1) (merged as Record<string, unknown>)[k] = summaries.reduce((n, s) => n + Number(s[k]), 0);
    }
    process.stdout.write(`${JSON.stringify(merged)}\n`);
  }
  say(failed === 0 ? 'chaos: all properties hold' : `chaos: FAILED (${failed} case(s))`);
  return failed === 0 ? 0 : 1;
}

async function runCase(name: CaseName, quick: boolean, parentEnv: Readonly<Record<string, string | undefined>>): Promise<Record<string, unknown>> {
  const plan: Plan = quick
    ? { turns: 80, conversations: 12, workers: 3, concurrency: 4, faultEveryMs: KILLS_EVERY_2S.includes(name) ? 2000 : 3000, deadlineMs: 4 * 60_000 }
    : { turns: 500, conversations: 50, workers: 3, concurrency: 4, faultEveryMs: KILLS_EVERY_2S.includes(name) ? 2000 : 3000, deadlineMs: 12 * 60_000 };
  const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-chaos-'));
  // The private Postgres runs as the postgres user: it must be able to reach its data dir.
  chmodSync(root, 0o755);
  const logFile = path.join(root, 'fake-cli.log');
  const gatedLog = path.join(root, 'gated-calls.log');
  let stopDecider: (() => Promise<void>) | undefined;
  say(`chaos case ${name} (${CASES[name]}): ${plan.turns} turns over ${plan.conversations} conversations, ${plan.workers} workers x ${plan.concurrency}; scratch ${root}`);

  const postgres = await startPrivatePostgres(path.join(root, 'pg'));
  const redis = await startPrivateRedis();
  let pool: WorkerPool | undefined;
  let keep = true;
  let fills = 0;
  let unmount: (() => Promise<void>) | undefined;
  let killer: NodeJS.Timeout | undefined;
  const startedAt = Date.now();
  try {
    await migrate(postgres.url);
    const admin = new pg.Client({ connectionString: postgres.url });
    await admin.connect();
    await admin.query(AUDIT_SQL);
    await admin.end();

    // The disk case puts the workspace and runs roots on a small tmpfs it can fill.
    const diskRoot = name === 'disk' ? await mountSmallDisk(path.join(root, 'disk')) : root;
    if (name === 'disk') unmount = () => execa('umount', ['-l', diskRoot]).then(() => undefined, () => undefined);
    const env: Record<string, string> = {
      PATH: parentEnv.PATH ?? '/usr/bin:/bin',
      DATABASE_URL: postgres.url,
      REDIS_URL: redis.url,
      AGENTQ_QUEUE: 'chaos',
      AGENTQ_CLAUDE_PATH: fakeCliPath(),
      AGENTQ_WORKSPACE_ROOT: path.join(diskRoot, 'workspaces'),
      AGENTQ_RUNS_ROOT: path.join(diskRoot, 'runs'),
      AGENTQ_CLI_ENV_ALLOW: 'FAKE_CLAUDE_LOG',
      FAKE_CLAUDE_LOG: logFile,
      AGENTQ_LEASE_MS: '3000',
      AGENTQ_JOB_LOCK_MS: '2000',
      AGENTQ_CHECKPOINT_INTERVAL_MS: '100',
      AGENTQ_RETRY_BASE_MS: '100',
      AGENTQ_RETRY_MAX_MS: '1000',
      AGENTQ_MAX_ATTEMPTS: '20',
      AGENTQ_RECONCILE_INTERVAL_MS: '1000',
      AGENTQ_SHUTDOWN_GRACE_MS: '1000',
      AGENTQ_CLI_KILL_GRACE_MS: '500',
      AGENTQ_LOG_LEVEL: 'error',
      // The suite checks the protocol through the fake CLI's log, a host file a sandboxed
      // run cannot write; isolation has its own tests.
      AGENTQ_SANDBOX: 'off',
    };
    const config = loadConfig(env);
    const workers = new WorkerPool(env, plan.concurrency, path.join(root, 'worker-logs'));
    pool = workers;
    for (let i = 0; i < plan.workers; i++) workers.start();

    const client = createClient(config);
    const perConv = Math.ceil(plan.turns / plan.conversations);
    for (let turn = 1; turn <= perConv; turn++) {
      for (let c = 1; c <= plan.conversations; c++) {
        if ((turn - 1) * plan.conversations + c > plan.turns) break;
        const delayMs = 50 + Math.floor(Math.random() * 450);
        const gate = gatedConversation(c) ? { gatedCall: gatedLog } : {};
        // In the deploy case a third of the CLIs ignore SIGTERM: the drain must SIGKILL them.
        const stubborn = name === 'deploy' && Math.random() < 1 / 3;
        const script = stubborn
          ? { delayMs: delayMs + 1000, extraLines: 2, ignoreSigterm: true }
          : name === 'hostile'
            ? { delayMs, extraLines: 2, ...hostileScript(c, env), ...gate }
            : { delayMs, extraLines: 2, ...gate };
        await client.enqueueTurn({
          conversationId: `chaos-${c}`,
          prompt: `#fake ${JSON.stringify(script)}\nchaos c${c} turn ${turn}`,
          idempotencyKey: `t${turn}`,
          ...(gatedConversation(c) ? { options: { approvals: { tools: ['Bash'] } } } : {}),
        });
      }
    }
    say(`enqueued ${plan.turns} turns in ${Date.now() - startedAt} ms`);

    const inject: Record<CaseName, () => void> = {
      kill: () => workers.killOneAndReplace(),
      hostile: () => workers.killOneAndReplace(),
      freeze: () => workers.freezeOne(5000),
      deploy: () => workers.drainOneAndReplace(),
      disk: () => {
        fillDisk(path.join(diskRoot, 'filler'));
        fills++;
        setTimeout(() => rmSync(path.join(diskRoot, 'filler'), { force: true }), 1500).unref();
      },
    };
    killer = setInterval(inject[name], plan.faultEveryMs);
    const decider = startDecider(client);
    stopDecider = decider.stop;
    let flushed = false;
    let restarted = false;
    const deadline = Date.now() + plan.deadlineMs;
    for (;;) {
      const r = await client.db.$client
        .query<{ n: string }>("select count(*) as n from turns where status in ('succeeded','failed','cancelled')")
        .catch(() => undefined);
      const done = Number(r?.rows[0]?.n ?? 0);
      if (done >= plan.turns || Date.now() > deadline) break;
      if (!flushed && done >= plan.turns * 0.3) {
        flushed = true;
        await redis.flushAll();
        say(`FLUSHALL at ${done}/${plan.turns}`);
      }
      if (!restarted && done >= plan.turns * 0.6) {
        restarted = true;
        say(`restarting Postgres at ${done}/${plan.turns}`);
        await postgres.restart();
      }
      await new Promise((res) => setTimeout(res, 250));
    }
    clearInterval(killer);
    killer = undefined;
    await decider.stop();
    await workers.stopAll(5000);
    // A client whose connections died with the Postgres restart must not hold the checks up.
    await boundedWait(client.close(), 10_000, 'closing the client');
    // Give orphaned CLIs of killed workers their last moments, then count them.
    await new Promise((res) => setTimeout(res, 1500));
    const orphans = processesWithMarker(logFile);

    const check = new pg.Client({ connectionString: postgres.url });
    await check.connect();
    const cliLog = readCliLog(logFile);
    const result: CheckResult = await checkRun(check, cliLog);
    const stored = await checkStoredSessions(postgres.url, root);
    result.duplicateLines = stored.duplicateLines;
    if (stored.duplicateLines) result.violations.push({ property: 'duplicateLines', turnIds: [], detail: `${stored.duplicateLines} session entries stored twice` });
    if (stored.promptsOutOfOrder.length) {
      result.violations.push({ property: 'storedOutOfOrder', turnIds: [], detail: `a stored session holds a turn's prompt after a later turn's: ${stored.promptsOutOfOrder.join(', ')}` });
    }
    if (name === 'hostile') {
      const shadow = readFileSync('/etc/shadow', 'utf8').split('\n').slice(0, 3);
      result.violations.push(...(await foreignData(check, hostileConversations(plan.conversations), shadow)));
    }
    const gated = await checkGatedCalls(check, gatedLog, cliLog);
    result.violations.push(...gated.violations);
    if (workers.unexpectedExits.length) {
      result.violations.push({ property: 'workerCrashes', turnIds: [], detail: `workers ended on their own: ${workers.unexpectedExits.join(', ')}` });
    }
    if (orphans.length) result.violations.push({ property: 'orphans', turnIds: [], detail: `CLI processes left: ${orphans.join(', ')}` });
    await check.end();

    const summary = {
      case: name,
      planned: plan.turns,
      turns: result.turns,
      kills: workers.kills,
      freezes: workers.freezes,
      drains: workers.drains,
      diskFills: fills,
      lost: result.lost,
      doubleCommitted: result.doubleCommitted,
      outOfOrder: result.outOfOrder,
      historyGaps: result.historyGaps,
      sessionGaps: result.sessionGaps,
      duplicateLines: result.duplicateLines,
      orphans: orphans.length,
      leasesHeld: result.leasesHeld,
      succeeded: result.succeeded,
      approvals: JSON.stringify(gated.approvals),
      gatedCallsRan: gated.ran,
      // Asks the CLIs put to the worker (the permission lock), and how many it allowed.
      workerAnswers: `${cliLog.filter((r) => r.event === 'permission').length} (${cliLog.filter((r) => r.event === 'permission' && r.allowed === true).length} allowed)`,
      failed: result.failed,
      retries: result.retries,
      workersStarted: workers.started,
      longestTurnMs: result.longestTurnMs,
      durationMs: Date.now() - startedAt,
      redisFlushed: flushed,
      postgresRestarted: restarted,
      violations: result.violations,
    };
    for (const [k, v] of Object.entries(summary)) if (k !== 'violations') say(`${k.padEnd(18)} ${String(v)}`);
    for (const v of result.violations) say(`VIOLATION ${v.property}: ${v.detail}${v.turnIds.length ? ` (turns ${v.turnIds.slice(0, 20).join(', ')})` : ''}`);
    keep = result.violations.length > 0;
    return summary;
  } finally {
    if (killer) clearInterval(killer);
    await stopDecider?.();
    await pool?.stopAll(2000);
    await unmount?.();
    await redis.stop();
    await postgres.stop();
    // Keep the scratch dir (worker logs, fake CLI log) of a failed case for inspection.
    if (keep) say(`kept ${root} for inspection`);
    else rmSync(root, { recursive: true, force: true });
  }
}

/** Conversations 3, 6, 9, ...: each of their turns asks for a gated call. */
function gatedConversation(c: number): boolean {
  return c % 3 === 0;
}

/**
 * A person, decidedly impatient: every 100 ms each pending approval is allowed (three in
 * four) or denied. Failures while Postgres restarts are skipped; the next round retries.
 */
function startDecider(client: AgentqClient): { stop: () => Promise<void> } {
  let running: Promise<void> = Promise.resolve();
  const round = async () => {
    const pending = await client.db.$client.query<{ id: string; tenant_id: string }>("select id, tenant_id from approvals where status = 'pending'");
    for (const a of pending.rows) {
      await client.decideApproval({ id: a.id, tenantId: a.tenant_id, decision: Math.random() < 0.75 ? 'allow' : 'deny', decidedBy: 'chaos' });
    }
  };
  const timer = setInterval(() => {
    running = running.then(round).catch(() => undefined);
  }, 100);
  return {
    stop: async () => {
      clearInterval(timer);
      await boundedWait(running, 10_000, 'the last round of decisions');
    },
  };
}

/** Waits for `work` at most `ms`; says so when it gave up (once seen in CI: a pool stuck after the Postgres restart). */
async function boundedWait(work: Promise<unknown>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const gaveUp = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), ms);
  });
  const r = await Promise.race([work.then(() => 'done' as const, () => 'done' as const), gaveUp]);
  clearTimeout(timer);
  if (r === 'timeout') say(`gave up waiting for ${what} after ${ms} ms`);
}

/** Cases that SIGKILL a worker every 2 s (the others inject their fault every 3 s). */
const KILLS_EVERY_2S: readonly CaseName[] = ['kill', 'hostile'];

/** In the hostile case, conversations 1, 5, 9, ...: a quarter of them. */
function hostileConversations(conversations: number): number[] {
  const out: number[] = [];
  for (let c = 1; c <= conversations; c += 4) out.push(c);
  return out;
}

/**
 * The fake CLI's script for conversation `c` in the hostile case. A hostile turn plants, in
 * its session folder, links to every attempt's directory and to the session cache of the
 * worker (where the other conversations' transcripts and tool outputs are), to the
 * workspaces and to /etc/shadow, a FIFO and a fan-out of link loops. The others leave a
 * tool output and a subagent transcript there, each holding their prompt's tag.
 */
function hostileScript(c: number, env: Record<string, string>): Record<string, unknown> {
  if (c % 4 !== 1) return { toolResult: 'out', subagent: 'helper' };
  const runs = env.AGENTQ_RUNS_ROOT!;
  return {
    plant: {
      links: {
        'tool-results': runs,
        subagents: path.join(runs, '.cache', 'sessions'),
        'stolen/shadow.txt': '/etc/shadow',
        'stolen/workspaces': env.AGENTQ_WORKSPACE_ROOT!,
      },
      fifos: ['stolen/pipe'],
      loops: 8,
    },
  };
}

/** A 64 MiB tmpfs, so the suite can fill it without touching the machine's disks (needs root). */
async function mountSmallDisk(dir: string): Promise<string> {
  mkdirSync(dir, { recursive: true });
  try {
    await execa('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'tmpfs', dir]);
  } catch (err) {
    throw new Error(`the disk case needs to mount a tmpfs (run as root): ${(err as Error).message}`);
  }
  return dir;
}

/** Writes zeros until the file system says ENOSPC. */
function fillDisk(file: string): void {
  const block = Buffer.alloc(1024 * 1024);
  const fd = openSync(file, 'w');
  try {
    for (;;) writeSync(fd, block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

/** Each conversation's committed session, hydrated: entries stored twice, and the conversations whose prompts are out of order. */
async function checkStoredSessions(url: string, root: string): Promise<{ duplicateLines: number; promptsOutOfOrder: string[] }> {
  const p = createPool(url, 2);
  const db = createStoreDb(p);
  let dups = 0;
  const outOfOrder: string[] = [];
  try {
    const convs = await p.query<{ id: string; session_id: string | null }>('select id, session_id from conversations');
    for (const c of convs.rows) {
      if (!c.session_id) continue;
      const cwd = path.join(root, 'verify', c.id);
      mkdirSync(cwd, { recursive: true });
      const h = await hydrateSession(db, { conversationId: c.id, sessionId: c.session_id, cwd, configDir: path.join(root, 'verify-config') });
      const text = readFileSync(h.path, 'utf8');
      dups += duplicateUuids(text);
      if (promptsOutOfOrder(text) > 0) outOfOrder.push(c.id);
    }
  } finally {
    await p.end();
  }
  return { duplicateLines: dups, promptsOutOfOrder: outOfOrder };
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
    // A connection left open (see boundedWait) must not keep the suite from ending.
    setTimeout(() => process.exit(), 5000).unref();
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
