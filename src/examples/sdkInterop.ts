// The Agent SDK round trip, runnable: `npm run build && node dist/examples/sdkInterop.js`.
//
// 1. A web app talks to Claude through @anthropic-ai/claude-agent-sdk with agentq's
//    store as its `sessionStore`: the transcript lands in agentq's Postgres tables.
// 2. A background job continues that conversation: the SDK session is attached to an
//    agentq conversation and a turn is enqueued; an agentq worker runs it (it resumes the
//    SDK's session, hydrated from Postgres).
// 3. Later the web app resumes the conversation's session through the same store and
//    sees the background turn.
//
// Needs Postgres and Redis (DATABASE_URL, REDIS_URL). Without ANTHROPIC_API_KEY the
// built-in mock model answers; its `<<recall>>` reply quotes every earlier prompt it was
// sent, which shows each step saw the steps before it. `--cleanup` deletes the
// conversation at the end. The SDK is a devDependency of agentq: run this from a checkout.
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { query, type Options } from '@anthropic-ai/claude-agent-sdk';
import { loadConfig } from '../config.js';
import { startMockModel, type MockModel } from '../mock/mockModel.js';
import { createClient } from '../queue/client.js';
import { createSessionStore } from '../sdk/sessionStore.js';
import { deleteConversation, findConversation } from '../store/conversations.js';
import { migrate } from '../store/migrate.js';
import { createWorker, type TurnWorker } from '../worker/worker.js';

const say = (text: string) => process.stdout.write(`${text}\n`);

/** Runs one SDK query to its end; returns the session id and the result text. */
async function ask(prompt: string, options: Options): Promise<{ sessionId: string; result: string }> {
  let sessionId = '';
  let result = '';
  for await (const message of query({ prompt, options })) {
    if (message.type === 'system' && message.subtype === 'init') sessionId = message.session_id;
    // The SDK reports a batch the store refused (after its retries) instead of throwing.
    if (message.type === 'system' && message.subtype === 'mirror_error') throw new Error(`the session store refused a batch: ${message.error}`);
    if (message.type === 'result') {
      if (message.subtype !== 'success') throw new Error(`the SDK query ended with ${message.subtype}`);
      result = message.result;
    }
  }
  return { sessionId, result };
}

export async function runSdkInterop(env: Readonly<Record<string, string | undefined>>, args: readonly string[]): Promise<number> {
  let mock: MockModel | undefined;
  const modelEnv: Record<string, string> = {};
  if (!env.ANTHROPIC_API_KEY) {
    mock = await startMockModel();
    Object.assign(modelEnv, { ANTHROPIC_BASE_URL: mock.url, ANTHROPIC_API_KEY: 'sk-agentq-example-mock', CLAUDE_CODE_MAX_RETRIES: '0' });
    say(`No ANTHROPIC_API_KEY: the built-in mock model answers at ${mock.url}`);
  }
  const run = randomBytes(4).toString('hex');
  const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-sdk-example-'));
  // A queue of its own, so the example never takes jobs of a real deployment.
  const config = loadConfig({
    ...env,
    ...modelEnv,
    AGENTQ_QUEUE: `sdk-example-${run}`,
    AGENTQ_WORKSPACE_ROOT: path.join(root, 'workspaces'),
    AGENTQ_RUNS_ROOT: path.join(root, 'runs'),
    AGENTQ_LOG_LEVEL: env.AGENTQ_LOG_LEVEL ?? 'warn',
  });
  const client = createClient(config);
  const conversationId = `sdk-ticket-${run}`;
  let worker: TurnWorker | undefined;
  try {
    await migrate(config.databaseUrl);
    // The adapter: agentq's own tables, no second copy. One per tenant.
    const sessionStore = createSessionStore({ db: client.db });

    // The web app's side. Its working directory names the SDK's projectKey; its local
    // copy of the transcript lives in a throwaway CLAUDE_CONFIG_DIR (the store is the record).
    const appDir = path.join(root, 'web-app');
    mkdirSync(appDir);
    const sdkOptions = (extra: Partial<Options> = {}): Options => ({
      cwd: appDir,
      sessionStore,
      // The same pinned CLI the worker runs, so both read each other's transcripts.
      pathToClaudeCodeExecutable: config.claudePath,
      env: { PATH: env.PATH ?? '/usr/bin:/bin', HOME: root, CLAUDE_CONFIG_DIR: mkdtempSync(path.join(root, 'sdk-config-')), ...modelEnv },
      maxTurns: 3,
      ...extra,
    });

    say('\n1. The web app asks through the Agent SDK, with agentq as its sessionStore');
    const first = await ask('Customer on ticket 9: "I was charged twice for order 5531."', sdkOptions());
    say(`   session ${first.sessionId}: ${first.result}`);

    say(`\n2. A background job continues it: attach the session to ${conversationId}, enqueue a turn`);
    const attached = await sessionStore.attach(conversationId, first.sessionId);
    say(`   attached ${attached.lines} transcript lines`);
    worker = createWorker(config, { concurrency: 1 });
    await worker.start();
    const { turnId } = await client.enqueueTurn({ conversationId, prompt: 'Background job: check the order history. <<recall>>' });
    const done = await client.waitForTurn(turnId, 120_000);
    await worker.stop({ graceMs: 0 });
    worker = undefined;
    say(`   turn ${done.status} in session ${done.sessionIdAfter}: ${done.result ?? JSON.stringify(done.error)}`);
    if (done.status !== 'succeeded') return 1;

    say('\n3. The web app resumes the conversation through the store');
    const { sessionId: resume } = await sessionStore.resumeTarget(conversationId, { cwd: appDir });
    const last = await ask('The customer asks what happened so far. <<recall>>', sdkOptions({ resume }));
    say(`   session ${last.sessionId}: ${last.result}`);

    if (mock) {
      // The mock quotes every earlier prompt it was sent: proof of what each step saw.
      const jobSawSdk = done.result?.includes('charged twice') ?? false;
      const appSawJob = last.result.includes('Background job') && last.result.includes('charged twice');
      say(`\nThe agentq turn saw the SDK turn: ${jobSawSdk}`);
      say(`The resumed SDK query saw the agentq turn: ${appSawJob}`);
      if (!jobSawSdk || !appSawJob) return 1;
    }
    say(`\nInspect it: npx agentq show ${conversationId}; npx agentq transcript ${conversationId}`);
    return 0;
  } finally {
    await worker?.stop({ graceMs: 0 });
    if (args.includes('--cleanup')) {
      const conv = await findConversation(client.db, { externalId: conversationId }).catch(() => undefined);
      if (conv) await deleteConversation(client.db, conv.id);
    }
    await client.queue.obliterate({ force: true }).catch(() => undefined);
    await client.close();
    await mock?.close();
    rmSync(root, { recursive: true, force: true });
  }
}

runSdkInterop(process.env, process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  },
);
