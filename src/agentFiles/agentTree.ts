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
import { closeSync, constants, fstatSync, lstatSync, openSync, opendirSync, read, readlinkSync, readSync, renameSync, type Stats } from 'node:fs';
import { setImmediate as nextTick } from 'node:timers/promises';
import { AgentFileRefusedError } from '../errors.js';

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW, O_NONBLOCK } = constants;
/** Opens a directory, never through a link. */
export const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
// O_NONBLOCK: should the entry have been swapped for a FIFO after it was checked, opening
// it returns at once (and fstat refuses it) instead of waiting for a writer.
const FILE_FLAGS = O_RDONLY | O_NOFOLLOW | O_NONBLOCK;
/** A walk lets the event loop run after this many entries (its metadata calls are synchronous). */
export const ENTRIES_PER_TICK = 256;

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
  /** When the inode last changed (any write, chmod, rename onto it): the agent cannot set it. */
  ctimeMs: number;
  ino: number;
  /** Permission bits. */
  mode: number;
  /** Links: the target as written (never followed). */
  linkTarget?: string;
  /**
   * Files: opens the entry for reading (regular, and the same file that was listed), or
   * undefined when it is gone. Call it before the walk goes on.
   */
  open?: () => AgentFile | undefined;
}

/** Reads of at most this many bytes are made on the calling thread (AgentFile.read). */
export const SYNC_READ_MAX_BYTES = 64 * 1024;

/** A regular file the agent wrote, open for reading. Its metadata was read when it was opened. */
export class AgentFile {
  private fd: number | undefined;

  constructor(
    fd: number,
    /** Bytes when it was opened (it may grow or shrink since: the agent may still run). */
    readonly size: number,
  ) {
    this.fd = fd;
  }

  /**
   * Up to `length` bytes at `position` (fewer at the end of the file). Off the main thread,
   * unless at most SYNC_READ_MAX_BYTES are asked for: a turn's few KiB of new session lines
   * are in the page cache (the CLI just wrote them), and each hop to the thread pool and back
   * cost more than the read itself on a busy machine (the commit read its file in two such
   * hops, ~2 ms in all on the 2-core machine of docs/benchmarks.md). The file is regular
   * (openRegular refuses anything else), so the read cannot wait on a writer.
   */
  async read(position: number, length: number): Promise<Buffer> {
    const buf = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const n =
        length <= SYNC_READ_MAX_BYTES
          ? readSync(this.handle(), buf, filled, length - filled, position + filled)
          : await new Promise<number>((resolve, reject) =>
              read(this.handle(), buf, filled, length - filled, position + filled, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead))),
            );
      if (n === 0) break;
      filled += n;
    }
    return filled === length ? buf : buf.subarray(0, filled);
  }

  /** Idempotent. Not while a read is in flight. */
  close(): void {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
  }

  private handle(): number {
    if (this.fd === undefined) throw new Error('the file is closed');
    return this.fd;
  }
}

/** The child `name` of the directory held open as `dir`, whatever was renamed or replaced since it was opened. */
export const via = (dir: number, name: string) => `/proc/self/fd/${dir}/${name}`;

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
  return (err as NodeJS.ErrnoException).code === 'ENOENT';
}

/** ENOTDIR / ELOOP from an O_NOFOLLOW open: the name is a link (or not what was asked). */
function refusedOpen(rel: string, err: unknown): AgentFileRefusedError | undefined {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ELOOP' || code === 'ENOTDIR' || code === 'EMLINK') return new AgentFileRefusedError(rel, 'symlink', 'a symbolic link (or a path through one)');
  return undefined;
}

// The metadata calls below are synchronous on purpose: each is a few microseconds of
// local syscall, where a promise would cost a thread-pool round trip (tens of
// microseconds under load) for every component of every path, at every checkpoint.

/** Opens the root itself. Its own components are trusted, but not a link as its last one. */
function openRoot(root: string): number | undefined {
  try {
    return openSync(root, DIR_FLAGS);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw refusedOpen('', err) ?? err;
  }
}

/** Opens `names` one directory at a time beneath `dir`; undefined when one is absent. Every fd but the one returned is closed, `dir` included. */
function descend(dir: number, names: readonly string[], rel: string): number | undefined {
  let current = dir;
  for (const name of names) {
    let next: number;
    try {
      next = openSync(via(current, name), DIR_FLAGS);
    } catch (err) {
      closeSync(current);
      if (isMissing(err)) return undefined;
      throw refusedOpen(rel, err) ?? err;
    }
    closeSync(current);
    current = next;
  }
  return current;
}

/** The directory that holds `p`, opened without following links, and the last name; undefined when absent. */
function openParent(p: AgentPath): { dir: number; name: string } | undefined {
  const names = splitRel(p);
  const name = names.pop();
  if (name === undefined) throw new AgentFileRefusedError(p.rel, 'outside_root', 'the root itself is not a file');
  const root = openRoot(p.root);
  if (root === undefined) return undefined;
  const dir = descend(root, names, p.rel);
  return dir === undefined ? undefined : { dir, name };
}

