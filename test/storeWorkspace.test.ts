import { chmodSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { eq } from 'drizzle-orm';
import { Header, Parser, type ReadEntry } from 'tar';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { WorkspaceTooLargeError } from '../src/errors.js';
import { ensureConversation } from '../src/store/conversations.js';
import { workspaces } from '../src/store/schema.js';
import { excludeMatcher, packWorkspace, unpackWorkspace } from '../src/store/workspaceArchive.js';
import { restoreWorkspace, storeWorkspace } from '../src/store/workspaces.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { tempDirs } from './helpers/files.js';

let t: TestDatabase;
const dirs = tempDirs();
const NO_EXCLUDES = { maxBytes: 10 * 1024 * 1024, exclude: [] as string[] };

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});
afterEach(() => dirs.cleanup());

function write(root: string, rel: string, content: string | Buffer) {
  const file = path.join(root, rel);
  mkdirSync(path.dirname(file), { recursive: true });
  writeFileSync(file, content);
}

/** Every entry of a gzip tar: path, type, link target. */
async function listArchive(archive: Buffer): Promise<{ path: string; type: string; linkpath: string | undefined }[]> {
  const entries: { path: string; type: string; linkpath: string | undefined }[] = [];
  await new Promise<void>((resolve, reject) => {
    const parser = new Parser({
      onReadEntry: (e: ReadEntry) => {
        entries.push({ path: e.path.replace(/\/$/, ''), type: e.type, linkpath: e.linkpath });
        e.resume();
      },
    });
    parser.on('error', reject);
    parser.on('end', () => resolve());
    parser.end(archive);
  });
  return entries;
}

/** A workspace with nested dirs, an empty dir, binary and executable files, and symlinks in and out. */
function sampleWorkspace() {
  const outside = dirs.make('outside');
  write(outside, 'secret.txt', 'TOP-SECRET-OUTSIDE-CONTENT');
  mkdirSync(path.join(outside, 'dir'));
  write(outside, 'dir/also-secret.txt', 'ANOTHER-SECRET');
  const ws = path.join(dirs.make('ws-parent'), 'ws');
  write(ws, 'README.md', '# hello\n');
  write(ws, 'src/a/b/deep.ts', 'export const deep = 1;\n');
  write(ws, 'data/blob.bin', Buffer.from([0, 1, 2, 255, 254, 0x0a, 0x0d]));
  write(ws, 'bin/run.sh', '#!/bin/sh\necho hi\n');
  chmodSync(path.join(ws, 'bin/run.sh'), 0o755);
  mkdirSync(path.join(ws, 'empty'));
  symlinkSync('src/a/b/deep.ts', path.join(ws, 'link-inside'));
  symlinkSync('src', path.join(ws, 'link-dir'));
  symlinkSync(path.join(outside, 'secret.txt'), path.join(ws, 'link-outside-abs'));
  symlinkSync(path.join(outside, 'dir'), path.join(ws, 'link-outside-dir'));
  symlinkSync('../../outside-relative', path.join(ws, 'src/link-outside-rel'));
  return { ws, outside };
}

