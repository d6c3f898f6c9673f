// The one way the worker reads (or moves) what an agent could have written: its workspace,
// its config dir (session file, session folder, subagent transcripts, sidecars, saved tool
// outputs) and its tmp. Everything there is hostile input. A symbolic link may point at any
// file the worker can read (another conversation, the runs root, /etc/shadow, the
// worker's own /proc/<pid>/environ); a FIFO blocks a reader forever; a fan-out of link
// loops or a 10 GB sparse file exhausts a naive walk. So every read here:
// - follows no symbolic link at any component beneath its root,
// - opens regular files only (a FIFO, socket or device is never opened for reading),
// - stays beneath the root (relative paths of plain names, no `..`),
// - is bounded: bytes per file, and entries, depth and bytes per walk.
//
// Node has no openat(2). The same effect: each directory is held open (O_DIRECTORY |
// O_NOFOLLOW) and its child is opened through the magic link /proc/self/fd/<fd>/<name>,
// which the kernel resolves to that very directory, whatever is renamed or replaced
// meanwhile; O_NOFOLLOW then refuses a link as the child itself. A path checked first and
// opened later could be swapped for a link in between (the agent may run while the worker
// checkpoints); a held descriptor cannot. Linux only (/proc), like the sandbox.
import { constants, type BigIntStats, type Stats } from 'node:fs';
import { lstat, open, opendir, readlink, rename, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { AgentFileRefusedError } from '../errors.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
// O_NONBLOCK: should the entry have been swapped for a FIFO after it was checked, opening
// it returns at once (and fstat refuses it) instead of waiting for a writer.
const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;

/** Deepest directory level a walk descends to, when the caller sets none (the root's children are at depth 1). */
export const DEFAULT_MAX_DEPTH = 64;

/** Where a path the agent could have written is: a directory the worker made, and a path beneath it. */
export interface AgentPath {
  /** Trusted: the worker's own directory (its components are the worker's, not the agent's). */
  root: string;
  /** Posix-style path beneath `root`, of plain names; '' is the root itself. */
  rel: string;
}

export interface WalkLimits {
  /** Most entries (of any kind) the walk visits; one more refuses the walk. */
  maxEntries: number;
  /** Deepest level it descends to; deeper refuses the walk. */
  maxDepth?: number;
  /** Most bytes of regular files in all; more refuses the walk. */
  maxBytes: number;
}

export type EntryKind = 'file' | 'dir' | 'symlink' | 'other';

export interface TreeEntry {
  /** Posix path relative to the walked directory. */
  path: string;
  kind: EntryKind;
  /** Bytes (files; links: the target's length). */
  size: number;
  mtimeMs: number;
  /** Permission bits. */
  mode: number;
  /** Links: the target as written (never followed). */
  linkTarget?: string;
  /**
   * Files: opens the entry for reading (regular, and the same file that was listed), or
   * undefined when it is gone. Call it before the walk goes on.
   */
  open?: () => Promise<FileHandle | undefined>;
}

const via = (dir: FileHandle, name: string) => `/proc/self/fd/${dir.fd}/${name}`;

function splitRel(p: AgentPath): string[] {
  if (p.rel === '') return [];
  const parts = p.rel.split('/');
  for (const part of parts) {
    if (part === '' || part === '.' || part === '..' || part.includes('\0')) {
      throw new AgentFileRefusedError(p.rel, 'outside_root', 'not a relative path of plain names');
    }
  }
  return parts;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT';
}

/** ENOTDIR / ELOOP from an O_NOFOLLOW open: the name is a link (or not what was asked). */
function refusedOpen(rel: string, err: unknown): AgentFileRefusedError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'EMLINK') return new AgentFileRefusedError(rel, 'symlink', 'a symbolic link (or a path through one)');
  return undefined;
}

/** Opens the root itself. Its own components are trusted, but not a link as its last one. */
async function openRoot(root: string): Promise<FileHandle | undefined> {
  try {
    return await open(path.resolve(root), DIR_FLAGS);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw refusedOpen('', err) ?? err;
  }
}

