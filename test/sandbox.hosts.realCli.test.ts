// AGENTQ_SANDBOX_ALLOW_HOSTS: a sandboxed run reaches the hosts it is allowed (an MCP
// server, say) under their own names, and nothing else; unsandboxed it reaches both, so
// the test can fail. The real CLI's Bash tool makes the connections, against the mock model.
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { runClaude, type RunnerSettings } from '../src/runner/runClaude.js';
import { realCliSettings } from './helpers/realCli.js';

const BWRAP = '/usr/bin/bwrap';
const SOCAT = '/usr/bin/socat';

/** A TCP server on localhost that greets every connection with `greeting`. */
async function greeter(greeting: string): Promise<{ port: number; close(): Promise<void> }> {
  const server = net.createServer((s) => s.end(`${greeting}\n`));
  await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

describe('sandboxed runs and AGENTQ_SANDBOX_ALLOW_HOSTS', () => {
  let mock: MockModel;
  let root: string;
  let allowed: Awaited<ReturnType<typeof greeter>>;
  let other: Awaited<ReturnType<typeof greeter>>;

  beforeAll(async () => {
    if (!existsSync(BWRAP) || !existsSync(SOCAT)) throw new Error('this test needs bubblewrap and socat: apt-get install bubblewrap socat');
    mock = await startMockModel();
    root = mkdtempSync(path.join(os.tmpdir(), 'agentq-sbx-hosts-'));
    allowed = await greeter('hello-from-allowed');
    other = await greeter('hello-from-other');
  });

  afterAll(async () => {
    await allowed?.close();
    await other?.close();
    await mock?.close();
    if (root) rmSync(root, { recursive: true, force: true });
  });

  /** Runs one Bash tool call connecting to both servers by name; returns the tool's output. */
  async function probe(settings: RunnerSettings): Promise<string> {
    const dir = path.join(root, randomUUID().slice(0, 8));
    mkdirSync(path.join(dir, 'w'), { recursive: true });
    const command = [
      `(exec 3<>/dev/tcp/localhost/${allowed.port} && head -n 1 <&3) || echo allowed-refused`,
      `(exec 4<>/dev/tcp/localhost/${other.port} && head -n 1 <&4) || echo other-refused`,
    ].join('; ');
    let output = '';
    const outcome = await runClaude(
      {
        prompt: `<<tool Bash ${JSON.stringify({ command })}>>`,
        cwd: path.join(dir, 'w'),
        configDir: path.join(dir, 'cfg'),
        tmpDir: path.join(dir, 'tmp'),
        session: { mode: 'new', sessionId: randomUUID() },
        permissionMode: 'bypassPermissions',
        maxTurns: 3,
      },
      settings,
      {
        onEvent: (e) => {
          if (e.kind !== 'user') return;
          const content = (e.data as { message?: { content?: unknown } }).message?.content;
          if (Array.isArray(content)) {
            for (const b of content as { type?: string; content?: unknown }[]) {
              if (b.type === 'tool_result') output += typeof b.content === 'string' ? b.content : JSON.stringify(b.content);
            }
          }
        },
      },
    );
    expect(outcome.type).toBe('success');
    return output;
  }

  it('reaches an allowed host by its name and nothing else when sandboxed', async () => {
    const out = await probe({
      ...realCliSettings(mock.url),
      sandbox: { bwrapPath: BWRAP, socatPath: SOCAT, allowHosts: [{ host: 'localhost', port: allowed.port }] },
    });
    expect(out).toContain('hello-from-allowed');
    expect(out).toContain('other-refused');
    expect(out).not.toContain('hello-from-other');
  }, 60_000);

  it('reaches neither when no host is allowed, and both unsandboxed', async () => {
    const closed = await probe({ ...realCliSettings(mock.url), sandbox: { bwrapPath: BWRAP, socatPath: SOCAT } });
    expect(closed).toContain('allowed-refused');
    expect(closed).toContain('other-refused');
    const open = await probe(realCliSettings(mock.url));
    expect(open).toContain('hello-from-allowed');
    expect(open).toContain('hello-from-other');
  }, 60_000);
});
