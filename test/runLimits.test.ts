// Cgroup limits of CLI runs (AGENTQ_RUN_MEMORY_MAX_MB, AGENTQ_RUN_PIDS_MAX,
// AGENTQ_RUN_CPU_MAX). The real-kernel tests need root and a writable cgroup hierarchy
// (CI has both); elsewhere they are skipped with a message. The probe's file layout is also
// checked against a cgroup v2 tree laid out in a temporary directory.
import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { CgroupsUnavailableError } from '../src/errors.js';
import { probeCgroups, RunCgroup, type CgroupHost, type RunLimits } from '../src/runner/cgroups.js';
import { createClient } from '../src/queue/client.js';
import { probeSandbox } from '../src/sandbox/probe.js';
import { runClaude, runnerSettings, type RunnerSettings } from '../src/runner/runClaude.js';
import { createWorker } from '../src/worker/worker.js';
import { createTestAgentq } from './helpers/agentq.js';

const NO_LIMITS: RunLimits = { memoryMaxBytes: 0, pidsMax: 0, cpuMax: 0 };
const MiB = 1024 * 1024;

let root: string;
beforeAll(() => {
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-limits-'));
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A stand-in CLI: a Node script that does `body`, then prints a result event with what it found. */
function script(name: string, body: string): string {
  const file = path.join(root, `${name}.mjs`);
  writeFileSync(
    file,
    `#!${process.execPath}
import { readFileSync } from 'node:fs';
const say = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
say({ type: 'system', subtype: 'init', session_id: '00000000-0000-4000-8000-000000000001' });
const result = await (async () => { ${body} })();
say({ type: 'result', subtype: 'success', is_error: false, result: String(result), session_id: '00000000-0000-4000-8000-000000000001', total_cost_usd: 0, num_turns: 1 });
// Leaves whatever it started running, as a careless tool would.
process.stdout.write('', () => process.exit(0));
`,
  );
  chmodSync(file, 0o755);
  return file;
}

function settingsFor(claudePath: string, host: CgroupHost, limits: RunLimits): RunnerSettings {
  const base = runnerSettings(loadConfig({ AGENTQ_CLAUDE_PATH: claudePath, AGENTQ_SANDBOX: 'off', PATH: process.env.PATH ?? '/usr/bin:/bin' }));
  return { ...base, cgroups: { host, limits } };
}

function runIn(claudePath: string, host: CgroupHost, limits: RunLimits) {
  const cwd = mkdtempSync(path.join(root, 'ws-'));
  const run = mkdtempSync(path.join(root, 'run-'));
  return runClaude(
    { prompt: 'go', cwd, configDir: path.join(run, 'config'), tmpDir: path.join(run, 'tmp'), session: { mode: 'new', sessionId: randomUUID() } },
    settingsFor(claudePath, host, limits),
  );
}

describe('run groups laid out on a cgroup v2 tree (files only)', () => {
  it('the probe delegates the controllers, and a run group gets memory.max, swap 0, pids.max and cpu.max', () => {
    const fs = path.join(root, 'v2');
    const own = path.join(fs, 'sys/fs/cgroup/worker.slice');
    mkdirSync(own, { recursive: true });
    writeFileSync(path.join(own, 'cgroup.controllers'), 'cpuset cpu io memory pids\n');
    writeFileSync(path.join(fs, 'mountinfo'), `30 23 0:26 / ${path.join(fs, 'sys/fs/cgroup')} rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n`);
    writeFileSync(path.join(fs, 'cgroup'), '0::/worker.slice\n');
    const limits = { memoryMaxBytes: 512 * MiB, pidsMax: 64, cpuMax: 1.5 };
    const host = probeCgroups(limits, { mountinfo: path.join(fs, 'mountinfo'), selfCgroup: path.join(fs, 'cgroup') });
    expect(host).toEqual({ version: 2, parent: path.join(own, 'agentq-runs') });
    expect(readFileSync(path.join(own, 'cgroup.subtree_control'), 'utf8')).toBe('+memory +pids +cpu');
    expect(readFileSync(path.join(own, 'agentq-runs/cgroup.subtree_control'), 'utf8')).toBe('+memory +pids +cpu');
    const group = RunCgroup.create(host, 'abc', limits);
    const dir = group.dirs[0]!;
    expect(path.basename(dir)).toBe(`agentq-run-${process.pid}-abc`);
    expect(readFileSync(path.join(dir, 'memory.max'), 'utf8')).toBe(String(512 * MiB));
    expect(readFileSync(path.join(dir, 'pids.max'), 'utf8')).toBe('64');
    expect(readFileSync(path.join(dir, 'cpu.max'), 'utf8')).toBe('150000 100000');
    const wrapped = group.wrap('/usr/bin/claude', ['-p', 'x']);
    expect(wrapped.file).toBe('/bin/sh');
    expect(wrapped.args.slice(2)).toEqual(['agentq-cgroup', '1', path.join(dir, 'cgroup.procs'), '/usr/bin/claude', '-p', 'x']);
  });

  it('a controller the group does not offer, or no cgroup mount at all, is a CgroupsUnavailableError naming it', () => {
    const fs = path.join(root, 'v2-missing');
    const own = path.join(fs, 'cg/app');
    mkdirSync(own, { recursive: true });
    writeFileSync(path.join(own, 'cgroup.controllers'), 'cpu io\n');
    writeFileSync(path.join(fs, 'mountinfo'), `30 23 0:26 / ${path.join(fs, 'cg')} rw - cgroup2 cgroup2 rw\n`);
    writeFileSync(path.join(fs, 'cgroup'), '0::/app\n');
    const paths = { mountinfo: path.join(fs, 'mountinfo'), selfCgroup: path.join(fs, 'cgroup') };
    expect(() => probeCgroups({ ...NO_LIMITS, memoryMaxBytes: MiB, pidsMax: 5 }, paths)).toThrow(/memory, pids controller/);
    expect(() => probeCgroups({ ...NO_LIMITS, memoryMaxBytes: MiB, pidsMax: 5 }, paths)).toThrow(CgroupsUnavailableError);
    writeFileSync(path.join(fs, 'mountinfo'), '22 1 0:21 / /proc rw - proc proc rw\n');
    expect(() => probeCgroups({ ...NO_LIMITS, pidsMax: 5 }, paths)).toThrow(/no cgroup hierarchy with the pids controller/);
  });
});

const isRoot = process.getuid?.() === 0;
let host: CgroupHost | undefined;
let why = '';
if (isRoot) {
  try {
    host = probeCgroups({ memoryMaxBytes: 64 * MiB, pidsMax: 32, cpuMax: 1 });
  } catch (err) {
    why = (err as Error).message;
  }
} else {
  why = 'not root';
}
if (!host) console.warn(`test/runLimits.test.ts: the real-kernel cgroup tests are skipped (${why})`);

describe.skipIf(!host)('run limits enforced by the kernel', () => {
  const limits = { memoryMaxBytes: 64 * MiB, pidsMax: 32, cpuMax: 1 };

  it('a run that allocates past its memory limit is killed by the OOM killer: outcome resource_limit, and its group is removed', async () => {
    const hungry = script('hungry', `const keep = []; for (;;) { keep.push(Buffer.alloc(8 << 20, 1)); await new Promise((r) => setImmediate(r)); }`);
    const outcome = await runIn(hungry, host!, limits);
    expect(outcome.type).toBe('resource_limit');
    if (outcome.type === 'resource_limit') expect(outcome.message).toMatch(/memory limit of 64 MiB/);
    const parents = host!.version === 1 ? Object.values(host!.dirs) : [host!.parent];
    for (const p of parents) expect(readdirNames(p).filter((n) => n.startsWith(`agentq-run-${process.pid}-`))).toEqual([]);
  });

  it('the same run without limits is not killed (the limit, not the machine, stopped it)', async () => {
    const modest = script('modest', `const keep = []; for (let i = 0; i < 16; i++) keep.push(Buffer.alloc(8 << 20, 1)); return keep.length * 8 + ' MiB';`);
    const limited = await runIn(modest, host!, limits);
    expect(limited.type).toBe('resource_limit');
    const roomy = await runIn(modest, host!, { ...limits, memoryMaxBytes: 512 * MiB });
    expect(roomy).toMatchObject({ type: 'success', resultText: '128 MiB' });
  });

  it('a run cannot start more processes than its pids limit; the CLI and its children are in its group; nothing is left after', async () => {
    const forky = script(
      'forky',
      `const { spawn } = await import('node:child_process');
       const groups = readFileSync('/proc/self/cgroup', 'utf8');
       let started = 0, refused = 0;
       const kids = [];
       for (let i = 0; i < 60; i++) {
         await new Promise((resolve) => {
           const c = spawn('sleep', ['30'], { detached: true, stdio: 'ignore' });
           c.once('spawn', () => { started++; kids.push(c); resolve(); });
           c.once('error', () => { refused++; resolve(); });
         });
       }
       const mine = groups.split('\\n').filter((l) => l.includes('agentq-run-')).length;
       return JSON.stringify({ started, refused, mine });`,
    );
    const outcome = await runIn(forky, host!, { ...NO_LIMITS, pidsMax: 20 });
    expect(outcome.type).toBe('success');
    const r = JSON.parse(outcome.resultText!) as { started: number; refused: number; mine: number };
    expect(r.refused).toBeGreaterThan(0);
    expect(r.started).toBeLessThan(20);
    expect(r.mine).toBeGreaterThanOrEqual(1);
    // The detached sleeps went with the run.
    const parents = host!.version === 1 ? Object.values(host!.dirs) : [host!.parent];
    for (const p of parents) expect(readdirNames(p).filter((n) => n.startsWith(`agentq-run-${process.pid}-`))).toEqual([]);
  });

  it('sandboxed too: the group holds bubblewrap and everything inside it', async () => {
    const config = loadConfig({ PATH: process.env.PATH ?? '/usr/bin:/bin' });
    const probe = await probeSandbox(config.sandbox.bwrapPath, config.sandbox.socatPath);
    if (!probe.ok) throw new Error(`bubblewrap is needed for this test (apt-get install bubblewrap socat): ${probe.reason}`);
    const hungry = script('hungry-sandboxed', `const keep = []; for (;;) { keep.push(Buffer.alloc(8 << 20, 1)); await new Promise((r) => setImmediate(r)); }`);
    const cwd = mkdtempSync(path.join(root, 'ws-'));
    const run = mkdtempSync(path.join(root, 'run-'));
    const settings = { ...settingsFor(hungry, host!, limits), sandbox: { ...probe.settings, allowHosts: [] } };
    const outcome = await runClaude(
      { prompt: 'go', cwd, configDir: path.join(run, 'config'), tmpDir: path.join(run, 'tmp'), homeDir: path.join(run, 'home'), session: { mode: 'new', sessionId: randomUUID() } },
      settings,
    );
    expect(outcome.type).toBe('resource_limit');
  });

  it('the CPU quota is written as cores × period', () => {
    const group = RunCgroup.create(host!, 'cpu-check', { ...NO_LIMITS, cpuMax: 0.5 });
    try {
      if (host!.version === 1) {
        const dir = group.dirs.find((d) => existsSync(path.join(d, 'cpu.cfs_quota_us')))!;
        expect(readFileSync(path.join(dir, 'cpu.cfs_quota_us'), 'utf8').trim()).toBe('50000');
      } else {
        expect(readFileSync(path.join(group.dirs[0]!, 'cpu.max'), 'utf8').trim()).toBe('50000 100000');
      }
    } finally {
      group.remove();
    }
    for (const d of group.dirs) expect(existsSync(d)).toBe(false);
  });

  it('a worker with AGENTQ_RUN_MEMORY_MAX_MB commits a turn whose CLI went over it as failed with error class resource_limit', async () => {
    const hungry = script('hungry-cli', `const keep = []; for (;;) { keep.push(Buffer.alloc(8 << 20, 1)); await new Promise((r) => setImmediate(r)); }`);
    const t = await createTestAgentq({ AGENTQ_CLAUDE_PATH: hungry, AGENTQ_RUN_MEMORY_MAX_MB: '64' });
    const client = createClient(t.config);
    const worker = createWorker(t.config, { concurrency: 1 });
    try {
      await worker.start();
      const turn = await client.enqueueTurn({ conversationId: 'oom', prompt: 'eat' });
      const done = await client.waitForTurn(turn.turnId, 30_000);
      expect(done.status).toBe('failed');
      const show = await client.getConversation('oom');
      expect(show?.turns[0]?.error).toMatchObject({ class: 'resource_limit', retryable: false });
      expect(show?.turns[0]?.attempts).toBe(1);
    } finally {
      await worker.stop({ graceMs: 0 });
      await client.close();
      await t.cleanup();
    }
  });
});

function readdirNames(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}
