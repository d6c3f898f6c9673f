// The CLI state file every run's fresh config directory starts with (src/runner/configSeed.ts):
// what the seed keeps of the file the CLI wrote, that it never comes from a run's own
// directory, and that the real CLI makes one and runs on it.
import { spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { CLI_STATE_FILE, ConfigSeed, makeConfigSeed, seedConfigDir, seedFromStateFile } from '../src/runner/configSeed.js';
import { ownerTag } from '../src/runner/ownedDirs.js';
import { runClaude } from '../src/runner/runClaude.js';
import { fakeCliPath } from '../src/testing/fakeCliPath.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { readFakeCliLog } from './helpers/fakeCliLog.js';
import { fakeCliSettings } from './helpers/infra.js';
import { realCliSettings, testCli } from './helpers/realCli.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

const quiet = pino({ level: 'silent' });
let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-config-seed-test-'));
  return () => rmSync(root, { recursive: true, force: true });
});

/** Each test's own scratch root (a worker's runs root), so test files running alongside cannot touch it. */
const scratchRoot = () => path.join(root, 'runs');
const seedDirs = () => readdirSync(scratchRoot()).filter((n) => n.startsWith('.config-seed-'));

describe('the seed', () => {
  it('keeps the top-level plain values of the state file, not objects, arrays or userID', () => {
    const seed = seedFromStateFile(
      JSON.stringify({
        migrationVersion: 15,
        opusProMigrationComplete: true,
        firstStartTime: '2026-12-06T23:41:34.752Z',
        userID: 'per-run',
        projects: { '/w': { allowedTools: ['Bash'] } },
        mcpServers: { evil: { command: 'sh' } },
        seenNotifications: {},
        tips: [1, 2],
        nothing: null,
      }),
    );
    expect(JSON.parse(seed!.toString('utf8'))).toEqual({ migrationVersion: 15, opusProMigrationComplete: true, firstStartTime: '2026-12-06T23:41:34.752Z' });
    expect(seedFromStateFile('not json')).toBeUndefined();
    expect(seedFromStateFile('[1]')).toBeUndefined();
    expect(seedFromStateFile('{"projects":{}}')).toBeUndefined();
  });

  it('is written only where nothing is, as a file of its own, never through a planted link', () => {
    const seed = Buffer.from('{"migrationVersion":1}\n');
    const fresh = path.join(root, 'fresh');
    mkdirSync(fresh);
    seedConfigDir(fresh, seed);
    expect(readFileSync(path.join(fresh, CLI_STATE_FILE), 'utf8')).toBe(seed.toString());
    expect(lstatSync(path.join(fresh, CLI_STATE_FILE)).mode & 0o777).toBe(0o600);

    const kept = path.join(root, 'kept');
    mkdirSync(kept);
    writeFileSync(path.join(kept, CLI_STATE_FILE), '{"mine":true}');
    seedConfigDir(kept, seed);
    expect(readFileSync(path.join(kept, CLI_STATE_FILE), 'utf8')).toBe('{"mine":true}');

    const planted = path.join(root, 'planted');
    mkdirSync(planted);
    const target = path.join(root, 'elsewhere.json');
    writeFileSync(target, 'untouched');
    symlinkSync(target, path.join(planted, CLI_STATE_FILE));
    seedConfigDir(planted, seed);
    expect(readFileSync(target, 'utf8')).toBe('untouched');
    const dangling = path.join(root, 'dangling');
    mkdirSync(dangling);
    symlinkSync(path.join(root, 'made-through-link.json'), path.join(dangling, CLI_STATE_FILE));
    seedConfigDir(dangling, seed);
    expect(readdirSync(root)).not.toContain('made-through-link.json');
  });

  it('is not made from a CLI that fails, and leaves no scratch directory', async () => {
    const r = await makeConfigSeed({ claudePath: '/bin/false', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }, scratchRoot());
    expect(r.seed).toBeUndefined();
    expect(r.reason).toMatch(/exited 1/);
    expect(seedDirs()).toEqual([]);
  });

  it("removes the scratch directories of workers that died during their seed run, and no live one's", async () => {
    // A process that has exited: its pid is free (reuse within this test is not a concern).
    const deadPid = Number(spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout);
    const live = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      const deadScratch = path.join(scratchRoot(), `.config-seed-${ownerTag(deadPid)}-aaaaaa`);
      mkdirSync(deadScratch, { recursive: true });
      writeFileSync(path.join(deadScratch, CLI_STATE_FILE), '{}');
      mkdirSync(path.join(scratchRoot(), `.config-seed-${ownerTag(live.pid)}-bbbbbb`));
      mkdirSync(path.join(scratchRoot(), 'a-run-dir'));
      await makeConfigSeed({ claudePath: '/bin/false', env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }, scratchRoot());
      expect(readdirSync(scratchRoot()).sort()).toEqual([`.config-seed-${ownerTag(live.pid)}-bbbbbb`, 'a-run-dir']);
    } finally {
      live.kill('SIGKILL');
    }
  });

  it('reaches every run from the runner, each time as made, whatever the run before wrote into its own', async () => {
    const logFile = path.join(root, 'fake.log');
    const settings = fakeCliSettings(logFile, { configSeed: new ConfigSeed(scratchRoot()) });
    settings.configSeed!.start(settings, quiet);
    await settings.configSeed!.ready;
    const made = settings.configSeed!.bytes!.toString('utf8');
    // The fake's `plugin list` wrote an id and an object as well: neither is kept.
    expect(JSON.parse(made)).toEqual({ firstStartTime: expect.any(String), migrationVersion: 1, fakeCli: true });
    const cwd = path.join(root, 'cwd');
    mkdirSync(cwd);
    for (const n of [1, 2]) {
      const configDir = path.join(root, `config-${n}`);
      const outcome = await runClaude({ prompt: `turn ${n}`, cwd, configDir, tmpDir: path.join(root, `tmp-${n}`), session: { mode: 'new', sessionId: randomUUID() } }, settings);
      expect(outcome.type).toBe('success');
      // The run wrote its own entries (as the real CLI does): they stay in its directory.
      expect(JSON.parse(readFileSync(path.join(configDir, CLI_STATE_FILE), 'utf8'))).toHaveProperty('userID');
    }
    const starts = readFakeCliLog(logFile).filter((r) => r.event === 'start');
    expect(starts.map((s) => s.stateFile)).toEqual([made, made]);
    await settings.configSeed!.close();
  });
});

