// Workspace archives: a gzip tar of the conversation's working directory (and, the same
// way, of a session's folder).
//
// Everything packed was written by the agent, so the tree is read only through
// src/agentFiles/agentTree.ts: symbolic links are archived as links and never followed at
// any depth, FIFOs, sockets and devices are skipped unopened, and the walk is refused past
// its caps (bytes of files, entries, depth) before it reads what lies beyond them. The tar
// is written here from those reads (headers by node-tar), not by node-tar's packer, which
// opens files by path and would follow a directory swapped for a link. Excluded names are
// not descended into. Entries are archived in sorted order with portable headers, so an
// unchanged tree gives the same bytes and the same sha256.
//
// Unpacking refuses, and reports, every entry that could write outside the target: an
// absolute path, a `..` component, a link (symbolic or hard) whose target is absolute or
// resolves outside, and anything that is not a file, directory or link. A symbolic link
// pointing outside is therefore archived (as a link) but not recreated on restore.
import { createHash, type Hash } from 'node:crypto';
import { mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGzip, gzip } from 'node:zlib';
import { Header, Pax, Unpack, type ReadEntry } from 'tar';
import { walkAgentTree, type AgentFile, type AgentPath, type TreeEntry } from '../agentFiles/agentTree.js';
import { AgentFileRefusedError, StoreInputError, WorkspaceTooLargeError } from '../errors.js';

export interface PackOptions {
  /** AGENTQ_WORKSPACE_MAX_BYTES: cap on the bytes of regular files archived. */
  maxBytes: number;
  /** AGENTQ_WORKSPACE_MAX_ENTRIES: cap on the entries (files, directories, links) walked. Default 100,000. */
  maxEntries?: number;
  /** AGENTQ_WORKSPACE_EXCLUDE: names (any depth) or globs with `/` (from the root). */
  exclude: readonly string[];
}

/** Entries walked when the caller sets no cap. */
export const DEFAULT_MAX_ENTRIES = 100_000;

export interface PackedWorkspace {
  /** The gzip-compressed tar. */
  archive: Buffer;
  /** sha256 (hex) of `archive`. */
  sha256: string;
  /** Entries other than directories: files and links. */
  fileCount: number;
  /** Bytes of regular files before compression. */
  contentBytes: number;
  /** The tree's treeStamp, from the same walk (the tree as it was packed, if nothing wrote to it meanwhile). */
  stamp: string;
}

export interface RefusedEntry {
  path: string;
  reason: string;
}

/** Glob → RegExp: `**` any depth, `*` within a segment, `?` one character. */
function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      const slash = glob[i + 2] === '/';
      re += slash ? '(?:.*/)?' : '.*';
      i += slash ? 2 : 1;
    } else if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/** A predicate over workspace-relative posix paths. */
export function excludeMatcher(patterns: readonly string[]): (relPath: string) => boolean {
  const byName: RegExp[] = [];
  const byPath: RegExp[] = [];
  for (const raw of patterns) {
    const p = raw.replace(/\/+$/, '');
    if (p === '') continue;
    (p.includes('/') ? byPath : byName).push(globToRegExp(p));
  }
  return (relPath) => {
    const name = relPath.slice(relPath.lastIndexOf('/') + 1);
    return byName.some((re) => re.test(name)) || byPath.some((re) => re.test(relPath));
  };
}

const BLOCK = 512;
const gzipOnce = promisify(gzip);
const READ_BYTES = 1024 * 1024;

/** Portable permission bits (as node-tar's portable mode writes them): owner rw, no group/other write, no set-id bits. */
function portableMode(mode: number, isDir: boolean): number {
  let m = (mode | 0o600) & 0o755;
  if (isDir) m |= ((m & 0o444) >> 2) & 0o111;
  return m;
}

/** One entry's header block(s): a pax header first when a field does not fit ustar (a long path, say). */
function headerBlocks(e: TreeEntry, type: 'File' | 'Directory' | 'SymbolicLink', size: number): Buffer[] {
  const entryPath = type === 'Directory' ? `${e.path}/` : e.path;
  // Portable: no owner, no atime/ctime; directories carry no mtime (as node-tar's portable mode).
  const mtime = type === 'Directory' ? undefined : new Date(Math.floor(e.mtimeMs / 1000) * 1000);
  const fields = { path: entryPath, linkpath: e.linkTarget, mode: portableMode(e.mode, type === 'Directory'), size, mtime, type };
  const header = new Header(fields);
  const needPax = header.encode();
  const blocks = [header.block!];
  if (needPax) blocks.unshift(new Pax({ path: entryPath, linkpath: e.linkTarget, size, mtime }).encode());
  return blocks;
}

