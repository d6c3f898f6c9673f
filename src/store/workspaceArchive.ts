// Workspace archives: a gzip tar of the conversation's working directory.
//
// Packing walks the tree itself (lstat, never stat): symbolic links are archived as links
// and never followed, so nothing outside the workspace is read, whatever a link points
// at. Excluded names are not descended into. The size cap counts the bytes of regular
// files and is checked during the walk, before anything is compressed. Entries are
// archived in sorted order with portable headers, so an unchanged tree gives the same
// bytes and the same sha256.
//
// Unpacking refuses, and reports, every entry that could write outside the target: an
// absolute path, a `..` component, a link (symbolic or hard) whose target is absolute or
// resolves outside, and anything that is not a file, directory or link. A symbolic link
// pointing outside is therefore archived (as a link) but not recreated on restore.
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { create as createTar, Unpack, type ReadEntry } from 'tar';
import { StoreInputError, WorkspaceTooLargeError } from '../errors.js';

export interface PackOptions {
  /** AGENTQ_WORKSPACE_MAX_BYTES: cap on the bytes of regular files archived. */
  maxBytes: number;
  /** AGENTQ_WORKSPACE_EXCLUDE: names (any depth) or globs with `/` (from the root). */
  exclude: readonly string[];
}

export interface PackedWorkspace {
  /** The gzip-compressed tar. */
  archive: Buffer;
  /** sha256 (hex) of `archive`. */
  sha256: string;
  /** Entries other than directories: files and links. */
  fileCount: number;
  /** Bytes of regular files before compression. */
  contentBytes: number;
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

interface WalkResult {
  entries: string[];
  fileCount: number;
  contentBytes: number;
}

async function walk(root: string, options: PackOptions): Promise<WalkResult> {
  const excluded = excludeMatcher(options.exclude);
  const result: WalkResult = { entries: [], fileCount: 0, contentBytes: 0 };
  const visit = async (rel: string): Promise<void> => {
    const names = (await readdir(path.join(root, rel))).sort();
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      if (excluded(childRel)) continue;
      const st = await lstat(path.join(root, childRel));
      if (st.isDirectory()) {
        result.entries.push(childRel);
        await visit(childRel);
      } else if (st.isFile()) {
        result.contentBytes += st.size;
        if (result.contentBytes > options.maxBytes) {
          throw new WorkspaceTooLargeError(root, result.contentBytes, options.maxBytes);
        }
        result.entries.push(childRel);
        result.fileCount++;
      } else if (st.isSymbolicLink()) {
        result.entries.push(childRel);
        result.fileCount++;
      }
      // Sockets, FIFOs and devices are not workspace content: skipped.
    }
  };
  await visit('');
  return result;
}

/**
 * Archives `dir` (gzip level 1: packing runs inside the turn's commit). Throws
 * WorkspaceTooLargeError when the files pass `maxBytes`, or the archive passes it by
 * more than 1 MiB.
 */
export async function packWorkspace(dir: string, options: PackOptions): Promise<PackedWorkspace> {
  const root = path.resolve(dir);
  const { entries, fileCount, contentBytes } = await walk(root, options);
  const hash = createHash('sha256');
  const parts: Buffer[] = [];
  let size = 0;
  if (entries.length > 0) {
    const stream = createTar({ cwd: root, gzip: { level: 1 }, portable: true, follow: false, noDirRecurse: true }, entries);
    // Headers of many tiny files can outgrow their contents: the archive gets 1 MiB of slack.
    const archiveCap = options.maxBytes + 1024 * 1024;
    for await (const part of stream as AsyncIterable<Buffer>) {
      size += part.length;
      if (size > archiveCap) throw new WorkspaceTooLargeError(root, size, options.maxBytes);
      hash.update(part);
      parts.push(part);
    }
  }
  // An empty workspace is an empty archive (no tar at all).
  const archive = Buffer.concat(parts, size);
  return { archive, sha256: hash.digest('hex'), fileCount, contentBytes };
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
 * Extracts an archive into `dir`, which must be absent or empty (a restore never mixes
 * with what a previous turn left). Returns the entries it refused.
 */
export async function unpackWorkspace(archive: Buffer, dir: string): Promise<{ refused: RefusedEntry[] }> {
  const root = path.resolve(dir);
  await mkdir(root, { recursive: true });
  if ((await readdir(root)).length > 0) throw new StoreInputError('dir', `${root} must be empty to restore a workspace into it`);
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
