// A turn that leaves its workspace as it found it is not packed again at its commit: the
// tree's stamp (src/store/workspaceArchive.ts, treeStamp) taken when the workspace was
// prepared is compared with one taken at the commit (src/worker/commitAttempt.ts).
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createClient } from '../src/queue/client.js';
import { createStoreDb } from '../src/store/db.js';
import { workspaceDirName } from '../src/store/ids.js';
import { workspaceStamp, type PackOptions } from '../src/store/workspaceArchive.js';
import { restoreWorkspace } from '../src/store/workspaces.js';
import type { AttemptObserver } from '../src/worker/observer.js';
import { workspacePackOptions } from '../src/worker/prepareDisk.js';
import { createTestAgentq } from './helpers/agentq.js';
import { startWorker, stopWorkers } from './helpers/workers.js';

const OPTIONS: PackOptions = { maxBytes: 1 << 20, maxEntries: 1000, exclude: ['node_modules'] };

describe('the workspace stamp', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'agentq-stamp-'));
    mkdirSync(path.join(dir, 'src', 'deep'), { recursive: true });
    mkdirSync(path.join(dir, 'node_modules', 'pkg'), { recursive: true });
    writeFileSync(path.join(dir, 'README.md'), 'hello\n');
    writeFileSync(path.join(dir, 'src', 'a.ts'), 'AAAA');
    writeFileSync(path.join(dir, 'src', 'deep', 'b.ts'), 'b');
    writeFileSync(path.join(dir, 'node_modules', 'pkg', 'index.js'), 'x');
    symlinkSync('README.md', path.join(dir, 'link'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /**
   * The stamp is taken before the CLI starts, tens of milliseconds before any write of the
   * run: modelled here by waiting until a fresh file's change time is past every one the
   * stamp saw (on kernels with coarse timestamps, up to a clock tick).
   */
  async function afterTheStamp(): Promise<void> {
    const probe = path.join(tmpdir(), `agentq-stamp-probe-${process.pid}`);
    const seen = lstatSync(path.join(dir, 'src', 'a.ts')).ctimeMs;
    const deadline = Date.now() + 2000;
    for (;;) {
      writeFileSync(probe, '');
      const now = lstatSync(probe).ctimeMs;
      rmSync(probe);
      if (now > seen) return;
      if (Date.now() > deadline) throw new Error('the clock did not move');
      await new Promise((r) => setImmediate(r));
    }
  }

  it('is the same for an untouched tree, and for changes only under an excluded name', async () => {
    const before = await workspaceStamp(dir, OPTIONS);
    expect(before).toMatch(/^[0-9a-f]{64}$/);
    expect(await workspaceStamp(dir, OPTIONS)).toBe(before);
    await afterTheStamp();
    writeFileSync(path.join(dir, 'node_modules', 'pkg', 'index.js'), 'changed');
    writeFileSync(path.join(dir, 'node_modules', 'new.js'), 'new');
    expect(await workspaceStamp(dir, OPTIONS)).toBe(before);
  });

  const changes: [string, () => void][] = [
    ['a file rewritten with content of the same size', () => writeFileSync(path.join(dir, 'src', 'a.ts'), 'BBBB')],
    ['a file rewritten and its times set back', () => {
      const st = lstatSync(path.join(dir, 'src', 'a.ts'));
      writeFileSync(path.join(dir, 'src', 'a.ts'), 'CCCC');
      utimesSync(path.join(dir, 'src', 'a.ts'), st.atime, st.mtime);
    }],
    ['a file appended to', () => writeFileSync(path.join(dir, 'src', 'deep', 'b.ts'), 'bb')],
    ['a file added', () => writeFileSync(path.join(dir, 'src', 'c.ts'), '')],
    ['a file removed', () => unlinkSync(path.join(dir, 'src', 'deep', 'b.ts'))],
    ['a file renamed', () => renameSync(path.join(dir, 'src', 'a.ts'), path.join(dir, 'src', 'z.ts'))],
    ['a file replaced by another of the same content', () => {
      writeFileSync(path.join(dir, 'src', 'tmp'), 'AAAA');
      renameSync(path.join(dir, 'src', 'tmp'), path.join(dir, 'src', 'a.ts'));
    }],
    ['a file made executable', () => chmodSync(path.join(dir, 'src', 'a.ts'), 0o755)],
    ['a link pointed elsewhere', () => {
      unlinkSync(path.join(dir, 'link'));
      symlinkSync('src/a.ts', path.join(dir, 'link'));
    }],
    ['an empty directory added', () => mkdirSync(path.join(dir, 'empty'))],
  ];
  it.each(changes)('changes when %s', async (_name, change) => {
    const before = await workspaceStamp(dir, OPTIONS);
    await afterTheStamp();
    change();
    expect(await workspaceStamp(dir, OPTIONS)).not.toBe(before);
  });

  it('is undefined past a cap (the pack then says why), and for no directory it is that of an empty one', async () => {
    expect(await workspaceStamp(dir, { ...OPTIONS, maxEntries: 3 })).toBeUndefined();
    expect(await workspaceStamp(dir, { ...OPTIONS, maxBytes: 5 })).toBeUndefined();
    const empty = path.join(dir, 'empty');
    mkdirSync(empty);
    expect(await workspaceStamp(path.join(dir, 'absent'), OPTIONS)).toBe(await workspaceStamp(empty, OPTIONS));
  });
});