/** Opens `names` one directory at a time beneath `dir`; undefined when one is absent. Every handle but the one returned is closed, `dir` included. */
async function descend(dir: FileHandle, names: readonly string[], rel: string): Promise<FileHandle | undefined> {
  let current = dir;
  for (const name of names) {
    let next: FileHandle;
    try {
      next = await open(via(current, name), DIR_FLAGS);
    } catch (err) {
      await current.close();
      if (isMissing(err)) return undefined;
      throw refusedOpen(rel, err) ?? err;
    }
    await current.close();
    current = next;
  }
  return current;
}

/** The directory that holds `p`, opened without following links, and the last name; undefined when absent. */
async function openParent(p: AgentPath): Promise<{ dir: FileHandle; name: string } | undefined> {
  const names = splitRel(p);
  const name = names.pop();
  if (name === undefined) throw new AgentFileRefusedError(p.rel, 'outside_root', 'the root itself is not a file');
  const root = await openRoot(p.root);
  if (!root) return undefined;
  const dir = await descend(root, names, p.rel);
  return dir && { dir, name };
}

function kindOf(st: Stats | BigIntStats): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

/**
 * Opens `name` in `dir` for reading if it is a regular file (the same one `expected`
 * describes, when given); undefined when it is gone. Never opens a link, FIFO or device.
 */
async function openRegular(dir: FileHandle, name: string, rel: string, expected?: Stats): Promise<FileHandle | undefined> {
  let st: Stats;
  try {
    st = expected ?? (await lstat(via(dir, name)));
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  if (!st.isFile()) {
    throw new AgentFileRefusedError(rel, st.isSymbolicLink() ? 'symlink' : 'not_regular', st.isSymbolicLink() ? 'a symbolic link' : `not a regular file (${kindOf(st)})`);
  }
  let fh: FileHandle;
  try {
    fh = await open(via(dir, name), FILE_FLAGS);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw refusedOpen(rel, err) ?? err;
  }
  const now = await fh.stat();
  if (!now.isFile() || now.ino !== st.ino || now.dev !== st.dev) {
    await fh.close();
    throw new AgentFileRefusedError(rel, 'not_regular', 'it was replaced while being opened');
  }
  return fh;
}

/**
 * Opens a regular file the agent could have written, for reading; undefined when it does
 * not exist. Refuses (AgentFileRefusedError) a link at any component beneath the root, a
 * FIFO, socket or device, and a file over `maxBytes`.
 */
export async function openAgentFile(p: AgentPath, maxBytes: number): Promise<FileHandle | undefined> {
  const parent = await openParent(p);
  if (!parent) return undefined;
  try {
    const fh = await openRegular(parent.dir, parent.name, p.rel);
    if (!fh) return undefined;
    const { size } = await fh.stat();
    if (size > maxBytes) {
      await fh.close();
      throw new AgentFileRefusedError(p.rel, 'too_large', `${size} bytes, over the cap of ${maxBytes}`, size);
    }
    return fh;
  } finally {
    await parent.dir.close();
  }
}

/** Reads up to `length` bytes at `position` (fewer at the end of the file). */
export async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let filled = 0;
  while (filled < length) {
    const { bytesRead } = await fh.read(buf, filled, length - filled, position + filled);
    if (bytesRead === 0) break;
    filled += bytesRead;
  }
  return filled === length ? buf : buf.subarray(0, filled);
}

/** The whole of a regular file the agent could have written (see openAgentFile); undefined when absent. */
export async function readAgentFile(p: AgentPath, maxBytes: number): Promise<Buffer | undefined> {
  const fh = await openAgentFile(p, maxBytes);
  if (!fh) return undefined;
  try {
    // One byte more than allowed tells a file that grew past the cap since it was opened.
    const data = await readAt(fh, 0, maxBytes + 1);
    if (data.length > maxBytes) throw new AgentFileRefusedError(p.rel, 'too_large', `over the cap of ${maxBytes} bytes`);
    return data;
  } finally {
    await fh.close();
  }
}

/** What is at `p`, without following a link anywhere beneath the root; undefined when nothing is. */
export async function agentPathKind(p: AgentPath): Promise<EntryKind | undefined> {
  const parent = await openParent(p).catch((err: unknown) => {
    if (err instanceof AgentFileRefusedError) return undefined;
    throw err;
  });
  if (!parent) return undefined;
  try {
    return kindOf(await lstat(via(parent.dir, parent.name)));
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  } finally {
    await parent.dir.close();
  }
}

