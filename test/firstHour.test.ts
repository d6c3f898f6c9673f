// What a new user meets in the first hour, each as they would meet it: no credentials, a
// key the API refuses, a whitespace prompt, a prompt too long for an argument, a broken
// AGENTQ_API_KEYS, and the offline path (`agentq dev`, AGENTQ_MODEL=mock). Real CLI, real
// Postgres and Redis, the project's mock model.
import { randomUUID } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEV_NEXT_COMMANDS, devCommand } from '../src/cli/devCommand.js';
import { main, type CliIo } from '../src/cli/main.js';
import { loadConfig } from '../src/config.js';
import { ConfigError } from '../src/errors.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { classifyRun, emptyFacts, type RunFacts } from '../src/runner/outcome.js';
import { runClaude } from '../src/runner/runClaude.js';
import { decide } from '../src/worker/retryPolicy.js';
import { createWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { captureLogger, fakeCliSettings } from './helpers/infra.js';
import { isAlive, waitUntil } from './helpers/processes.js';
import { realCliMachine } from './helpers/realCli.js';

let t: TestAgentq;
let client: AgentqClient;
let mock: MockModel;

beforeAll(async () => {
  t = await createTestAgentq();
  t.database.pool.on('error', () => undefined);
  client = createClient(t.config);
  // Refuses every key, as the real API does a revoked one.
  mock = await startMockModel({ script: () => ({ error: { status: 401 } }) });
});
afterAll(async () => {
  await client?.close();
  await mock?.close();
  await t?.cleanup();
});

function cli(env: Record<string, string>, stdin = ''): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { env, out: (s) => out.push(s), err: (s) => err.push(s), readStdin: async () => stdin }, out, err };
}

const FACTS: RunFacts = { ...emptyFacts(100), sessionId: 's', numTurns: 1, exitCode: 1 };

describe('authentication failures are configuration errors', () => {
  it('the three ways the CLI says so (measured with 2.1.197) are `auth`, not retried, and name the variable to set', () => {
    const shapes = [
      { api_error_status: null, result: 'Not logged in · Please run /login' },
      { api_error_status: 401, result: 'Invalid API key · Fix external API key' },
      { api_error_status: 403, result: 'Failed to authenticate. API Error: 403 forbidden' },
    ];
    for (const shape of shapes) {
      const result = { type: 'result', subtype: 'success', is_error: true, session_id: 's', ...shape } as never;
      const outcome = classifyRun({ facts: FACTS, requestedSessionId: 's', claudePath: 'claude', spawnError: undefined, termination: undefined, result });
      expect(outcome.type, shape.result).toBe('auth');
      const decision = decide(outcome);
      expect(decision).toMatchObject({ kind: 'finish', status: 'failed', error: { class: 'auth', retryable: false } });
      const message = (decision as { error: { message: string } }).error.message;
      expect(message).toContain('ANTHROPIC_API_KEY');
      expect(message).toContain(shape.result);
      expect(message).not.toContain('reported an error (success)');
    }
    // Any other error of the CLI says what it said, without the misleading subtype.
    const other = classifyRun({
      facts: FACTS,
      requestedSessionId: 's',
      claudePath: 'claude',
      spawnError: undefined,
      termination: undefined,
      result: { type: 'result', subtype: 'success', is_error: true, session_id: 's', result: 'something else' } as never,
    });
    expect(other).toMatchObject({ type: 'crashed', message: 'the CLI reported an error: something else' });
  });

  it('with the real CLI: no credentials, and a key the API refuses, fail the turn at once as auth (one attempt)', async () => {
    const cases = [
      { conversation: 'no-key', env: { ANTHROPIC_API_KEY: '', ANTHROPIC_BASE_URL: '' } },
      { conversation: 'refused-key', env: { ANTHROPIC_BASE_URL: mock.url, ANTHROPIC_API_KEY: 'sk-ant-revoked' } },
    ];
    for (const c of cases) {
      const config = realCliMachine(t.env, t.root, c.conversation, mock.url, { AGENTQ_SANDBOX: 'off', AGENTQ_MAX_ATTEMPTS: '5', ...c.env });
      const captured = captureLogger('warn');
      const worker = createWorker(config, { concurrency: 1, log: captured.log });
      await worker.start();
      try {
        const { turnId } = await client.enqueueTurn({ conversationId: c.conversation, prompt: 'hello' });
        const done = await client.waitForTurn(turnId, 60_000);
        expect(done, c.conversation).toMatchObject({ status: 'failed', attempts: 1, error: { class: 'auth', retryable: false } });
        expect((done.error as { message: string }).message).toContain('ANTHROPIC_API_KEY');
        if (c.conversation === 'no-key') {
          // The worker said so once at start, before any turn.
          expect(captured.matching('no credentials for the Messages API')).toHaveLength(1);
        }
      } finally {
        await worker.stop();
      }
    }
  }, 120_000);
});

