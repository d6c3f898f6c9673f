// The one module through which the worker reads what an agent wrote
// (src/agentFiles/agentTree.ts), against real files: links at every component, FIFOs,
// /proc files, sparse giants, loops, swaps in the middle of a walk.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { agentPathKind, moveAgentFile, openAgentFile, readAgentFile, walkAgentTree, type TreeEntry, type WalkLimits } from '../src/agentFiles/agentTree.js';
import { AgentFileRefusedError } from '../src/errors.js';
import { tempDirs } from './helpers/files.js';

const dirs = tempDirs();
afterEach(() => dirs.cleanup());

const BIG: WalkLimits = { maxEntries: 1_000_000, maxBytes: Number.MAX_SAFE_INTEGER };

/** A root the agent wrote, next to a secret it must never get the worker to read. */
function setup() {
  const base = dirs.make('agent-tree');
  const root = path.join(base, 'root');
  const outside = path.join(base, 'outside');
  mkdirSync(path.join(root, 'projects', 'p'), { recursive: true });
  mkdirSync(outside);
  writeFileSync(path.join(outside, 'secret.txt'), 'OUTSIDE-SECRET');
  writeFileSync(path.join(root, 'projects', 'p', 's.jsonl'), '{"ok":1}\n');
  return { root, outside };
}

async function refusal(p: Promise<unknown>): Promise<AgentFileRefusedError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(AgentFileRefusedError);
  return err as AgentFileRefusedError;
}

async function walk(root: string, rel = '', limits: WalkLimits = BIG): Promise<TreeEntry[]> {
  const out: TreeEntry[] = [];
  for await (const e of walkAgentTree({ root, rel }, limits)) out.push(e);
  return out;
}

describe('reading one file the agent wrote', () => {
  it('reads a regular file beneath the root, and says undefined for a missing one', async () => {
    const { root } = setup();
    expect((await readAgentFile({ root, rel: 'projects/p/s.jsonl' }, 100))?.toString()).toBe('{"ok":1}\n');
    expect(await readAgentFile({ root, rel: 'projects/p/none.jsonl' }, 100)).toBeUndefined();
    expect(await readAgentFile({ root, rel: 'projects/none/s.jsonl' }, 100)).toBeUndefined();
    expect(await agentPathKind({ root, rel: 'projects/p/s.jsonl' })).toBe('file');
    expect(await agentPathKind({ root, rel: 'projects/p/none' })).toBeUndefined();
  });

  it('refuses a link as the file, to a file outside, to /etc/shadow and to /proc/self/environ', async () => {
    const { root, outside } = setup();
    for (const [name, target] of [
      ['secret', path.join(outside, 'secret.txt')],
      ['shadow', '/etc/shadow'],
      ['environ', '/proc/self/environ'],
      ['relative', '../../../outside/secret.txt'],
    ] as const) {
      symlinkSync(target, path.join(root, 'projects', 'p', name));
      const err = await refusal(readAgentFile({ root, rel: `projects/p/${name}` }, 1 << 20));
      expect(err.reason).toBe('symlink');
      expect(err.message).not.toContain('OUTSIDE-SECRET');
      expect(await agentPathKind({ root, rel: `projects/p/${name}` })).toBe('symlink');
    }
  });

  it('refuses a link at any directory component on the way, even one that points back inside', async () => {
    const { root, outside } = setup();
    writeFileSync(path.join(outside, 's.jsonl'), 'OUTSIDE-SECRET');
    symlinkSync(outside, path.join(root, 'projects', 'q'));
    expect((await refusal(readAgentFile({ root, rel: 'projects/q/s.jsonl' }, 100))).reason).toBe('symlink');
    symlinkSync('p', path.join(root, 'projects', 'inside'));
    expect((await refusal(readAgentFile({ root, rel: 'projects/inside/s.jsonl' }, 100))).reason).toBe('symlink');
    // The kind probe does not follow it either: nothing is there as far as the worker is concerned.
    expect(await agentPathKind({ root, rel: 'projects/q/s.jsonl' })).toBeUndefined();
  });

  it('refuses a FIFO without opening it (a reader would block for ever), a socket and a directory', async () => {
    const { root } = setup();
    execFileSync('mkfifo', [path.join(root, 'fifo')]);
    expect((await refusal(openAgentFile({ root, rel: 'fifo' }, 100))).reason).toBe('not_regular');
    expect((await refusal(openAgentFile({ root, rel: 'projects' }, 100))).reason).toBe('not_regular');
    expect(await agentPathKind({ root, rel: 'fifo' })).toBe('other');
  });

  it('refuses a file over the cap unread: a 10 GB sparse file takes no time and no memory', async () => {
    const { root } = setup();
    const file = path.join(root, 'sparse');
    writeFileSync(file, '');
    truncateSync(file, 10 * 1024 ** 3);
    const err = await refusal(readAgentFile({ root, rel: 'sparse' }, 1 << 20));
    expect(err).toMatchObject({ reason: 'too_large', bytes: 10 * 1024 ** 3 });
  });

  it('refuses paths that leave the root: .., absolute parts, empty components', async () => {
    const { root } = setup();
    for (const rel of ['../outside/secret.txt', 'projects/../../outside/secret.txt', 'projects//p/s.jsonl', './projects/p/s.jsonl']) {
      expect((await refusal(readAgentFile({ root, rel }, 100))).reason, rel).toBe('outside_root');
    }
  });

  it('a file swapped for a link after it was listed is not read', async () => {
    const { root, outside } = setup();
    const file = path.join(root, 'projects', 'p', 's.jsonl');
    const entries = walkAgentTree({ root, rel: 'projects/p' }, BIG);
    const first = (await entries.next()).value as TreeEntry;
    expect(first.path).toBe('s.jsonl');
    renameSync(file, `${file}.old`);
    symlinkSync(path.join(outside, 'secret.txt'), file);
    expect((await refusal(Promise.resolve().then(() => first.open!()))).reason).toBe('symlink');
    await entries.return(undefined);
  });

  it('moves a regular file out, never a link', async () => {
    const { root, outside } = setup();
    const dest = path.join(dirs.make('dest'), 'kept');
    expect(await moveAgentFile({ root, rel: 'projects/p/s.jsonl' }, dest)).toBe(true);
    expect(readFileSync(dest, 'utf8')).toBe('{"ok":1}\n');
    symlinkSync(path.join(outside, 'secret.txt'), path.join(root, 'link'));
    expect((await refusal(moveAgentFile({ root, rel: 'link' }, `${dest}2`))).reason).toBe('symlink');
    expect(existsSync(`${dest}2`)).toBe(false);
    expect(existsSync(path.join(outside, 'secret.txt'))).toBe(true);
    expect(await moveAgentFile({ root, rel: 'none' }, `${dest}3`)).toBe(false);
  });
});