describe('packWorkspace / unpackWorkspace', () => {
  it('archives nested dirs and files, and symlinks as links whose targets are never read', async () => {
    const { ws, outside } = sampleWorkspace();
    const packed = await packWorkspace(ws, NO_EXCLUDES);
    const entries = await listArchive(packed.archive);
    const byPath = new Map(entries.map((e) => [e.path, e]));
    expect([...byPath.keys()].sort()).toEqual(
      [
        'README.md',
        'bin',
        'bin/run.sh',
        'data',
        'data/blob.bin',
        'empty',
        'link-dir',
        'link-inside',
        'link-outside-abs',
        'link-outside-dir',
        'src',
        'src/a',
        'src/a/b',
        'src/a/b/deep.ts',
        'src/link-outside-rel',
      ].sort(),
    );
    expect(byPath.get('link-inside')).toMatchObject({ type: 'SymbolicLink', linkpath: 'src/a/b/deep.ts' });
    expect(byPath.get('link-dir')).toMatchObject({ type: 'SymbolicLink', linkpath: 'src' });
    expect(byPath.get('link-outside-abs')).toMatchObject({ type: 'SymbolicLink', linkpath: path.join(outside, 'secret.txt') });
    expect(byPath.get('link-outside-dir')).toMatchObject({ type: 'SymbolicLink' });
    const tarBytes = gunzipSync(packed.archive).toString('latin1');
    expect(tarBytes).not.toContain('TOP-SECRET-OUTSIDE-CONTENT');
    expect(tarBytes).not.toContain('ANOTHER-SECRET');
    expect(packed.fileCount).toBe(9);
  });

  it('restores files, modes and inside links exactly, and refuses links that point outside', async () => {
    const { ws } = sampleWorkspace();
    const packed = await packWorkspace(ws, NO_EXCLUDES);
    const target = path.join(dirs.make('restore'), 'ws');
    const { refused } = await unpackWorkspace(packed.archive, target);
    expect(refused.map((r) => r.path).sort()).toEqual(['link-outside-abs', 'link-outside-dir', 'src/link-outside-rel']);
    for (const rel of ['README.md', 'src/a/b/deep.ts', 'data/blob.bin', 'bin/run.sh']) {
      expect(readFileSync(path.join(target, rel)).equals(readFileSync(path.join(ws, rel)))).toBe(true);
    }
    expect(statSync(path.join(target, 'bin/run.sh')).mode & 0o777).toBe(0o755);
    expect(statSync(path.join(target, 'empty')).isDirectory()).toBe(true);
    expect(readlinkSync(path.join(target, 'link-inside'))).toBe('src/a/b/deep.ts');
    expect(readlinkSync(path.join(target, 'link-dir'))).toBe('src');
    expect(existsSync(path.join(target, 'link-outside-abs'))).toBe(false);
    expect(() => lstatSync(path.join(target, 'link-outside-dir'))).toThrow();
  });

  it('an unchanged tree packs to the same bytes', async () => {
    const { ws } = sampleWorkspace();
    const a = await packWorkspace(ws, NO_EXCLUDES);
    const b = await packWorkspace(ws, NO_EXCLUDES);
    expect(b.sha256).toBe(a.sha256);
    expect(b.archive.equals(a.archive)).toBe(true);
  });

  it('leaves out excluded names at any depth and excluded path globs, without descending into them', async () => {
    const ws = dirs.make('ws-exclude');
    write(ws, 'keep.ts', 'keep');
    write(ws, 'node_modules/pkg/index.js', 'x');
    write(ws, 'packages/app/node_modules/dep/index.js', 'x');
    write(ws, 'logs/run.log', 'x');
    write(ws, 'build/tmp/cache.bin', 'x');
    write(ws, 'build/out.js', 'keep');
    write(ws, '.git/HEAD', 'ref: refs/heads/main\n');
    const packed = await packWorkspace(ws, { maxBytes: 1e6, exclude: ['node_modules', '*.log', 'build/tmp'] });
    const paths = (await listArchive(packed.archive)).map((e) => e.path).sort();
    expect(paths).toEqual(['.git', '.git/HEAD', 'build', 'build/out.js', 'keep.ts', 'logs', 'packages', 'packages/app'].sort());
  });

  it('matches globs: * within a segment, ** across segments', () => {
    const m = excludeMatcher(['*.tmp', 'dist/**/*.map', 'cache/']);
    expect(m('a/b/x.tmp')).toBe(true);
    expect(m('dist/a/b/c.map')).toBe(true);
    expect(m('dist/c.map')).toBe(true);
    expect(m('src/c.map')).toBe(false);
    expect(m('deep/cache')).toBe(true);
    expect(m('cachex')).toBe(false);
  });

  it('a file over the cap fails with the size and the cap, and nothing is stored', async () => {
    const { id } = await ensureConversation(t.db, { externalId: 'ws-too-large' });
    const ws = dirs.make('ws-large');
    write(ws, 'small.txt', 'ok');
    write(ws, 'big.bin', Buffer.alloc(5000, 7));
    const err = await packWorkspace(ws, { maxBytes: 4096, exclude: [] })
      .then((p) => storeWorkspace(t.db, id, p))
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkspaceTooLargeError);
    expect(err).toMatchObject({ name: 'WorkspaceTooLargeError', maxBytes: 4096, sizeBytes: 5000 });
    expect((err as Error).message).toMatch(/over the cap of 4096/);
    expect(await t.db.select().from(workspaces).where(eq(workspaces.conversationId, id))).toEqual([]);
  });

  it('refuses archive entries that escape the target: absolute paths, .., links outside, devices', async () => {
    const parent = dirs.make('restore-evil');
    const target = path.join(parent, 'ws');
    const blocks: Buffer[] = [];
    const entry = (data: { path: string; type: 'File' | 'SymbolicLink' | 'Link' | 'CharacterDevice'; linkpath?: string }, body = '') => {
      const header = new Header({ ...data, mode: 0o644, size: Buffer.byteLength(body), mtime: new Date(0) });
      const block = Buffer.alloc(512);
      header.encode(block, 0);
      blocks.push(block);
      if (body) {
        const padded = Buffer.alloc(Math.ceil(Buffer.byteLength(body) / 512) * 512);
        padded.write(body);
        blocks.push(padded);
      }
    };
    entry({ path: 'ok.txt', type: 'File' }, 'fine');
    entry({ path: `${parent}/abs-escape.txt`, type: 'File' }, 'absolute');
    entry({ path: '../dotdot-escape.txt', type: 'File' }, 'dotdot');
    entry({ path: 'sub/../../dotdot2.txt', type: 'File' }, 'dotdot2');
    entry({ path: 'sym-abs', type: 'SymbolicLink', linkpath: '/etc' });
    entry({ path: 'sym-rel', type: 'SymbolicLink', linkpath: '../..' });
    entry({ path: 'hard-out', type: 'Link', linkpath: '../outside.txt' });
    entry({ path: 'dev', type: 'CharacterDevice' });
    entry({ path: 'sym-ok', type: 'SymbolicLink', linkpath: 'ok.txt' });
    blocks.push(Buffer.alloc(1024));
    const archive = gzipSync(Buffer.concat(blocks));

    const { refused } = await unpackWorkspace(archive, target);
    expect(Object.fromEntries(refused.filter((r) => r.path).map((r) => [r.path, r.reason]))).toEqual({
      [`${parent}/abs-escape.txt`]: 'absolute path',
      '../dotdot-escape.txt': 'path contains ..',
      'sub/../../dotdot2.txt': 'path contains ..',
      'sym-abs': 'SymbolicLink to an absolute path',
      'sym-rel': 'SymbolicLink pointing outside the workspace',
      'hard-out': 'Link pointing outside the workspace',
      dev: 'entry type CharacterDevice',
    });
    expect(readdirSync(parent)).toEqual(['ws']);
    expect(readdirSync(target).sort()).toEqual(['ok.txt', 'sym-ok']);
    expect(readFileSync(path.join(target, 'ok.txt'), 'utf8')).toBe('fine');
  });

  it('refuses to restore into a directory that is not empty', async () => {
    const { ws } = sampleWorkspace();
    const packed = await packWorkspace(ws, NO_EXCLUDES);
    const target = dirs.make('restore-busy');
    write(target, 'leftover.txt', 'x');
    await expect(unpackWorkspace(packed.archive, target)).rejects.toMatchObject({ name: 'StoreInputError', field: 'dir' });
  });
});