/** A regular file's data, exactly `size` bytes (zeros if it shrank meanwhile, cut if it grew), padded to whole blocks. */
async function* fileBlocks(fh: AgentFile, size: number): AsyncGenerator<Buffer> {
  let pos = 0;
  while (pos < size) {
    const want = Math.min(READ_BYTES, size - pos);
    let chunk = await fh.read(pos, want);
    if (chunk.length < want) chunk = Buffer.concat([chunk, Buffer.alloc(want - chunk.length)]);
    pos += want;
    yield chunk;
  }
  const pad = (BLOCK - (size % BLOCK)) % BLOCK;
  if (pad > 0) yield Buffer.alloc(pad);
}

interface PackCounts {
  /** Entries archived (directories included). */
  entries: number;
  fileCount: number;
  contentBytes: number;
}

/** Pieces of the tar stream are gathered to about this size: fewer, larger writes to gzip. */
const PIECE_BYTES = 1024 * 1024;

/** The tar stream of the tree (uncompressed), in pieces of about PIECE_BYTES, counting into `counts`. */
async function* tarStream(p: AgentPath, options: PackOptions, counts: PackCounts, stamp: Hash): AsyncGenerator<Buffer> {
  let piece: Buffer[] = [];
  let pieceBytes = 0;
  const add = (b: Buffer) => {
    piece.push(b);
    pieceBytes += b.length;
  };
  const take = () => {
    const out = Buffer.concat(piece, pieceBytes);
    piece = [];
    pieceBytes = 0;
    return out;
  };
  for await (const e of walkTree(p, options)) {
    stampEntry(stamp, e);
    if (e.kind === 'dir') {
      counts.entries++;
      headerBlocks(e, 'Directory', 0).forEach(add);
    } else if (e.kind === 'symlink') {
      counts.entries++;
      counts.fileCount++;
      headerBlocks(e, 'SymbolicLink', 0).forEach(add);
    } else if (e.kind === 'file') {
      let fh: AgentFile | undefined;
      try {
        fh = e.open!();
      } catch (err) {
        // Swapped for something else since it was listed: left out, like a FIFO.
        if (!(err instanceof AgentFileRefusedError)) throw err;
      }
      if (!fh) continue;
      try {
        counts.entries++;
        counts.fileCount++;
        counts.contentBytes += e.size;
        headerBlocks(e, 'File', e.size).forEach(add);
        for await (const chunk of fileBlocks(fh, e.size)) {
          add(chunk);
          if (pieceBytes >= PIECE_BYTES) yield take();
        }
      } finally {
        fh.close();
      }
    }
    // Sockets, FIFOs and devices are not workspace content: skipped, never opened.
    if (pieceBytes >= PIECE_BYTES) yield take();
  }
  if (counts.entries > 0) {
    add(Buffer.alloc(BLOCK * 2));
    yield take();
  }
}

/** `first`, `second`, then the rest of `rest`. */
async function* chain(first: Buffer, second: Buffer, rest: AsyncGenerator<Buffer>): AsyncGenerator<Buffer> {
  yield first;
  yield second;
  yield* rest;
}

/**
 * Archives the tree at `p` (gzip level 1: packing runs inside the turn's commit). Throws
 * WorkspaceTooLargeError when the files pass `maxBytes` or the entries `maxEntries` (or
 * the tree is deeper than src/agentFiles's depth cap), or the archive passes `maxBytes`
 * by more than 1 MiB.
 */
export async function packTree(p: AgentPath, options: PackOptions): Promise<PackedWorkspace> {
  const label = path.join(p.root, p.rel);
  const counts: PackCounts = { entries: 0, fileCount: 0, contentBytes: 0 };
  const hash = createHash('sha256');
  const stamp = createHash('sha256');
  const parts: Buffer[] = [];
  let size = 0;
  // Headers of many tiny files can outgrow their contents: the archive gets 1 MiB of slack.
  const archiveCap = options.maxBytes + 1024 * 1024;
  const keep = (part: Buffer) => {
    size += part.length;
    if (size > archiveCap) throw new WorkspaceTooLargeError(label, size, options.maxBytes);
    hash.update(part);
    parts.push(part);
  };
  try {
    const pieces = tarStream(p, options, counts, stamp);
    const first = await pieces.next();
    // An empty tree is an empty archive (no tar, no gzip header).
    if (first.done) return { archive: Buffer.alloc(0), sha256: hash.digest('hex'), fileCount: 0, contentBytes: 0, stamp: stamp.digest('hex') };
    const second = await pieces.next();
    if (second.done) {
      // Most trees fit in one piece: compressed at once, off the main thread.
      keep(await gzipOnce(first.value, { level: 1 }));
    } else {
      // A failure anywhere destroys the whole pipeline, which ends the walk (its open files close).
      await pipeline(Readable.from(chain(first.value, second.value, pieces)), createGzip({ level: 1 }), async (gz: AsyncIterable<Buffer>) => {
        for await (const part of gz) keep(part);
      });
    }
  } catch (err) {
    if (err instanceof AgentFileRefusedError && err.reason === 'too_large') {
      throw new WorkspaceTooLargeError(label, err.bytes ?? counts.contentBytes, options.maxBytes);
    }
    if (err instanceof AgentFileRefusedError && (err.reason === 'too_many_entries' || err.reason === 'too_deep')) {
      throw new WorkspaceTooLargeError(label, counts.contentBytes, options.maxBytes, err.message);
    }
    throw err;
  }
  return { archive: Buffer.concat(parts, size), sha256: hash.digest('hex'), fileCount: counts.fileCount, contentBytes: counts.contentBytes, stamp: stamp.digest('hex') };
}

