// `npm run demo`: agentq's main job in one run, offline. A support ticket of three turns
// runs through the real queue and the real Claude Code CLI on two "machines" (two
// workers with different workspace and runs roots; the worker of one stops before the
// other starts): each turn is hydrated from Postgres, run, and committed before its job
// is acknowledged, and the next turn resumes the same CLI session on the other machine.
// Without ANTHROPIC_API_KEY the built-in mock model answers. Needs Postgres and Redis
// (DATABASE_URL, REDIS_URL). The conversation is kept for `agentq transcript`, the API and
// the viewer, unless `--cleanup` is given.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { createScheduleQueue } from '../schedules/scheduler.js';
import pg from 'pg';
import { loadConfig, type Config } from '../config.js';
import { startMockModel, type MockModel } from '../mock/mockModel.js';
import { createClient, TERMINAL_STATUSES, type AgentqClient, type TurnSummary } from '../queue/client.js';
import { deleteConversation, findConversation } from '../store/conversations.js';
import { migrate } from '../store/migrate.js';
import { createWorker, type TurnWorker } from '../worker/worker.js';

const say = (text: string) => process.stdout.write(`${text}\n`);

/** Shows a running turn's progress until it is terminal: one rewritten line on a terminal, status changes otherwise. */
async function watchTurn(client: AgentqClient, turnId: string, where: string, timeoutMs: number): Promise<TurnSummary> {
  const tty = process.stdout.isTTY === true;
  const started = Date.now();
  let last = '';
  for (;;) {
    const t = await client.getTurn(turnId);
    if (!t) throw new Error(`turn ${turnId} vanished`);
    const events = await client.db.$client.query<{ n: number }>('select count(*)::int as n from turn_events where turn_id = $1', [turnId]);
    const line = `  [machine ${where}] ${t.status} · attempt ${Math.max(1, t.attempts)} · ${events.rows[0]?.n ?? 0} events stored`;
    if (tty) process.stdout.write(`\r\x1b[K${line} · ${((Date.now() - started) / 1000).toFixed(1)} s`);
    else if (line !== last) say(line);
    last = line;
    if (TERMINAL_STATUSES.includes(t.status as (typeof TERMINAL_STATUSES)[number])) {
      if (tty) process.stdout.write('\n');
      return client.waitForTurn(turnId, 1000);
    }
    if (Date.now() - started > timeoutMs) throw new Error(`turn ${turnId} did not finish within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function servicesAnswer(config: Config): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: 3000 });
  try {
    await client.connect();
  } catch (err) {
    return `Postgres does not answer at DATABASE_URL (${(err as Error).message})`;
  } finally {
    await client.end().catch(() => undefined);
  }
  const redis = new Redis(config.redisUrl, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on('error', () => undefined);
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    return `Redis does not answer at REDIS_URL (${(err as Error).message})`;
  } finally {
    redis.disconnect();
  }
  return undefined;
}

export async function runDemo(env: Readonly<Record<string, string | undefined>>, args: readonly string[] = []): Promise<number> {
  const cleanup = args.includes('--cleanup');
  const base = loadConfig(env);
  const problem = await servicesAnswer(base);
  if (problem) {
    say(`${problem}.\nThe demo needs PostgreSQL and Redis; on Debian, for example:`);
    say('  pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start');
    say('  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no');
    return 1;
  }
  let mock: MockModel | undefined;
  const cliEnv: Record<string, string> = {};
  if (!base.anthropic.apiKey) {
    mock = await startMockModel();
    Object.assign(cliEnv, { ANTHROPIC_BASE_URL: mock.url, ANTHROPIC_API_KEY: 'sk-agentq-demo-mock', CLAUDE_CODE_MAX_RETRIES: '0' });
    say(`No ANTHROPIC_API_KEY: the built-in mock model answers at ${mock.url}`);
  }
  const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-demo-'));
  const run = randomBytes(4).toString('hex');
  // A queue of its own, so the demo never takes jobs of a real deployment.
  const machine = (name: string) =>
    loadConfig({
      ...env,
      ...cliEnv,
      AGENTQ_QUEUE: `demo-${run}`,
      AGENTQ_WORKSPACE_ROOT: path.join(root, name, 'workspaces'),
      AGENTQ_RUNS_ROOT: path.join(root, name, 'runs'),
      // Checkpoints twice a second, so the progress line shows events as they are stored.
      AGENTQ_CHECKPOINT_INTERVAL_MS: '500',
      AGENTQ_LOG_LEVEL: env.AGENTQ_LOG_LEVEL ?? 'warn',
    });
  const machines = { A: machine('machine-a'), B: machine('machine-b') };
  const client = createClient(machines.A);
  const conversationId = `demo-ticket-${run}`;
  let worker: TurnWorker | undefined;
  try {
    const { applied } = await migrate(base.databaseUrl);
    if (applied.length) say(`Migrated the database: ${applied.join(', ')}`);
    const options = { permissionMode: 'acceptEdits' as const, allowedTools: ['Bash', 'Read', 'Write'], maxTurns: 5 };
    const turns: [keyof typeof machines, string, string][] = [
      [
        'A',
        'Ticket 4812, from the customer: "My printer is on fire." Note it in notes.txt.',
        mock ? '<<tool Bash {"command":"echo ticket 4812: printer on fire > notes.txt"}>>' : 'Use Bash to write "ticket 4812: printer on fire" into notes.txt.',
      ],
      [
        'B',
        'Days later the customer writes back: "What did I report?" Check the notes.',
        mock ? '<<tool Bash {"command":"cat notes.txt"}>>' : 'Use Bash to print notes.txt, then answer the customer.',
      ],
      ['A', 'Close the ticket with a summary.', mock ? 'What did the customer report? <<recall>>' : 'What have we done in this conversation so far?'],
    ];
    say(`\nSupport ticket ${conversationId}: three turns; each machine's worker stops before the other machine's starts.`);
    let firstSession: string | null = null;
    const results: string[] = [];
    for (const [i, [where, title, prompt]] of turns.entries()) {
      say(`\nTurn ${i + 1}: a worker starts on machine ${where} (its own empty workspace and runs roots on first use)`);
      worker = createWorker(machines[where], { concurrency: 1 });
      await worker.start();
      const t0 = Date.now();
      const { turnId } = await client.enqueueTurn({ conversationId, prompt: `${title} ${prompt}`, options, source: 'cli' });
      const done = await watchTurn(client, turnId, where, 120_000);
      await worker.stop({ graceMs: 0 });
      worker = undefined;
      firstSession ??= done.sessionIdAfter;
      results.push(done.result ?? '');
      say(`Turn ${i + 1} on machine ${where} (${Date.now() - t0} ms): ${done.status}, ${done.attempts} attempt(s), session ${done.sessionIdAfter}; the worker stopped`);
      say(`  prompt: ${title} ${prompt}`);
      say(`  result: ${JSON.stringify(done.result ?? done.error).slice(0, 200)}`);
      if (done.status !== 'succeeded') return 1;
      if (mock) {
        const messages = mock.mainRequests().at(-1)?.body?.messages ?? [];
        say(`  the model received ${messages.length} messages of history`);
      }
    }
    const view = await client.getConversation(conversationId);
    const sameSession = view?.turns.every((t) => t.sessionIdAfter === firstSession) ?? false;
    say(`\nOne CLI session across both machines: ${sameSession}`);
    // With the mock, turn 2's result is the tool output: the file came back from the archive.
    const noteTravelled = results[1]?.includes('printer on fire') ?? false;
    say(`The note written on machine A was read on machine B: ${mock ? noteTravelled : '(see turn 2)'}`);
    // With the mock, turn 3's answer quotes turn 1's prompt, which only the resumed session's history holds.
    const recalled = results[2]?.includes('My printer is on fire') ?? false;
    say(`Turn 3's answer knew what the customer reported in turn 1: ${mock ? recalled : '(see turn 3)'}`);
    if (!cleanup) {
      say('\nWhere to look (the conversation is kept in the database of DATABASE_URL):');
      say(`  npx agentq show ${conversationId}          # turns, sessions, costs`);
      say(`  npx agentq transcript ${conversationId}    # what the agent did, turn by turn`);
      say("  AGENTQ_API_KEYS='demo-key-change-me-0123=default' npx agentq api");
      say('    http://127.0.0.1:8080/viewer        transcript viewer (log in with that key)');
      say('    http://127.0.0.1:8080/admin/queues  queue dashboard');
      say('    http://127.0.0.1:8080/docs          HTTP API (OpenAPI)');
      say(`  to delete it: curl -X DELETE -H 'Authorization: Bearer demo-key-change-me-0123' http://127.0.0.1:8080/v1/conversations/${conversationId}`);
    }
    return sameSession && (!mock || (noteTravelled && recalled)) ? 0 : 1;
  } finally {
    await worker?.stop({ graceMs: 0 });
    if (cleanup) {
      const conv = await findConversation(client.db, { externalId: conversationId }).catch(() => undefined);
      if (conv) await deleteConversation(client.db, conv.id);
    }
    // Both of the demo's queues: the turns' and the schedule ticks' (which the worker creates).
    await client.queue.obliterate({ force: true }).catch(() => undefined);
    const ticks = createScheduleQueue(machines.A.queueName, client.redis, machines.A.queuePrefix);
    await ticks.obliterate({ force: true }).catch(() => undefined);
    await ticks.close();
    await client.close();
    await mock?.close();
    rmSync(root, { recursive: true, force: true });
  }
}

runDemo(process.env, process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