describe('the seed with the real CLI', () => {
  let mock: MockModel;
  beforeAll(async () => {
    mock = await startMockModel();
  });
  afterAll(async () => {
    await mock.close();
  });

  it(`is made by \`claude plugin list\` (${testCli.version}) without a model call, and a run starts from it`, async () => {
    const settings = { ...realCliSettings(mock.url), configSeed: new ConfigSeed(scratchRoot()) };
    settings.configSeed.start(settings, quiet);
    await settings.configSeed.ready;
    const seed = JSON.parse(settings.configSeed.bytes!.toString('utf8')) as Record<string, unknown>;
    expect(typeof seed.migrationVersion).toBe('number');
    expect(seed).not.toHaveProperty('userID');
    expect(Object.values(seed).every((v) => ['string', 'number', 'boolean'].includes(typeof v))).toBe(true);
    expect(mock.mainRequests()).toHaveLength(0);
    expect(seedDirs()).toEqual([]);

    const cwd = path.join(root, 'cwd');
    mkdirSync(cwd);
    const configDir = path.join(root, 'config');
    const outcome = await runClaude({ prompt: 'hello', cwd, configDir, tmpDir: path.join(root, 'tmp'), session: { mode: 'new', sessionId: randomUUID() } }, settings);
    expect(outcome.type, outcome.stderrTail).toBe('success');
    const after = JSON.parse(readFileSync(path.join(configDir, CLI_STATE_FILE), 'utf8')) as Record<string, unknown>;
    expect(after.migrationVersion).toBe(seed.migrationVersion);
    expect(after.firstStartTime).toBe(seed.firstStartTime);
    await settings.configSeed.close();
  });
});

describe('the seed in a worker', () => {
  let t: TestAgentq;
  let client: AgentqClient;
  beforeEach(async () => {
    t = await createTestAgentq();
    client = createClient(t.config);
  });
  afterEach(async () => {
    await stopWorkers();
    await client.close();
    await t.cleanup();
  });

  it("starts every turn's CLI from the worker's seed once made, never from an earlier turn's file", async () => {
    await startWorker(t.config);
    const starts = () => readFakeCliLog(t.logFile).filter((r) => r.event === 'start');
    // The seed is made in the background: turns before it is ready start without one.
    const deadline = Date.now() + 20_000;
    let n = 0;
    while (!starts().some((s) => typeof s.stateFile === 'string')) {
      if (Date.now() > deadline) throw new Error('no turn started from a seed within 20 s');
      const { turnId } = await client.enqueueTurn({ conversationId: 'seeded', prompt: `until seeded ${++n}` });
      expect((await client.waitForTurn(turnId, 20_000)).status).toBe('succeeded');
    }
    const seed = starts().find((s) => typeof s.stateFile === 'string')!.stateFile!;
    expect(JSON.parse(seed)).toEqual({ firstStartTime: expect.any(String), migrationVersion: 1, fakeCli: true });
    for (const p of ['after one', 'after two']) {
      const { turnId } = await client.enqueueTurn({ conversationId: 'seeded', prompt: p });
      expect((await client.waitForTurn(turnId, 20_000)).status).toBe('succeeded');
    }
    expect(starts().slice(-2).map((s) => s.stateFile)).toEqual([seed, seed]);
  });

  it('a worker with a lifetime makes none: its turns run as without one', async () => {
    // The fake CLI behind a wrapper that notes each invocation's first two arguments.
    const calls = path.join(t.root, 'calls.txt');
    const wrapper = path.join(t.root, 'claude-noting');
    writeFileSync(wrapper, `#!/bin/sh\necho "$1 $2" >> '${calls}'\nexec '${fakeCliPath()}' "$@"\n`, { mode: 0o755 });
    const config = loadConfig({ ...t.env, AGENTQ_CLAUDE_PATH: wrapper });
    const ephemeral = await startWorker(config, { maxTurns: 2 });
    for (const p of ['one', 'two']) {
      const { turnId } = await client.enqueueTurn({ conversationId: 'ephemeral', prompt: p });
      expect((await client.waitForTurn(turnId, 20_000)).status).toBe('succeeded');
    }
    await ephemeral.finished;
    const noted = readFileSync(calls, 'utf8').trim().split('\n');
    expect(noted).toHaveLength(2);
    expect(noted.every((l) => l.startsWith('-p'))).toBe(true);
    expect(readFakeCliLog(t.logFile).filter((r) => r.event === 'start').map((s) => s.stateFile)).toEqual([null, null]);
    // A worker that stays makes one, through the same wrapper.
    await startWorker(config);
    await expect.poll(() => readFileSync(calls, 'utf8').includes('plugin list'), { timeout: 10_000 }).toBe(true);
  });
});
