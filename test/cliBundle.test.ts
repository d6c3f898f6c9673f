// The bundled command line (scripts/bundleCli.js → dist/bundle/, made by `npm run build`):
// bin/agentq.js runs it (with its V8 code cache) when it is current and dist/ otherwise,
// and commands run through it as they do from dist/: the migrations folder, the HTTP
// server's files served from its packages' own directories (Swagger UI, Bull Board), and a
// worker taking a turn.
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from '../src/queue/client.js';
import { createTestAgentq } from './helpers/agentq.js';
import { createDatabase, databaseUrl, dropDatabase, randomDatabaseName } from './helpers/db.js';
import { waitUntil } from './helpers/processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin', 'agentq.js');
const BUNDLE = path.join(ROOT, 'dist', 'bundle', 'agentq-cli.js');
const DIST_MAIN = path.join(ROOT, 'dist', 'cli', 'main.js');

let cleanups: (() => Promise<unknown> | unknown)[] = [];
afterEach(async () => {
  for (const fn of cleanups.reverse()) await Promise.resolve().then(fn).catch(() => undefined);
  cleanups = [];
});

function agentq(args: string[], env: Record<string, string>, entry = BIN): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [entry, ...args], { env, encoding: 'utf8', timeout: 30_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A package tree with a copy of bin/agentq.js and stub entries that say which one ran. */
function stubTree(): { dir: string; bin: string; touch: (which: 'bundle' | 'dist', secondsAgo: number) => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'agentq-bin-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(path.join(dir, 'package.json'), '{ "type": "module" }\n');
  mkdirSync(path.join(dir, 'bin'));
  copyFileSync(BIN, path.join(dir, 'bin', 'agentq.js'));
  const entry = (which: 'bundle' | 'dist') => path.join(dir, 'dist', which === 'bundle' ? 'bundle/agentq-cli.js' : 'cli/main.js');
  for (const which of ['bundle', 'dist'] as const) mkdirSync(path.dirname(entry(which)), { recursive: true });
  // The bundle is one function expression taking CommonJS's arguments (no code cache here).
  writeFileSync(entry('bundle'), "(function (exports) { exports.main = async (argv) => { process.stdout.write('bundle ' + argv.slice(2).join(' ')); return 7; }; })\n");
  writeFileSync(entry('dist'), "export async function main(argv) { process.stdout.write('dist ' + argv.slice(2).join(' ')); return 7; }\n");
  return {
    dir,
    bin: path.join(dir, 'bin', 'agentq.js'),
    touch(which, secondsAgo) {
      const t = Date.now() / 1000 - secondsAgo;
      utimesSync(entry(which), t, t);
    },
  };
}

describe('bin/agentq.js picks its entry', () => {
  it('runs dist/bundle/ when it is at least as new as dist/cli/main.js, else dist/', () => {
    const tree = stubTree();
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    tree.touch('dist', 60);
    tree.touch('bundle', 10);
    expect(agentq(['x', '--y'], env, tree.bin)).toMatchObject({ code: 7, stdout: 'bundle x --y' });
    // A bare tsc after the bundle was built: the bundle is stale and is not used.
    tree.touch('bundle', 120);
    expect(agentq(['x'], env, tree.bin)).toMatchObject({ code: 7, stdout: 'dist x' });
    rmSync(path.join(tree.dir, 'dist', 'bundle'), { recursive: true });
    expect(agentq(['x'], env, tree.bin)).toMatchObject({ code: 7, stdout: 'dist x' });
  });

  it('the build leaves a current bundle, so bin/agentq.js runs the bundle', () => {
    expect(existsSync(BUNDLE), 'run `npm run build` first').toBe(true);
    expect(statSync(BUNDLE).mtimeMs).toBeGreaterThanOrEqual(statSync(DIST_MAIN).mtimeMs);
  });

  it("the build's code cache is one this Node accepts (else every start compiles the bundle)", () => {
    const check = `const fs = require('node:fs'); const vm = require('node:vm'); const f = process.argv[1];
      const s = new vm.Script(fs.readFileSync(f, 'utf8'), { filename: f, cachedData: fs.readFileSync(f + '.cache') });
      process.stdout.write(String(s.cachedDataRejected));`;
    const r = spawnSync(process.execPath, ['-e', check, BUNDLE], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin' }, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('false');
  });
});

describe('commands through the bundle', () => {
  it('prints the same version, help and configuration table as dist/', () => {
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin' };
    const viaDist = (args: string[]) => {
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', `const { main } = await import(${JSON.stringify(DIST_MAIN)}); process.exitCode = await main(process.argv);`, 'agentq', ...args], {
        env,
        encoding: 'utf8',
      });
      return { code: r.status, stdout: r.stdout, stderr: r.stderr };
    };
    for (const args of [['--version'], ['--help'], ['config', '--markdown'], ['worker', '--concurrency', '0']]) {
      const bundled = agentq(args, env);
      expect(bundled, args.join(' ')).toEqual(viaDist(args));
    }
    expect(agentq(['--version'], env).stdout.trim()).toBe('0.1.0');
  });

  it('migrate finds the migrations folder from dist/bundle/ and applies it to an empty database', async () => {
    const name = randomDatabaseName('agentq_bundle');
    await createDatabase(name);
    cleanups.push(() => dropDatabase(name));
    const env = { PATH: process.env.PATH ?? '/usr/bin:/bin', DATABASE_URL: databaseUrl(name), AGENTQ_LOG_LEVEL: 'warn' };
    const applied = agentq(['migrate', '--json'], env);
    expect(applied.code, applied.stderr).toBe(0);
    expect((JSON.parse(applied.stdout) as { applied: string[] }).applied).toContain('0000_session_store');
    const status = agentq(['migrate', '--status', '--json'], env);
    expect(status.code, status.stderr).toBe(0);
  });

  it('agentq api serves Swagger UI and the Bull Board page from their packages', async () => {
    const t = await createTestAgentq({ AGENTQ_API_KEYS: 'bundle-admin-token-0123456789=ops', AGENTQ_API_ADMIN_TENANTS: 'ops' });
    cleanups.push(() => t.cleanup());
    const child = spawn(process.execPath, [BIN, 'api', '--port', '0'], { env: t.env, stdio: ['ignore', 'ignore', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    cleanups.push(() => {
      child.kill('SIGKILL');
      return exited;
    });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await waitUntil(() => /listening on (http:\/\/\S+)/.test(stderr), `agentq api to listen (stderr: ${stderr})`, 30_000);
    const base = /listening on (http:\/\/\S+)/.exec(stderr)![1]!;
    const docs = await fetch(`${base}/docs`);
    expect(docs.status).toBe(200);
    expect(await docs.text()).toMatch(/swagger/i);
    const logo = await fetch(`${base}/docs/static/logo.svg`);
    expect(logo.status).toBe(200);
    const board = await fetch(`${base}/admin/queues`, { headers: { authorization: 'Bearer bundle-admin-token-0123456789' } });
    expect(board.status).toBe(200);
    expect(await board.text()).toContain('Bull Dashboard');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('agentq worker --once runs a queued turn and exits 0', async () => {
    const t = await createTestAgentq();
    cleanups.push(() => t.cleanup());
    const client = createClient(t.config);
    cleanups.push(() => client.close());
    const { turnId } = await client.enqueueTurn({ conversationId: 'bundle', prompt: 'hello' });
    const r = agentq(['worker', '--once', '--wait-ms', '20000'], t.env);
    expect(r.code, r.stderr).toBe(0);
    expect((await client.getTurn(turnId))?.status).toBe('succeeded');
  });
});
