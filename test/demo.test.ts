// `npm run demo` is one of the two commands a new user runs: prove it works offline,
// here against a test database of its own.
import { execFile, execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REDIS_URL } from './helpers/agentq.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

const demo = fileURLToPath(new URL('../dist/demo/main.js', import.meta.url));
let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t.drop();
});

describe('the demo', () => {
  it('runs three real-CLI turns through the queue on two "machines" against the built-in mock model', async () => {
    const env: Record<string, string | undefined> = { ...process.env, DATABASE_URL: t.url };
    delete env.ANTHROPIC_API_KEY;
    delete env.ANTHROPIC_BASE_URL;
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      execFile(process.execPath, [demo, '--cleanup'], { env, timeout: 120_000 }, (err, out) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: out }),
      );
    });
    expect(stdout).toContain('the built-in mock model answers');
    expect(stdout).toMatch(/Turn 1 on machine A .*succeeded/);
    expect(stdout).toMatch(/Turn 2 on machine B .*succeeded/);
    // The progress display (not a terminal here: one line per change).
    expect(stdout).toMatch(/\[machine B\] succeeded · attempt 1 · \d+ events stored/);
    expect(stdout).toContain('One CLI session across both machines: true');
    expect(stdout).toContain('The note written on machine A was read on machine B: true');
    expect(stdout).toContain("Turn 3's answer knew what the customer reported in turn 1: true");
    expect(code).toBe(0);
    // Asked to, the demo cleans up after itself.
    const left = await t.pool.query('select count(*)::int as n from conversations');
    expect(left.rows[0].n).toBe(0);
    // Nothing left in Redis that would stay for ever: every key of the run's queues expires.
    const run = /demo-ticket-([0-9a-f]{8})/.exec(stdout)?.[1];
    expect(run, stdout).toBeDefined();
    const redis = new Redis(REDIS_URL);
    try {
      const keys = await redis.keys(`bull:demo-${run}*`);
      const forever = [];
      for (const key of keys) if ((await redis.ttl(key)) === -1) forever.push(key);
      expect(forever).toEqual([]);
    } finally {
      redis.disconnect();
    }
  });

  it('does not build again when nothing changed (the second `npm run demo`)', () => {
    const built = fileURLToPath(new URL('../dist/cli/main.js', import.meta.url));
    const before = statSync(built).mtimeMs;
    const script = fileURLToPath(new URL('../scripts/build.js', import.meta.url));
    execFileSync(process.execPath, [script, '--if-stale'], { stdio: 'pipe' });
    // tsc did not run: it would have written dist/ again (it takes ~20 s here).
    expect(statSync(built).mtimeMs).toBe(before);
  });
});
