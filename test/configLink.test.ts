// The unsandboxed CLI's stable config path (src/worker/configLink.ts): a link re-pointed
// at each attempt's directory, and no CLI of an earlier attempt left writing through it.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createClient } from '../src/queue/client.js';
import { workspaceDirName } from '../src/store/ids.js';
import { CONVERSATION_LINK_VAR, linkMark } from '../src/runner/processTree.js';
import { configLinkPath, pointConfigLink } from '../src/worker/configLink.js';
import { createTestAgentq } from './helpers/agentq.js';
import { readFakeCliLog } from './helpers/fakeCliLog.js';
import { startWorker, stopWorkers } from './helpers/workers.js';
import { tempDirs } from './helpers/files.js';
import { isAlive, waitUntil } from './helpers/processes.js';

const dirs = tempDirs();
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  dirs.cleanup();
});

/** Where the link leads (it holds a path relative to its own directory). */
function leadsTo(link: string): string {
  return path.resolve(path.dirname(link), readlinkSync(link));
}

/** A long-lived process whose environment names `configDir` as CLAUDE_CONFIG_DIR (as a CLI and its tools have it). */
function usingConfigDir(configDir: string, env: Record<string, string> = {}): number {
  const child = spawn('sleep', ['60'], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', CLAUDE_CONFIG_DIR: configDir, ...env }, stdio: 'ignore' });
  children.push(child);
  return child.pid!;
}

describe('the conversation config link', () => {
  it('is one path per conversation under the runs root', () => {
    expect(configLinkPath('/runs', 'tenant--conv')).toBe('/runs/.config-links/tenant--conv');
  });

  it('points at each attempt in turn, creating the attempt directory', async () => {
    const root = dirs.make('link');
    const link = configLinkPath(root, 'c1');
    const first = path.join(root, 'a1', 'config');
    expect(pointConfigLink(link, first)).toEqual([]);
    // Relative, so that it fits in the inode (a fast symlink: under 60 bytes).
    expect(readlinkSync(link)).toBe('../a1/config');
    expect(existsSync(first)).toBe(true);
    writeFileSync(path.join(first, 'marker'), 'one');
    // The attempt's directory was removed after it (the normal end): re-pointing kills nothing.
    rmSync(path.join(root, 'a1'), { recursive: true });
    const second = path.join(root, 'a2', 'config');
    expect(pointConfigLink(link, second)).toEqual([]);
    expect(leadsTo(link)).toBe(second);
    // A link an older worker wrote with an absolute path is read as well: it leads there already.
    rmSync(link);
    symlinkSync(second, link);
    expect(pointConfigLink(link, second)).toEqual([]);
    expect(readlinkSync(link)).toBe(second);
    rmSync(link);
    expect(pointConfigLink(link, second)).toEqual([]);
    // Pointing again at the same target changes nothing.
    expect(pointConfigLink(link, second)).toEqual([]);
    expect(leadsTo(link)).toBe(second);
  });

  it('kills what still uses the link for an earlier attempt whose directory is still there, and nothing else', async () => {
    const root = dirs.make('link-stale');
    const link = configLinkPath(root, 'c2');
    const first = path.join(root, 'a1', 'config');
    pointConfigLink(link, first);
    const stale = usingConfigDir(link);
    // Another conversation whose link name starts with this one's.
    const other = usingConfigDir(`${link}-other`);
    const unrelated = usingConfigDir(first);
    // A sandboxed run of the conversation: its config dir is the sandbox's fixed path, and it carries the link's mark.
    const sandboxed = usingConfigDir('/home/agent', { [CONVERSATION_LINK_VAR]: linkMark(link) });
    await waitUntil(() => [stale, other, unrelated, sandboxed].every(isAlive), 'the processes to start');
    const killed = pointConfigLink(link, path.join(root, 'a2', 'config'));
    expect(killed.sort()).toEqual([stale, sandboxed].sort());
    await waitUntil(() => !isAlive(stale) && !isAlive(sandboxed), 'the stale processes to die');
    expect(isAlive(other)).toBe(true);
    expect(isAlive(unrelated)).toBe(true);
    expect(leadsTo(link)).toBe(path.join(root, 'a2', 'config'));
  });

  it('replaces a directory found where the link belongs', async () => {
    const root = dirs.make('link-dir');
    const link = configLinkPath(root, 'c3');
    mkdirSync(path.join(link, 'projects'), { recursive: true });
    const target = path.join(root, 'a1', 'config');
    pointConfigLink(link, target);
    expect(leadsTo(link)).toBe(target);
    // The directory was moved aside and goes in the background.
    await waitUntil(() => readdirSync(path.dirname(link)).every((name) => !name.startsWith('c3.stale-')), 'the old directory to be removed');
    expect(readdirSync(path.dirname(link))).toEqual(['c3']);
  });

  it("a worker that lost the conversation after its last lease check does not start its CLI: the link leads to another attempt's directory", async () => {
    const t = await createTestAgentq({ AGENTQ_RETRY_BASE_MS: '50', AGENTQ_RETRY_MAX_MS: '100' });
    const client = createClient(t.config);
    try {
      const link = configLinkPath(t.config.worker.runsRoot, workspaceDirName('taken-over', 'default'));
      const theirs = dirs.make('other-attempt');
      let attempts = 0;
      // Right after its last check (the `prepare` phase ends there), another worker takes the
      // conversation over on this machine and points the link at its own attempt.
      await startWorker(t.config, {
        concurrency: 1,
        observeAttempt: () => ({
          phase: (phase) => {
            if (phase === 'prepare' && ++attempts === 1) pointConfigLink(link, theirs);
          },
        }),
      });
      const { turnId } = await client.enqueueTurn({ conversationId: 'taken-over', prompt: 'hello' });
      const done = await client.waitForTurn(turnId, 20_000);
      expect(done.status, JSON.stringify(done.error)).toBe('succeeded');
      // The first attempt's CLI never started (here its lease was still held, so the turn ran again).
      expect(attempts).toBe(2);
      expect(readFakeCliLog(t.logFile).filter((r) => r.event === 'start')).toHaveLength(1);
      expect(readdirSync(theirs)).toEqual([]);
    } finally {
      await stopWorkers();
      await client.close();
      await t.cleanup();
    }
  });
});