function kindOf(st: Stats): EntryKind {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

/**
 * Opens `name` in `dir` for reading if it is a regular file (the same one `expected`
 * describes, when given); undefined when it is gone. Never opens a link, FIFO or device.
 */
function openRegular(dir: number, name: string, rel: string, expected?: Stats): AgentFile | undefined {
  let st: Stats;
  try {
    st = expected ?? lstatSync(via(dir, name));
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
  if (!st.isFile()) {
    throw new AgentFileRefusedError(rel, st.isSymbolicLink() ? 'symlink' : 'not_regular', st.isSymbolicLink() ? 'a symbolic link' : `not a regular file (${kindOf(st)})`);
  }
  let fd: number;
  try {
    fd = openSync(via(dir, name), FILE_FLAGS);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw refusedOpen(rel, err) ?? err;
  }
  const now = fstatSync(fd);
  if (!now.isFile() || now.ino !== st.ino || now.dev !== st.dev) {
    closeSync(fd);
    throw new AgentFileRefusedError(rel, 'not_regular', 'it was replaced while being opened');
  }
  return new AgentFile(fd, now.size);
}

/**
 * Opens a regular file the agent could have written, for reading; undefined when it does
 * not exist. Refuses (AgentFileRefusedError) a link at any component beneath the root, a
 * FIFO, socket or device, and a file over `maxBytes`.
 */
export async function openAgentFile(p: AgentPath, maxBytes: number): Promise<AgentFile | undefined> {
  const parent = openParent(p);
  if (!parent) return undefined;
  try {
    const file = openRegular(parent.dir, parent.name, p.rel);
    if (file && file.size > maxBytes) {
      file.close();
      throw new AgentFileRefusedError(p.rel, 'too_large', `${file.size} bytes, over the cap of ${maxBytes}`, file.size);
    }
    return file;
  } finally {
    closeSync(parent.dir);
  }
}

/** The whole of a regular file the agent could have written (see openAgentFile); undefined when absent. */
export async function readAgentFile(p: AgentPath, maxBytes: number): Promise<Buffer | undefined> {
  const file = await openAgentFile(p, maxBytes);
  if (!file) return undefined;
  try {
    // One byte more than allowed tells a file that grew past the cap since it was opened.
    const data = await file.read(0, maxBytes + 1);
    if (data.length > maxBytes) throw new AgentFileRefusedError(p.rel, 'too_large', `over the cap of ${maxBytes} bytes`);
    return data;
  } finally {
    file.close();
  }
}

/** What is at `p`, without following a link anywhere beneath the root; undefined when nothing is. */
export async function agentPathKind(p: AgentPath): Promise<EntryKind | undefined> {
  let parent;
  try {
    parent = openParent(p);
  } catch (err) {
    if (err instanceof AgentFileRefusedError) return undefined;
    throw err;
  }
  if (!parent) return undefined;
  try {
    return kindOf(lstatSync(via(parent.dir, parent.name)));
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  } finally {
    closeSync(parent.dir);
  }
}

/**
 * Moves a regular file the agent wrote to `dest` (a path of the worker's, on the same
 * filesystem), without following a link beneath the root. Returns false when there was
 * nothing to move; refuses anything but a regular file.
 */
export async function moveAgentFile(p: AgentPath, dest: string): Promise<boolean> {
  const parent = openParent(p);
  if (!parent) return false;
  try {
    const file = openRegular(parent.dir, parent.name, p.rel);
    if (!file) return false;
    file.close();
    // rename(2) moves the name itself and never follows it: at worst (swapped since the
    // check) a link lands at `dest`, and every reader there opens with O_NOFOLLOW.
    renameSync(via(parent.dir, parent.name), dest);
    return true;
  } finally {
    closeSync(parent.dir);
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
  const root = openRoot(p.root);
  if (root === undefined) return;
  const top = descend(root, splitRel(p), p.rel);
  if (top === undefined) return;
  const maxDepth = limits.maxDepth ?? DEFAULT_MAX_DEPTH;
  const counts = { entries: 0, bytes: 0 };
  const label = (rel: string) => (p.rel === '' ? rel : `${p.rel}/${rel}`);

  /** The names in `dir`, read a few at a time so that a directory of millions is refused at the cap, not read whole. */
  const list = (dir: number, relDir: string): string[] => {
    const names: string[] = [];
    const d = opendirSync(`/proc/self/fd/${dir}`, { bufferSize: 256 });
    try {
      for (let dirent = d.readSync(); dirent !== null; dirent = d.readSync()) {
        if (++counts.entries > limits.maxEntries) {
          throw new AgentFileRefusedError(label(relDir), 'too_many_entries', `more than ${limits.maxEntries} entries`);
        }
        names.push(dirent.name);
      }
    } finally {
      d.closeSync();
    }
    return names.sort();
  };

  async function* visit(dir: number, relDir: string, depth: number): AsyncGenerator<TreeEntry> {
    let seen = 0;
    for (const name of list(dir, relDir)) {
      if (++seen % ENTRIES_PER_TICK === 0) await nextTick();
      const rel = relDir === '' ? name : `${relDir}/${name}`;
      if (exclude?.(rel)) continue;
      let st: Stats;
      try {
        st = lstatSync(via(dir, name));
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      const base = { path: rel, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino, mode: st.mode & 0o7777 };
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
            target = readlinkSync(via(dir, name));
          } catch (err) {
            if (isMissing(err)) continue;
            throw err;
          }
          yield { ...base, kind: 'symlink', linkTarget: target };
          break;
        }
        case 'dir': {
          if (depth + 1 > maxDepth) throw new AgentFileRefusedError(label(rel), 'too_deep', `deeper than ${maxDepth} levels`);
          let child: number;
          try {
            child = openSync(via(dir, name), DIR_FLAGS);
          } catch (err) {
            // Gone, or swapped for a link since it was listed: not a directory to enter.
            if (isMissing(err) || refusedOpen(rel, err)) continue;
            throw err;
          }
          try {
            yield { ...base, kind: 'dir' };
            yield* visit(child, rel, depth + 1);
          } finally {
            closeSync(child);
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
    closeSync(top);
  }
}
