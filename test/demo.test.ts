// `npm run demo` is one of the two commands a new user runs: prove it works offline.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const demo = fileURLToPath(new URL('../dist/demo/main.js', import.meta.url));

describe('the demo', () => {
  it('runs two real-CLI turns on two "machines" against the built-in mock model', async () => {
    const env = { ...process.env };
    delete env.ANTHROPIC_API_KEY;
    delete env.ANTHROPIC_BASE_URL;
    const { code, stdout } = await new Promise<{ code: number | null; stdout: string }>((resolve) => {
      const child = execFile(process.execPath, [demo], { env, timeout: 60_000 }, (err, out) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout: out }),
      );
      child.stdin?.end();
    });
    expect(stdout).toContain('using the built-in mock model');
    expect(stdout).toContain('same session: true');
    expect(stdout).toContain("turn 1's command is among them: true");
    expect(code).toBe(0);
  });
});
