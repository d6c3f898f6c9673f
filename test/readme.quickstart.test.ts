// The README's offline by-hand path, run literally: the commands are read from the README
// itself (the `sh` block under "A first run by hand, offline") and run one after another
// in a shell, as a new user would type them, with `npx`, the real CLI and the mock model.
// Only the machine differs: this test's database, queue and a free API port. So the README
// cannot drift from what works.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

/** The lines of the first `sh` block after `heading` in the README. */
function readmeBlock(heading: string): string[] {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const at = readme.indexOf(heading);
  if (at === -1) throw new Error(`README has no "${heading}"`);
  const block = /```sh\n([\s\S]*?)```/.exec(readme.slice(at));
  if (!block) throw new Error(`no sh block after "${heading}"`);
  return block[1]!.split('\n').filter((l) => l.trim() !== '' && !l.trim().startsWith('#'));
}

let t: TestAgentq;
beforeAll(async () => {
  t = await createTestAgentq();
  t.database.pool.on('error', () => undefined);
});
afterAll(async () => {
  await t?.cleanup();
});

describe("the README's quick start", () => {
  it('"A first run by hand, offline" works as written: two turns of one session on the mock model, shown and transcribed', () => {
    const lines = readmeBlock('### A first run by hand, offline');
    expect(lines[0]).toBe('npx agentq migrate');
    expect(lines.some((l) => l.startsWith('npx agentq dev'))).toBe(true);
    const env: Record<string, string> = { ...t.env, AGENTQ_API_PORT: '0', AGENTQ_SANDBOX: 'auto', HOME: process.env.HOME ?? '/root' };
    // The real CLI (the default), not the test suite's fake one.
    delete env.AGENTQ_CLAUDE_PATH;
    delete env.ANTHROPIC_API_KEY;
    // Each line as typed; the script fails on the first command that fails (but the last
    // line, which stops the background `dev`).
    const script = ['set -e', ...lines.map((l) => (l.startsWith('kill') ? `set +e; ${l}` : l))].join('\n');
    const out = execFileSync('/bin/bash', ['-c', script], { cwd: ROOT, env, encoding: 'utf8', timeout: 240_000 });
    // Two turns succeeded, in one session.
    const succeeded = [...out.matchAll(/^([0-9a-f-]{36}) succeeded \(session ([0-9a-f-]{36})\)$/gm)];
    expect(succeeded, out).toHaveLength(2);
    expect(succeeded[0]![2]).toBe(succeeded[1]![2]);
    expect(out).toContain('mock reply: What did the customer report?');
    expect(out).toMatch(/default\/ticket-4812 session [0-9a-f-]{36}/);
    expect(out).toContain('The customer says: my printer is on fire');
  }, 300_000);
});
