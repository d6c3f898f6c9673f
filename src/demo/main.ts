// `npm run demo`: agentq's main job in one run, offline. A conversation of three turns
// runs through the real queue and the real Claude Code CLI on two "machines" (two
// workers with different workspace and runs roots): each turn is hydrated from Postgres,
// run, and committed before its job is acknowledged, and the next turn resumes the same
// CLI session on the other machine. Without ANTHROPIC_API_KEY the built-in mock model
// answers. Needs Postgres and Redis (DATABASE_URL, REDIS_URL).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { loadConfig, type Config } from '../config.js';
import { startMockModel, type MockModel } from '../mock/mockModel.js';
import { createClient } from '../queue/client.js';
import { deleteConversation, findConversation } from '../store/conversations.js';
import { migrate } from '../store/migrate.js';
import { createWorker, type TurnWorker } from '../worker/worker.js';

const say = (text: string) => process.stdout.write(`${text}\n`);

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

export async function runDemo(env: Readonly<Record<string, string | undefined>>): Promise<number> {
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
        'Note the ticket.',
        mock ? '<<tool Bash {"command":"echo ticket 4812: printer on fire > notes.txt"}>>' : 'Use Bash to write "ticket 4812: printer on fire" into notes.txt.',
      ],
      ['B', 'Read the note back.', mock ? '<<tool Bash {"command":"cat notes.txt"}>>' : 'Use Bash to print notes.txt, then say what it says.'],
      ['A', 'Summarise.', 'What have we done in this conversation so far?'],
    ];
    let firstSession: string | null = null;
    const results: string[] = [];
    for (const [i, [where, title, prompt]] of turns.entries()) {
      worker = createWorker(machines[where], { concurrency: 1 });
      await worker.start();
      const t0 = Date.now();
      const { turnId } = await client.enqueueTurn({ conversationId, prompt: `${title} ${prompt}`, options, source: 'cli' });
      const done = await client.waitForTurn(turnId, 120_000);
      await worker.stop({ graceMs: 0 });
      worker = undefined;
      firstSession ??= done.sessionIdAfter;
      results.push(done.result ?? '');
      say(`\nTurn ${i + 1} on machine ${where} (${Date.now() - t0} ms): ${done.status}, ${done.attempts} attempt(s), session ${done.sessionIdAfter}`);
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
    return sameSession && (!mock || noteTravelled) ? 0 : 1;
  } finally {
    await worker?.stop({ graceMs: 0 });
    const conv = await findConversation(client.db, { externalId: conversationId }).catch(() => undefined);
    if (conv) await deleteConversation(client.db, conv.id);
    await client.queue.obliterate({ force: true }).catch(() => undefined);
    await client.close();
    await mock?.close();
    rmSync(root, { recursive: true, force: true });
  }
}

runDemo(process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
