// Isolation with the REAL CLI against the mock model: the mock makes the agent's Bash tool
// attempt each escape, once on a worker with AGENTQ_SANDBOX=bwrap and once with `off`.
// Every attempt must fail sandboxed AND succeed unsandboxed (so the test can fail).
// Workers are real `agentq worker` processes whose environment holds a marker secret.
//
// bwrap missing: these tests FAIL (they do not skip). CI installs bubblewrap (.ci/run), so
// a missing sandbox there is a broken deployment recipe, not an environment quirk; locally
// the failure says to `apt-get install bubblewrap socat`.
import { randomBytes } from 'node:crypto';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createLogger } from '../src/logger.js';
import { startMockModel, type MockModel, type RecordedRequest } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { probeSandbox } from '../src/sandbox/probe.js';
import { resolveSandbox } from '../src/sandbox/resolve.js';
import { DUMMY_API_KEY } from '../src/sandbox/wrapRun.js';
import { workspaceDirName } from '../src/store/ids.js';
import { runClaude } from '../src/runner/runClaude.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { descendants, groupMembers, liveProcesses } from './helpers/procScan.js';
import { waitUntil } from './helpers/processes.js';
import { offlineCliEnv, realCliSettings } from './helpers/realCli.js';
import { killWorkerProcesses, startWorkerProcess, type WorkerProcess } from './helpers/workerProcess.js';

type Mode = 'bwrap' | 'off';

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;
const secret = `s3cret${randomBytes(8).toString('hex')}`;
const realKey = `sk-ant-real-${randomBytes(8).toString('hex')}`;
/** Files the unsandboxed escapes write on the host; removed after the run. */
const hostHomeFile = path.join(os.homedir(), `agentq-sandbox-test-${randomBytes(4).toString('hex')}`);

function machineEnv(name: string, mode: Mode): Record<string, string> {
  const env: Record<string, string> = {
    ...t.env,
    AGENTQ_WORKSPACE_ROOT: path.join(t.root, name, 'workspaces'),
    AGENTQ_RUNS_ROOT: path.join(t.root, name, 'runs'),
    ...offlineCliEnv(mock.url),
    ANTHROPIC_API_KEY: realKey,
    AGENTQ_CLI_ENV_ALLOW: '',
    AGENTQ_SANDBOX: mode,
    AGENTQ_LOG_LEVEL: 'info',
    // The worker's own secret: no run may see it by any path.
    AGENTQ_TEST_SECRET: secret,
  };
  delete env.AGENTQ_CLAUDE_PATH;
  delete env.FAKE_CLAUDE_LOG;
  return env;
}

async function withWorker<T>(name: string, mode: Mode, fn: (w: WorkerProcess) => Promise<T>): Promise<T> {
  mkdirSync(path.join(t.root, name), { recursive: true });
  const w = await startWorkerProcess(machineEnv(name, mode), { name, dir: path.join(t.root, name), concurrency: 1, readyTimeoutMs: 30_000 });
  try {
    return await fn(w);
  } finally {
    await w.stop('SIGTERM', 15_000);
  }
}

/** Runs one turn and returns it with the text of every tool result the mock was sent. */
async function turn(conversationId: string, prompt: string): Promise<{ status: string; toolResults: string; requests: RecordedRequest[] }> {
  const first = mock.requests.length;
  const { turnId } = await client.enqueueTurn({ conversationId, prompt, options: { permissionMode: 'bypassPermissions', maxTurns: 3 } });
  const done = await client.waitForTurn(turnId, 60_000);
  const requests = mock.requests.slice(first).filter((r) => r.body !== undefined);
  const last = requests.at(-1)?.body?.messages ?? [];
  const toolResults = JSON.stringify(last.flatMap((m) => (Array.isArray(m.content) ? m.content.filter((b) => b.type === 'tool_result') : [])));
  return { status: done.status, toolResults, requests };
}