describe('a commit of an unchanged workspace', () => {
  afterEach(stopWorkers);

  it('packs nothing and keeps the stored archive; a changed one, or the first, is packed and stored, on this worker and on a fresh one', async () => {
    const t = await createTestAgentq();
    const client = createClient(t.config);
    const seen: ('unchanged' | 'packed')[] = [];
    const observeAttempt = (): AttemptObserver => ({ workspace: (r) => void seen.push(r) });
    try {
      const turn = async (prompt: string) => {
        const { turnId } = await client.enqueueTurn({ conversationId: 'ws', prompt });
        expect((await client.waitForTurn(turnId, 20_000)).status).toBe('succeeded');
      };
      const stored = async () => {
        const db = createStoreDb(t.database.pool);
        const [conv] = (await t.database.pool.query<{ id: string }>("select id from conversations where external_id = 'ws'")).rows;
        const out = mkdtempSync(path.join(t.root, 'restored-'));
        const r = await restoreWorkspace(db, conv!.id, out);
        return { sha: r.sha256, a: readFileSync(path.join(out, 'notes', 'a.txt'), 'utf8') };
      };
      const worker = await startWorker(t.config, { concurrency: 1, observeAttempt });
      // Nothing stored yet: packed (its empty archive marks the directory current here).
      await turn('hello');
      await turn('#fake {"workspaceWrite":{"notes/a.txt":"AAAA"}}\nwrite the notes');
      const first = await stored();
      expect(first.a).toBe('AAAA');
      // The local mark notes the stored digest and the stamp the pack saw: the next turn here
      // starts from it instead of walking the tree again before its run.
      const dir = path.join(t.config.workspaceRoot, workspaceDirName('ws'));
      const mark = path.join(t.config.worker.runsRoot, '.cache', 'workspaces', `${workspaceDirName('ws')}.sha256`);
      const expected = `${first.sha} ${await workspaceStamp(dir, workspacePackOptions(t.config))}`;
      // Written after the ack, which may come after waitForTurn saw the commit.
      const marked = () => (existsSync(mark) ? readFileSync(mark, 'utf8') : undefined);
      const deadline = Date.now() + 5000;
      while (marked() !== expected && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      expect(marked()).toBe(expected);
      await turn('only read them');
      expect(await stored()).toEqual(first);
      // The same size, other bytes: packed.
      await turn('#fake {"workspaceWrite":{"notes/a.txt":"BBBB"}}\nrewrite them');
      const third = await stored();
      expect(third.a).toBe('BBBB');
      expect(third.sha).not.toBe(first.sha);
      expect(seen).toEqual(['packed', 'packed', 'unchanged', 'packed']);
      await worker.stop();
      // A worker with other disks restores the workspace and finds it unchanged at its commit.
      const other = { ...t.config, workspaceRoot: path.join(t.root, 'other-ws'), worker: { ...t.config.worker, runsRoot: path.join(t.root, 'other-runs') } };
      await startWorker(other, { concurrency: 1, observeAttempt });
      await turn('read them again');
      expect(await stored()).toEqual(third);
      expect(seen).toEqual(['packed', 'packed', 'unchanged', 'packed', 'unchanged']);
    } finally {
      await stopWorkers();
      await client.close();
      await t.cleanup();
    }
  });
});
