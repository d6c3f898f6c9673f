// `agentq doctor`: every check passes on a good setup (exit 0); each broken piece fails
// its own named check (exit 1). The Messages API check asks whether the key is taken
// without spending tokens: a GET of /v1/models, no prompt.
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../src/cli/main.js';
import { installedCliPath, PINNED_CLI_VERSION, PREVIOUS_CLI_VERSION } from '../src/runner/cliVersion.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';

let t: TestAgentq;
let server: http.Server | undefined;
let seen: { method: string; url: string; headers: http.IncomingHttpHeaders; bodyBytes: number }[] = [];

beforeEach(async () => {
  t = await createTestAgentq();
  seen = [];
});
afterEach(async () => {
  if (server) await new Promise<void>((resolve) => server!.close(() => resolve()));
  server = undefined;
  await t.cleanup();
});

interface DoctorJson {
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
}

async function doctor(env: Record<string, string>, json = true): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const io: CliIo = { env, out: (s) => out.push(s), err: (s) => err.push(s) };
  const code = await main(['node', 'agentq', 'doctor', ...(json ? ['--json'] : [])], io);
  return { code, out, err };
}

/** A stand-in Messages API that records what reaches it and answers `status` (default 404). */
async function fakeApi(status = 404): Promise<string> {
  server = http.createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => (bodyBytes += c.length));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, bodyBytes });
      res.writeHead(status, { 'content-type': 'application/json' }).end(status === 200 ? '{"data":[]}' : '{"type":"error"}');
    });
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server!.address() as AddressInfo).port}`;
}

/** A port nothing listens on (bound, then released). */
async function freePort(): Promise<number> {
  const s = http.createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

function makeRoots(): void {
  mkdirSync(t.config.workspaceRoot, { recursive: true });
  mkdirSync(t.config.worker.runsRoot, { recursive: true });
}

const byName = (r: DoctorJson) => Object.fromEntries(r.checks.map((c) => [c.name, c]));

describe('agentq doctor', () => {
  it('passes every check on a good setup, and asks the API about the key without a prompt', async () => {
    makeRoots();
    const baseUrl = await fakeApi();
    const r = await doctor({ ...t.env, ANTHROPIC_BASE_URL: baseUrl, ANTHROPIC_API_KEY: 'sk-ant-doctor-key' });
    const report = JSON.parse(r.out.join('')) as DoctorJson;
    expect(report.checks.filter((c) => !c.ok)).toEqual([]);
    expect(r.code).toBe(0);
    expect(report.ok).toBe(true);
    expect(report.checks.map((c) => c.name)).toEqual(['postgres', 'migrations', 'redis', 'claude CLI', 'workspace root', 'runs root', 'anthropic API', 'sandbox', 'run limits']);
    expect(byName(report)['run limits']!.detail).toMatch(/^no AGENTQ_RUN_\* limits/);
    const checks = byName(report);
    expect(checks['claude CLI']!.detail).toMatch(/\(Claude Code\) at /);
    // The fake CLI's version is none agentq was tested with.
    expect(checks['claude CLI']!.detail).toMatch(/: version not recognised$/);
    expect(checks.migrations!.detail).toMatch(/^current \(\d+ applied\)$/);
    expect(checks['anthropic API']!.detail).toContain('answered HTTP 404');
    expect(checks['anthropic API']!.detail).toContain('not verified');
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ method: 'GET', url: '/v1/models?limit=1', bodyBytes: 0 });
    expect(seen[0]!.headers['x-api-key']).toBe('sk-ant-doctor-key');
  });

  it('reports the CLI version, and whether agentq was tested with it', async () => {
    makeRoots();
    const cliCheck = async (claudePath: string) => byName(JSON.parse((await doctor({ ...t.env, AGENTQ_CLAUDE_PATH: claudePath })).out.join('')) as DoctorJson)['claude CLI']!;
    expect(await cliCheck(installedCliPath(PINNED_CLI_VERSION))).toMatchObject({ ok: true, detail: expect.stringMatching(new RegExp(`^${PINNED_CLI_VERSION} \\(Claude Code\\) at .*: the pinned, tested version$`)) });
    expect(await cliCheck(installedCliPath(PREVIOUS_CLI_VERSION))).toMatchObject({ ok: true, detail: expect.stringMatching(new RegExp(`^${PREVIOUS_CLI_VERSION} \\(Claude Code\\) at .*: a tested version$`)) });
  });

  it('fails the API check when the worker could not authenticate: no credentials at all, or a key the API refuses (no tokens spent); passes a key it takes, and the mock model', async () => {
    makeRoots();
    const api = async (env: Record<string, string>) => {
      const r = await doctor({ ...t.env, ...env });
      return { code: r.code, check: byName(JSON.parse(r.out.join('')) as DoctorJson)['anthropic API']! };
    };
    const none = await api({});
    expect(none.code).toBe(1);
    expect(none.check).toMatchObject({ ok: false, detail: expect.stringContaining('no credentials') });
    expect(none.check.detail).toContain('ANTHROPIC_API_KEY');
    expect(none.check.detail).toContain('AGENTQ_MODEL=mock');

    const refusing = await fakeApi(401);
    const refused = await api({ ANTHROPIC_BASE_URL: refusing, ANTHROPIC_API_KEY: 'sk-ant-revoked' });
    expect(refused.code).toBe(1);
    expect(refused.check).toMatchObject({ ok: false, detail: expect.stringContaining('refused the credentials (HTTP 401') });
    expect(seen.map((r) => [r.method, r.url, r.bodyBytes])).toEqual([['GET', '/v1/models?limit=1', 0]]);
    await new Promise<void>((resolve) => server!.close(() => resolve()));

    const taking = await fakeApi(200);
    const taken = await api({ ANTHROPIC_BASE_URL: taking, CLAUDE_CODE_OAUTH_TOKEN: 'oauth-good' });
    expect(taken.check).toMatchObject({ ok: true, detail: expect.stringContaining('accepted the credentials') });
    expect(seen.at(-1)!.headers.authorization).toBe('Bearer oauth-good');

    const mocked = await api({ AGENTQ_MODEL: 'mock' });
    expect(mocked.check).toMatchObject({ ok: true, detail: expect.stringContaining('mock model') });
  });

  it('reports whether the AGENTQ_RUN_* limits can be enforced (as root with writable cgroups: yes; an impossible setup: no)', async () => {
    makeRoots();
    const r = await doctor({ ...t.env, AGENTQ_RUN_MEMORY_MAX_MB: '256', AGENTQ_RUN_PIDS_MAX: '100' });
    const check = byName(JSON.parse(r.out.join('')) as DoctorJson)['run limits']!;
    if (process.getuid?.() === 0) {
      expect(check).toMatchObject({ ok: true, detail: expect.stringMatching(/^cgroup v[12] enforces memory 256 MiB, 100 processes per run$/) });
    } else {
      expect(check).toMatchObject({ ok: false, detail: expect.stringContaining('workers will refuse to start') });
      expect(r.code).toBe(1);
    }
  });

  it('passes a root that does not exist yet when the worker can create it (a fresh install)', async () => {
    makeRoots();
    const fresh = path.join(t.root, 'not-yet', 'workspaces');
    const r = await doctor({ ...t.env, AGENTQ_WORKSPACE_ROOT: fresh });
    const check = byName(JSON.parse(r.out.join('')) as DoctorJson)['workspace root']!;
    expect(check.ok).toBe(true);
    expect(check.detail).toBe(`${fresh} does not exist yet; the worker creates it (${t.root} is writable)`);
  });

  it('reports the sandbox: usable with bubblewrap here (bwrap), unsafe (off), failing without bwrap on PATH (auto)', async () => {
    makeRoots();
    const sandboxOf = async (env: Record<string, string>) => {
      const r = await doctor({ ...t.env, ...env });
      return { code: r.code, check: byName(JSON.parse(r.out.join('')) as DoctorJson).sandbox! };
    };
    const on = await sandboxOf({ AGENTQ_SANDBOX: 'bwrap' });
    expect(on.check).toMatchObject({ ok: true, detail: expect.stringMatching(/^AGENTQ_SANDBOX=bwrap: bubblewrap [\d.]+ isolates runs \(test sandbox started in \d+ ms\)$/) });
    const off = await sandboxOf({ AGENTQ_SANDBOX: 'off' });
    expect(off.check).toMatchObject({ ok: true, detail: expect.stringContaining('NOT isolated (unsafe for untrusted prompts)') });
    const missing = await sandboxOf({ AGENTQ_SANDBOX: 'auto', PATH: '/nonexistent' });
    expect(missing.check.ok).toBe(false);
    expect(missing.check.detail).toContain('bwrap is not installed');
    expect(missing.code).toBe(1);
  });

  it('exits 1 naming each failed check: unreachable Redis, a workspace root that cannot be created, runs root not a directory', async () => {
    const notADir = path.join(t.root, 'runs-is-a-file');
    writeFileSync(notADir, 'x');
    const uncreatable = path.join(notADir, 'workspaces');
    const env = { ...t.env, AGENTQ_MODEL: 'mock', REDIS_URL: `redis://127.0.0.1:${await freePort()}`, AGENTQ_RUNS_ROOT: notADir, AGENTQ_WORKSPACE_ROOT: uncreatable };
    const r = await doctor(env);
    expect(r.code).toBe(1);
    const report = JSON.parse(r.out.join('')) as DoctorJson;
    expect(report.ok).toBe(false);
    expect(report.checks.filter((c) => !c.ok).map((c) => c.name)).toEqual(['redis', 'workspace root', 'runs root']);
    const checks = byName(report);
    expect(checks.redis!.detail).toMatch(/^cannot reach REDIS_URL: .*ECONNREFUSED/);
    expect(checks['workspace root']!.detail).toContain(`${uncreatable} does not exist and cannot be created (${notADir} is not a directory)`);
    expect(checks['workspace root']!.detail).toContain('AGENTQ_WORKSPACE_ROOT');
    expect(checks['runs root']!.detail).toContain('is not a directory');
    expect(checks.postgres!.ok).toBe(true);

    // Text mode: one line per check, the failed ones named on stderr.
    const text = await doctor(env, false);
    expect(text.code).toBe(1);
    expect(text.out).toContainEqual(expect.stringMatching(/^FAIL redis: cannot reach REDIS_URL/));
    expect(text.out).toContainEqual(expect.stringMatching(/^ok {3}postgres: /));
    expect(text.err).toEqual(['doctor: redis, workspace root, runs root failed']);
  });

  it('fails the migrations check when one is pending, and the API check when the base URL does not answer', async () => {
    makeRoots();
    const db = new pg.Client({ connectionString: t.database.url });
    await db.connect();
    await db.query('delete from drizzle.__drizzle_migrations where created_at = (select max(created_at) from drizzle.__drizzle_migrations)');
    await db.end();
    const r = await doctor({ ...t.env, ANTHROPIC_BASE_URL: `http://127.0.0.1:${await freePort()}`, ANTHROPIC_API_KEY: 'sk-ant-any' });
    expect(r.code).toBe(1);
    const checks = byName(JSON.parse(r.out.join('')) as DoctorJson);
    expect(checks.migrations!.ok).toBe(false);
    expect(checks.migrations!.detail).toMatch(/^1 pending \(.+\); run `agentq migrate`$/);
    expect(checks['anthropic API']!.ok).toBe(false);
    expect(checks['anthropic API']!.detail).toMatch(/is unreachable \(ECONNREFUSED\)/);
  });
});