/** The tree as packTree and treeStamp see it: the same exclusions and caps. */
function walkTree(p: AgentPath, options: PackOptions): AsyncGenerator<TreeEntry> {
  return walkAgentTree(p, { maxBytes: options.maxBytes, maxEntries: options.maxEntries ?? DEFAULT_MAX_ENTRIES }, excludeMatcher(options.exclude));
}

/** One entry's share of a tree's stamp. */
function stampEntry(stamp: Hash, e: TreeEntry): void {
  stamp.update(`${JSON.stringify([e.path, e.kind, e.size, e.mode, e.mtimeMs, e.ctimeMs, e.ino, e.linkTarget ?? null])}\n`);
}

/**
 * A digest of the tree's metadata as packTree would walk it (same exclusions and caps):
 * every entry's path, kind, size, permission bits, modification and change times, inode
 * and link target, in walk order. No file is opened. Two equal stamps of a directory mean
 * no entry was added, removed, renamed, replaced, written or chmod-ed in between: each of
 * those sets the change time of an inode (or replaces it), and that time can be set by no
 * one but the kernel, to the current clock. What that assumes is in docs/workspaces.md.
 * Undefined when the walk is refused (a cap passed): packTree then says why.
 */
export async function treeStamp(p: AgentPath, options: PackOptions): Promise<string | undefined> {
  const hash = createHash('sha256');
  try {
    for await (const e of walkTree(p, options)) stampEntry(hash, e);
  } catch (err) {
    if (err instanceof AgentFileRefusedError) return undefined;
    throw err;
  }
  return hash.digest('hex');
}

/** treeStamp of the directory `dir`. */
export function workspaceStamp(dir: string, options: PackOptions): Promise<string | undefined> {
  return treeStamp({ root: path.resolve(dir), rel: '' }, options);
}

/** Archives the directory `dir` (its own last component must not be a link). See packTree. */
export function packWorkspace(dir: string, options: PackOptions): Promise<PackedWorkspace> {
  return packTree({ root: path.resolve(dir), rel: '' }, options);
}

/** Why an archive entry may not be extracted under the target, or null if it may. */
function refusal(entry: ReadEntry): string | null {
  const p = entry.path.replace(/\\/g, '/');
  if (p.startsWith('/') || /^[A-Za-z]:/.test(p)) return 'absolute path';
  if (p.split('/').includes('..')) return 'path contains ..';
  switch (entry.type) {
    case 'File':
    case 'OldFile':
    case 'ContiguousFile':
    case 'Directory':
      return null;
    case 'SymbolicLink':
    case 'Link': {
      const target = String(entry.linkpath ?? '').replace(/\\/g, '/');
      if (target === '' || target.startsWith('/')) return `${entry.type} to an absolute path`;
      // A symbolic link resolves from its own folder, a hard link from the archive root.
      const base = entry.type === 'SymbolicLink' ? path.posix.dirname(p) : '.';
      const resolved = path.posix.normalize(path.posix.join(base, target));
      if (resolved === '..' || resolved.startsWith('../')) return `${entry.type} pointing outside the workspace`;
      return null;
    }
    default:
      return `entry type ${entry.type}`;
  }
}

/**
 * Extracts an archive into `dir`, which must be absent or empty but for the names in
 * `alongside` (a restore never mixes with what a previous turn left). Returns the entries
 * it refused.
 */
export async function unpackWorkspace(archive: Buffer, dir: string, alongside: readonly string[] = []): Promise<{ refused: RefusedEntry[] }> {
  const root = path.resolve(dir);
  await mkdir(root, { recursive: true });
  if ((await readdir(root)).some((name) => !alongside.includes(name))) {
    throw new StoreInputError('dir', `${root} must be empty to restore a workspace into it`);
  }
  const refused: RefusedEntry[] = [];
  if (archive.length === 0) return { refused };
  await new Promise<void>((resolve, reject) => {
    const unpack = new Unpack({
      cwd: root,
      preservePaths: false,
      preserveOwner: false,
      filter: (entryPath, entry) => {
        const reason = refusal(entry as ReadEntry);
        if (reason) refused.push({ path: entryPath, reason });
        return reason === null;
      },
      onwarn: (code, message) => {
        if (code !== 'TAR_ENTRY_INFO') refused.push({ path: '', reason: `${code}: ${String(message)}` });
      },
    });
    unpack.on('error', reject);
    unpack.on('close', () => resolve());
    unpack.end(archive);
  });
  return { refused };
}