const bash = (command: string) => `<<tool Bash ${JSON.stringify({ command })}>>`;

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  t.database.pool.on('error', () => undefined);
  client = createClient(t.config);
  const probe = await probeSandbox(loadConfig(t.env).sandbox.bwrapPath, loadConfig(t.env).sandbox.socatPath);
  if (!probe.ok) throw new Error(`bubblewrap is not usable here (${probe.reason}); install it: apt-get install -y bubblewrap socat`);
}, 60_000);
afterEach(async () => {
  await killWorkerProcesses();
});
afterAll(async () => {
  rmSync(hostHomeFile, { force: true });
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

describe('AGENTQ_SANDBOX=bwrap: escape attempts fail sandboxed and succeed unsandboxed', () => {
  for (const mode of ['bwrap', 'off'] as const) {
    const escapes = mode === 'bwrap' ? 'fails' : 'succeeds';
    it(`reading the worker's environment, another conversation, writing outside and connecting to Postgres/Redis ${escapes} (${mode})`, async () => {
      const machine = `m-${mode}`;
      const workspaceRoot = path.join(t.root, machine, 'workspaces');
      const cacheDir = path.join(t.root, machine, 'runs', '.cache', 'sessions');
      const victim = `victim-${mode}`;
      const victimDir = path.join(workspaceRoot, workspaceDirName(victim));
      const outsideFile = path.join(workspaceRoot, 'pwned.txt');
      const homeFile = `${hostHomeFile}-${mode}`;
      await withWorker(machine, mode, async (w) => {
        // Another conversation with a file and a session of its own on the same worker.
        const v = await turn(victim, `victim words: kumquat ${bash('echo victim-private > private.txt')}`);
        expect(v.status).toBe('succeeded');
        expect(existsSync(path.join(victimDir, 'private.txt'))).toBe(true);

        const command = [
          `echo "ENVIRON=$(tr '\\0' '\\n' < /proc/${w.pid}/environ | grep '^AGENTQ_TEST_SECRET=')"`,
          // Every secret ps shows: test files run side by side, each with workers of its own.
          `echo "PSE=$(ps axeww 2>&1 | grep -o 'AGENTQ_TEST_SECRET=[a-z0-9]*' | grep -v '=$' | sort -u | tr '\\n' ' ')"`,
          `echo "DBURL=$(tr '\\0' '\\n' < /proc/${w.pid}/environ | grep -c '^DATABASE_URL=postgres')"`,
          `echo "LS=$(ls ${victimDir} 2>&1 | tr '\\n' ' ')"`,
          `echo "CAT=$(cat ${victimDir}/private.txt 2>&1)"`,
          `echo "SESSION=$(cat ${cacheDir}/*.jsonl 2>/dev/null | grep -c kumquat)"`,
          `echo x > ${outsideFile} && echo "ROOTWRITE=ok"`,
          `echo x > ${homeFile} && echo "HOMEWRITE=ok"`,
          `(exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\\r\\n' >&3 && head -c 5 <&3 | tr -d '\\r\\n' | sed 's/^/REDIS=/'; echo)`,
          `(exec 3<>/dev/tcp/127.0.0.1/5432 && echo "PG=connected")`,
          'echo "KEY=$ANTHROPIC_API_KEY"',
        ].join('; ');
        const a = await turn(`attacker-${mode}`, `try everything ${bash(command)}`);
        expect(a.status).toBe('succeeded');
        const out = a.toolResults;
        // The real key reaches the API through the forwarder in both modes.
        for (const r of a.requests) expect(r.headers['x-api-key']).toBe(realKey);
        if (mode === 'bwrap') {
          expect(out).not.toContain(secret);
          expect(out).toContain('DBURL=0');
          expect(out).toContain('No such file or directory');
          expect(out).not.toContain('victim-private');
          expect(out).toContain('SESSION=0');
          expect(out).not.toContain('ROOTWRITE=ok');
          expect(out).not.toContain('HOMEWRITE=ok');
          expect(existsSync(outsideFile)).toBe(false);
          expect(existsSync(homeFile)).toBe(false);
          expect(out).not.toContain('REDIS=+PONG');
          expect(out).not.toContain('PG=connected');
          expect(out).toContain(`KEY=${DUMMY_API_KEY}`);
          expect(out).not.toContain(realKey);
        } else {
          expect(out).toContain(`ENVIRON=AGENTQ_TEST_SECRET=${secret}`);
          expect(out).toMatch(new RegExp(`PSE=(AGENTQ_TEST_SECRET=[a-z0-9]+ )*AGENTQ_TEST_SECRET=${secret} `));
          expect(out).toContain('DBURL=1');
          expect(out).toContain('private.txt');
          expect(out).toContain('CAT=victim-private');
          expect(out).toMatch(/SESSION=[1-9]/);
          expect(out).toContain('ROOTWRITE=ok');
          expect(out).toContain('HOMEWRITE=ok');
          expect(existsSync(outsideFile)).toBe(true);
          expect(existsSync(homeFile)).toBe(true);
          expect(out).toContain('REDIS=+PONG');
          expect(out).toContain('PG=connected');
          expect(out).toContain(`KEY=${realKey}`);
          rmSync(homeFile, { force: true });
        }
      });
    }, 180_000);
  }
});

describe('a normal conversation still works sandboxed', () => {
  it('a tool writes in the workspace, the session persists, and later turns resume it on other machines (unsandboxed → sandboxed → sandboxed)', async () => {
    const conversationId = 'normal-1';
    const one = await withWorker('n-a', 'off', () => turn(conversationId, `turn one: remember the word pelican ${bash('echo hello > note.txt && pwd')}`));
    expect(one.status).toBe('succeeded');
    const two = await withWorker('n-b', 'bwrap', () => turn(conversationId, `turn two ${bash('cat note.txt; pwd; echo more >> note.txt')}`));
    expect(two.status).toBe('succeeded');
    // Hydrated where the sandboxed CLI looks: the whole history reached the API.
    expect(JSON.stringify(two.requests[0]!.body!.messages)).toContain('pelican');
    expect(two.toolResults).toContain('hello');
    expect(two.toolResults).toContain('/workspace');
    const three = await withWorker('n-c', 'bwrap', () => turn(conversationId, `turn three ${bash('cat note.txt')}`));
    expect(three.status).toBe('succeeded');
    const history = JSON.stringify(three.requests[0]!.body!.messages);
    expect(history).toContain('pelican');
    expect(history).toContain('turn two');
    expect(three.toolResults).toContain('hello\\nmore');
    const conv = await client.getConversation(conversationId);
    expect(conv?.sessionId).toBeTruthy();
  }, 240_000);
});

describe('stopping a sandboxed run', () => {
  const sandboxDirs = () => readdirSync(os.tmpdir()).filter((n) => n.startsWith('agentq-sbx-'));
  const mountSources = (pid: number) => {
    try {
      return readFileSync(`/proc/${pid}/mountinfo`, 'utf8');
    } catch {
      return '';
    }
  };
  for (const how of ['cancel', 'wall timeout'] as const) {
    it(`${how} during a tool call stops the CLI, its tool, socat and bwrap, and removes the forwarder's socket`, async () => {
      const { bwrapPath, socatPath } = loadConfig(t.env).sandbox;
      const probe = await probeSandbox(bwrapPath, socatPath);
      if (!probe.ok) throw new Error(probe.reason);
      const dir = path.join(t.root, `stop-${how.replace(' ', '-')}`);
      mkdirSync(path.join(dir, 'w'), { recursive: true });
      // Not a leading `sleep N`: CLI 2.1.332 refuses long sleeps in Bash ("Blocked: sleep ..."), 2.1.197 runs them.
      const marker = `timeout ${600 + Math.floor(Math.random() * 300)} tail -f /dev/null`;
      const ac = new AbortController();
      let pgid = 0;
      // The wall timeout must outlast the sandboxed CLI's start and first tool call on a busy
      // machine (4 s did not, once, with 2.1.197 beside other test files).
      const settings = { ...realCliSettings(mock.url), sandbox: probe.settings, timeoutMs: how === 'cancel' ? 60_000 : 8000 };
      const run = runClaude(
        {
          prompt: `long ${bash(`${marker} & ${marker}; echo never`)}`,
          cwd: path.join(dir, 'w'),
          configDir: path.join(dir, 'c'),
          tmpDir: path.join(dir, 't'),
          session: { mode: 'new', sessionId: randomUUID() },
          permissionMode: 'bypassPermissions',
          maxTurns: 3,
        },
        settings,
        { signal: ac.signal, onSpawn: (pid) => (pgid = pid) },
      );
      // The prompt (in bwrap's argv) holds the marker too: the tool's processes are the `timeout`s themselves.
      const tools = () => liveProcesses().filter((p) => p.cmdline === marker);
      await waitUntil(() => tools().length >= 2, 'the Bash tool started', 30_000);
      // This run's processes only: test files run side by side, with sandboxes of their own.
      const mine = descendants(pgid);
      const runPids = mine
        .filter((p) => p.cmdline === marker || p.cmdline.startsWith('/usr/bin/socat TCP-LISTEN') || p.cmdline.startsWith('/usr/bin/bwrap'))
        .map((p) => p.pid);
      expect(runPids.length).toBeGreaterThanOrEqual(4);
      // bwrap reads its arguments from a pipe: the run's directory shows in its mounts.
      const runDirs = [...new Set(mine.flatMap((p) => mountSources(p.pid).match(/agentq-sbx-\w+/g) ?? []))];
      expect(runDirs, 'the sandbox directory bound into the run').toHaveLength(1);
      expect(sandboxDirs()).toContain(runDirs[0]);
      if (how === 'cancel') ac.abort(new Error('cancelled by test'));
      const outcome = await run;
      expect(outcome.type).toBe(how === 'cancel' ? 'cancelled' : 'timed_out');
      await waitUntil(() => groupMembers(pgid).length === 0, 'the process group is empty', 5000);
      // The forwarder's socat is outside that group: it was signalled, and may still be in its exit (seen on a busy machine).
      const left = () => liveProcesses().filter((p) => runPids.includes(p.pid));
      await waitUntil(() => left().length === 0, `the run's processes are gone (left when the wait began: ${left().map((p) => `${p.pid} ${p.cmdline}`).join(', ')})`, 5000);
      expect(sandboxDirs()).not.toContain(runDirs[0]);
    }, 60_000);
  }
});

describe('resolveSandbox', () => {
  const log = createLogger(loadConfig({ AGENTQ_LOG_LEVEL: 'silent' }));
  it('AGENTQ_SANDBOX=bwrap refuses to start without bubblewrap; auto runs unsandboxed; bwrap here is usable', async () => {
    await expect(resolveSandbox(loadConfig({ PATH: '/nonexistent', AGENTQ_SANDBOX: 'bwrap' }), log)).rejects.toMatchObject({ name: 'SandboxUnavailableError' });
    await expect(resolveSandbox(loadConfig({ PATH: '/nonexistent', AGENTQ_SANDBOX: 'auto' }), log)).resolves.toBeUndefined();
    await expect(resolveSandbox(loadConfig({ PATH: process.env.PATH, AGENTQ_SANDBOX: 'off' }), log)).resolves.toBeUndefined();
    await expect(resolveSandbox(loadConfig({ PATH: process.env.PATH, AGENTQ_SANDBOX: 'bwrap' }), log)).resolves.toMatchObject({ bwrapPath: expect.stringMatching(/bwrap$/) });
  });
});