/**
 * Moves a regular file the agent wrote to `dest` (a path of the worker's, on the same
 * filesystem), without following a link beneath the root. Returns false when there was
 * nothing to move; refuses anything but a regular file.
 */
export async function moveAgentFile(p: AgentPath, dest: string): Promise<boolean> {
  const parent = await openParent(p);
  if (!parent) return false;
  try {
    const fh = await openRegular(parent.dir, parent.name, p.rel);
    if (!fh) return false;
    await fh.close();
    // rename(2) moves the name itself and never follows it: at worst (swapped since the
    // check) a link lands at `dest`, and every reader there opens with O_NOFOLLOW.
    await rename(via(parent.dir, parent.name), dest);
    return true;
  } finally {
    await parent.dir.close();
  }
}

/**
 * Walks the directory at `p` depth-first, names sorted, yielding every entry (directories
 * before their contents) but those `exclude` matches, which are not descended into.
 * Links are yielded as links (never followed); FIFOs, sockets and devices as 'other'
 * (never opened). Yields nothing when the directory does not exist. Refuses the whole
 * walk (AgentFileRefusedError) past `limits`, before reading what lies beyond them.
 */
export async function* walkAgentTree(p: AgentPath, limits: WalkLimits, exclude?: (relPath: string) => boolean): AsyncGenerator<TreeEntry> {
  const root = await openRoot(p.root);
  if (!root) return;
  const top = await descend(root, splitRel(p), p.rel);
  if (!top) return;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  const counts = { entries: 0, bytes: 0 };
  const label = (rel: string) => (p.rel === '' ? rel : `${p.rel}/${rel}`);

  async function* visit(dir: FileHandle, relDir: string, depth: number): AsyncGenerator<TreeEntry> {
    const names: string[] = [];
    // Streamed, so a directory of millions of names is refused at the cap, not read whole.
    for await (const dirent of await opendir(`/proc/self/fd/${dir.fd}`, { bufferSize: 256 })) {
      if (++counts.entries > limits.maxEntries) {
        throw new AgentFileRefusedError(label(relDir), 'too_many_entries', `more than ${limits.maxEntries} entries`);
      }
      names.push(dirent.name);
    }
    for (const name of names.sort()) {
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      if (exclude?.(rel)) continue;
      let st: Stats;
      try {
        st = await lstat(via(dir, name));
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      const base = { path: rel, size: st.size, mtimeMs: st.mtimeMs, mode: st.mode & 0o7777 };
      switch (kindOf(st)) {
        case 'file':
          counts.bytes += st.size;
          if (counts.bytes > limits.maxBytes) {
            throw new AgentFileRefusedError(label(rel), 'too_large', `at least ${counts.bytes} bytes of files, over the cap of ${limits.maxBytes}`, counts.bytes);
          }
          yield { ...base, kind: 'file', open: () => openRegular(dir, name, label(rel), st) };
          break;
        case 'symlink': {
          let target: string;
          try {
            target = await readlink(via(dir, name));
          } catch (err) {
            if (isMissing(err)) continue;
            throw err;
          }
          yield { ...base, kind: 'symlink', linkTarget: target };
          break;
        }
        case 'dir': {
          if (depth + 1 > maxDepth) throw new AgentFileRefusedError(label(rel), 'too_deep', `deeper than ${maxDepth} levels`);
          let child: FileHandle;
          try {
            child = await open(via(dir, name), DIR_FLAGS);
          } catch (err) {
            // Gone, or swapped for a link since it was listed: not a directory to enter.
            if (isMissing(err) || refusedOpen(rel, err)) continue;
            throw err;
          }
          try {
            yield { ...base, kind: 'dir' };
            yield* visit(child, rel, depth + 1);
          } finally {
            await child.close();
          }
          break;
        }
        default:
          yield { ...base, kind: 'other' };
      }
    }
  }

  try {
    yield* visit(top, '', 0);
  } finally {
    await top.close();
  }
}