describe('walking a tree the agent wrote', () => {
  it('yields entries in sorted order, links as links (never followed), FIFOs as other (never opened)', async () => {
    const { root, outside } = setup();
    symlinkSync(outside, path.join(root, 'projects', 'p', 'dir-link'));
    symlinkSync('/etc', path.join(root, 'etc'));
    execFileSync('mkfifo', [path.join(root, 'projects', 'fifo')]);
    const entries = await walk(root);
    expect(entries.map((e) => [e.path, e.kind, e.linkTarget])).toEqual([
      ['etc', 'symlink', '/etc'],
      ['projects', 'dir', undefined],
      ['projects/fifo', 'other', undefined],
      ['projects/p', 'dir', undefined],
      ['projects/p/dir-link', 'symlink', outside],
      ['projects/p/s.jsonl', 'file', undefined],
    ]);
  });

  it('a fan-out of link loops is a handful of links, not an endless walk', async () => {
    const { root } = setup();
    const loops = path.join(root, 'loops');
    mkdirSync(loops);
    for (let i = 0; i < 50; i++) symlinkSync(i % 2 ? '.' : '..', path.join(loops, `l${i}`));
    const entries = await walk(root, 'loops');
    expect(entries).toHaveLength(50);
    expect(entries.every((e) => e.kind === 'symlink')).toBe(true);
  });

  it('refuses past its caps: entries, depth and bytes, naming which', async () => {
    const { root } = setup();
    const wide = path.join(root, 'wide');
    mkdirSync(wide);
    for (let i = 0; i < 30; i++) writeFileSync(path.join(wide, `f${i}`), 'x');
    expect((await refusal(walk(root, 'wide', { maxEntries: 20, maxBytes: 1 << 20 }))).reason).toBe('too_many_entries');
    let deep = path.join(root, 'deep');
    for (let i = 0; i < 10; i++) deep = path.join(deep, 'd');
    mkdirSync(deep, { recursive: true });
    expect((await refusal(walk(root, 'deep', { maxEntries: 100, maxBytes: 1 << 20, maxDepth: 5 }))).reason).toBe('too_deep');
    writeFileSync(path.join(root, 'projects', 'big'), Buffer.alloc(5000));
    expect((await refusal(walk(root, 'projects', { maxEntries: 100, maxBytes: 4096 }))).reason).toBe('too_large');
  });

  it('a directory swapped for a link while the walk is inside it goes on reading the directory it opened', async () => {
    const { root, outside } = setup();
    const sub = path.join(root, 'b');
    mkdirSync(sub);
    writeFileSync(path.join(sub, 'inner.txt'), 'INNER');
    writeFileSync(path.join(root, 'a.txt'), 'A');
    const seen: string[] = [];
    for await (const e of walkAgentTree({ root, rel: '' }, BIG)) {
      seen.push(`${e.path}:${e.kind}`);
      if (e.path === 'b') {
        // The agent moves the directory away and puts a link to the host in its place.
        renameSync(sub, path.join(root, 'moved'));
        symlinkSync(outside, sub);
      }
      if (e.kind === 'file') {
        const fh = e.open!()!;
        const text = (await fh.read(0, fh.size)).toString();
        fh.close();
        expect(text).not.toContain('OUTSIDE-SECRET');
      }
    }
    expect(seen).toContain('b/inner.txt:file');
    expect(seen.some((s) => s.includes('secret'))).toBe(false);
  });
});
