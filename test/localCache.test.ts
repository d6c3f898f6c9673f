// What a worker keeps between turns (src/worker/localCache.ts): the directories it makes once,
// and makes again when something removed them while the worker ran.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LocalCache } from '../src/worker/localCache.js';

let root: string;
beforeEach(() => {
  root = mkdtempSync(path.join(tmpdir(), 'agentq-cache-'));
});
afterEach(() => {
  rmSync(root, { recursive: true, force: true });
});

/** A run's session file beneath its config dir, as the CLI leaves it. */
function sessionOfRun(run: string, content: string) {
  const configDir = path.join(root, run, 'config');
  mkdirSync(path.join(configDir, 'projects', 'p'), { recursive: true });
  writeFileSync(path.join(configDir, 'projects', 'p', 's.jsonl'), content);
  const bytes = Buffer.from(content);
  return {
    file: { root: configDir, rel: 'projects/p/s.jsonl' },
    head: { committedByteCount: bytes.length, committedTailSha256: createHash('sha256').update(bytes.subarray(-4096)).digest('hex') },
  };
}

describe('the local cache', () => {
  it('keeps a session file and gives it back only while it is exactly the committed head', async () => {
    const cache = new LocalCache(path.join(root, 'cache'), 1 << 20);
    const a = sessionOfRun('run-1', '{"n":1}\n{"n":2}\n');
    await cache.keepSession('conv', 's', a.file);
    const target = path.join(root, 'next', 's.jsonl');
    expect(await cache.takeSession('conv', 's', a.head, target)).toBe(true);
    expect(readFileSync(target, 'utf8')).toBe('{"n":1}\n{"n":2}\n');
    const b = sessionOfRun('run-2', '{"n":1}\n');
    await cache.keepSession('conv', 's', b.file);
    expect(await cache.takeSession('conv', 's', a.head, path.join(root, 'other', 's.jsonl'))).toBe(false);
  });

  it('makes its directories again when they were removed while the worker ran', async () => {
    const cache = new LocalCache(path.join(root, 'cache'), 1 << 20);
    await cache.keepSession('conv', 's', sessionOfRun('run-1', '{"n":1}\n').file);
    await cache.markWorkspace('ws', 'sha-1');
    rmSync(path.join(root, 'cache'), { recursive: true, force: true });
    const again = sessionOfRun('run-2', '{"n":1}\n{"n":2}\n');
    await cache.keepSession('conv', 's', again.file);
    await cache.markWorkspace('ws', 'sha-2');
    expect(existsSync(path.join(root, 'cache', 'sessions', 'conv.s.jsonl'))).toBe(true);
    expect(await cache.workspaceIsCurrent('ws', 'sha-2')).toEqual({ stamp: undefined });
    expect(await cache.takeSession('conv', 's', again.head, path.join(root, 'next', 's.jsonl'))).toBe(true);
  });

  it("notes a workspace's stamp with its digest, and gives it back only with that digest", async () => {
    const cache = new LocalCache(path.join(root, 'cache'), 1 << 20);
    const sha = 'a'.repeat(64);
    const stamp = 'b'.repeat(64);
    await cache.markWorkspace('ws', sha, stamp);
    expect(await cache.workspaceIsCurrent('ws', sha)).toEqual({ stamp });
    expect(await cache.workspaceIsCurrent('ws', 'c'.repeat(64))).toBeUndefined();
    expect(await cache.workspaceIsCurrent('ws', undefined)).toBeUndefined();
    await cache.unmarkWorkspace('ws');
    expect(await cache.workspaceIsCurrent('ws', sha)).toBeUndefined();
    // Anything longer than a digest and a stamp is not a marker.
    await cache.markWorkspace('ws', sha, `${stamp}x`);
    expect(await cache.workspaceIsCurrent('ws', sha)).toBeUndefined();
  });
});