describe('storeWorkspace / restoreWorkspace', () => {
  it('writes only when the digest changed, and restores the latest archive', async () => {
    const { id } = await ensureConversation(t.db, { externalId: 'ws-store' });
    const ws = dirs.make('ws-store');
    write(ws, 'notes/a.txt', 'first');
    const first = await packWorkspace(ws, NO_EXCLUDES);
    expect(await storeWorkspace(t.db, id, first)).toEqual({ written: true });
    const [row1] = await t.db.select().from(workspaces).where(eq(workspaces.conversationId, id));
    expect(await storeWorkspace(t.db, id, await packWorkspace(ws, NO_EXCLUDES))).toEqual({ written: false });
    const [row2] = await t.db.select().from(workspaces).where(eq(workspaces.conversationId, id));
    expect(row2?.updatedAt).toEqual(row1?.updatedAt);

    write(ws, 'notes/b.txt', 'second');
    const second = await packWorkspace(ws, NO_EXCLUDES);
    expect(second.sha256).not.toBe(first.sha256);
    expect(await storeWorkspace(t.db, id, second)).toEqual({ written: true });
    const [row3] = await t.db.select().from(workspaces).where(eq(workspaces.conversationId, id));
    expect(row3).toMatchObject({ sha256: second.sha256, sizeBytes: second.archive.length, fileCount: 2 });

    const target = path.join(dirs.make('ws-restored'), 'ws');
    expect(await restoreWorkspace(t.db, id, target)).toEqual({ restored: true, sha256: second.sha256, refused: [] });
    expect(readFileSync(path.join(target, 'notes/a.txt'), 'utf8')).toBe('first');
    expect(readFileSync(path.join(target, 'notes/b.txt'), 'utf8')).toBe('second');
  });

  it('restoring a conversation without a stored workspace writes nothing', async () => {
    const { id } = await ensureConversation(t.db, { externalId: 'ws-none' });
    const target = path.join(dirs.make('ws-none'), 'ws');
    expect(await restoreWorkspace(t.db, id, target)).toEqual({ restored: false, sha256: null, refused: [] });
    expect(existsSync(target)).toBe(false);
  });

  it('an empty workspace stores an empty archive and restores to an empty directory', async () => {
    const { id } = await ensureConversation(t.db, { externalId: 'ws-empty' });
    const packed = await packWorkspace(dirs.make('ws-empty'), NO_EXCLUDES);
    expect(packed.archive.length).toBe(0);
    await storeWorkspace(t.db, id, packed);
    const target = path.join(dirs.make('ws-empty-restore'), 'ws');
    expect((await restoreWorkspace(t.db, id, target)).restored).toBe(true);
    expect(readdirSync(target)).toEqual([]);
  });
});