describe('enqueueing', () => {
  it('refuses a whitespace-only prompt (exit 2, the field named) and stores nothing', async () => {
    const c = cli(t.env);
    expect(await main(['node', 'agentq', 'enqueue', 'blank', ' \n\t '], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('prompt: must not be only whitespace');
    expect(await client.getConversation('blank')).toBeUndefined();
  });

  it('reads the prompt from standard input (`-`) or --prompt-file, past what an argument can hold; one source only', async () => {
    const big = `a long ticket: ${'x'.repeat(150 * 1024)}`;
    const viaStdin = cli(t.env, 'from standard input');
    expect(await main(['node', 'agentq', 'enqueue', 'piped', '-', '--json'], viaStdin.io)).toBe(0);
    const file = path.join(t.root, 'prompt.txt');
    writeFileSync(file, big);
    const viaFile = cli(t.env);
    expect(await main(['node', 'agentq', 'enqueue', 'piped', '--prompt-file', file], viaFile.io)).toBe(0);
    const turns = (await client.getConversation('piped'))!.turns;
    const prompts = await t.database.pool.query<{ prompt: string }>('select prompt from turns where id = any($1::uuid[]) order by seq', [turns.map((x) => x.turnId)]);
    expect(prompts.rows.map((r) => r.prompt)).toEqual(['from standard input', big]);
    const both = cli(t.env);
    expect(await main(['node', 'agentq', 'enqueue', 'piped', 'text', '--prompt-file', file], both.io)).toBe(2);
    expect(both.err.join('\n')).toMatch(/not both/);
    const none = cli(t.env);
    expect(await main(['node', 'agentq', 'enqueue', 'piped'], none.io)).toBe(2);
    expect(none.err.join('\n')).toMatch(/prompt: missing/);
  });
});

describe('npx agentq worker &, then kill $!', () => {
  it('a worker started by npm stops (drains) when its parent is gone, as it would on the signal npm did not pass on', async () => {
    const log = path.join(t.root, 'npm-child.log');
    const bin = path.resolve('bin/agentq.js');
    // npm exec runs the command through `sh -c`: a shell whose child is the worker.
    const parent = spawn('/bin/sh', ['-c', `"${process.execPath}" "${bin}" worker > "${log}" 2>&1 & echo $!; wait`], {
      env: { ...t.env, npm_command: 'exec' },
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    const workerPid = Number(await new Promise<string>((resolve) => parent.stdout!.once('data', (d: Buffer) => resolve(d.toString().trim()))));
    await waitUntil(() => existsSync(log) && readFileSync(log, 'utf8').includes('started'), 'the worker to start', 30_000);
    // What `kill $!` does to npx: the parent is gone; the worker is reparented.
    parent.kill('SIGKILL');
    await waitUntil(() => !isAlive(workerPid), 'the orphaned worker to stop', 15_000);
    expect(readFileSync(log, 'utf8')).toContain('SIGTERM: draining');
  }, 60_000);
});

describe('the runner and long arguments', () => {
  it('a prompt too long for an argument reaches the CLI on stdin; another argument too long fails the run at once instead of hanging it', async () => {
    const dir = path.join(t.root, 'long-args');
    mkdirSync(path.join(dir, 'w'), { recursive: true });
    const base = { cwd: path.join(dir, 'w'), configDir: path.join(dir, 'c'), tmpDir: path.join(dir, 't') };
    const settings = fakeCliSettings(path.join(dir, 'fake.log'));
    const prompt = `long: ${'p'.repeat(150 * 1024)} END`;
    const ok = await runClaude({ ...base, prompt, session: { mode: 'new', sessionId: randomUUID() } }, settings);
    expect(ok.type).toBe('success');
    expect(ok.resultText).toBe(`fake reply to: ${prompt}`);
    const tooLong = await runClaude({ ...base, prompt: 'hi', appendSystemPrompt: 'z'.repeat(150 * 1024), session: { mode: 'new', sessionId: randomUUID() } }, settings);
    expect(tooLong).toMatchObject({ type: 'crashed', message: expect.stringContaining('E2BIG') });
  });
});

describe('configuration errors', () => {
  it('an invalid AGENTQ_API_KEYS is named, its keys are not printed', () => {
    const secret = 'tok-very-secret-0123456789';
    let err: unknown;
    try {
      loadConfig({ AGENTQ_API_KEYS: `${secret}=tenant-a,missing-the-tenant` });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).variables).toEqual(['AGENTQ_API_KEYS']);
    expect((err as Error).message).not.toContain(secret);
    expect((err as Error).message).toContain('not shown');
  });
});

describe('the offline path', () => {
  it('`agentq dev` migrates, runs a worker on the mock model and the API, prints where to look and what to type; a turn runs, costing $0', async () => {
    const c = cli({ ...t.env, AGENTQ_API_PORT: '0' });
    let stop = () => {};
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const env = { ...c.io.env };
    delete env.AGENTQ_CLAUDE_PATH;
    delete env.ANTHROPIC_API_KEY;
    const running = devCommand({ ...c.io, env: { ...env, AGENTQ_SANDBOX: 'off' } }, { stop: stopped });
    try {
      await waitUntil(() => c.out.join('\n').includes('Ctrl-C stops it.'), 'agentq dev to print what to type', 30_000);
      const text = c.out.join('\n');
      expect(text).toMatch(/viewer {5}http:\/\/127\.0\.0\.1:\d+\/viewer {3}\(log in with dev-[0-9a-f]{24}\)/);
      for (const command of DEV_NEXT_COMMANDS) expect(text).toContain(command);
      const { turnId } = await client.enqueueTurn({ conversationId: 'first-hour', prompt: 'hello from a new user' });
      const done = await client.waitForTurn(turnId, 60_000);
      expect(done).toMatchObject({ status: 'succeeded', costUsd: 0 });
      expect(done.result).toContain('hello from a new user');
      // The prompts enqueued above ran too, the 150 KiB one included: too long for an
      // argument (Linux: 128 KiB), it reached the real CLI on its stdin.
      for (const turn of (await client.getConversation('piped'))!.turns) {
        const piped = await client.waitForTurn(turn.turnId, 60_000);
        expect(piped.status, JSON.stringify(piped.error)).toBe('succeeded');
      }
      const last = await client.getConversation('piped');
      expect((await client.getTurn(last!.turns.at(-1)!.turnId))!.result).toContain('a long ticket');
    } finally {
      stop();
      expect(await running).toBe(0);
    }
  }, 90_000);
});
