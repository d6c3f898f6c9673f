// What a worker keeps between the turns of a conversation it ran, so that when the next
// turn lands on the same worker it need not hydrate the session from Postgres nor
// restore the workspace archive. Nothing here is trusted: a kept session file is used
// only if its length and the digest of its last 4 KiB equal the stored committed head,
// and a kept workspace only if the archive digest it was committed with is still the
// stored one. On any doubt the attempt hydrates and restores as usual.
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs';
import { readdir, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { moveAgentFile, openAgentFile, readAgentFile, type AgentFile, type AgentPath } from '../agentFiles/agentTree.js';
import { TAIL_DIGEST_BYTES } from '../store/persist.js';

/** A workspace marker holds a sha256 in hex, and maybe a space and the tree's stamp (another): anything longer is not one. */
const MARKER_MAX_BYTES = 129;

export interface CommittedHead {
  committedByteCount: number;
  committedTailSha256: string | null;
}

async function tailDigest(file: AgentFile, size: number): Promise<string> {
  const n = Math.min(TAIL_DIGEST_BYTES, size);
  return createHash('sha256').update(await file.read(size - n, n)).digest('hex');
}

export class LocalCache {
  private readonly sessions: string;
  private readonly workspaces: string;
  /** Bytes kept, as last counted plus what was kept since; a full count only when it may be over the cap. */
  private keptBytes: number | undefined;
  /** The directories this cache made (each commit would otherwise ask the kernel again). */
  private readonly made = new Set<string>();

  constructor(
    root: string,
    /** 0 disables the session cache. */
    private readonly maxSessionBytes: number,
  ) {
    this.sessions = path.join(root, 'sessions');
    this.workspaces = path.join(root, 'workspaces');
  }

  private sessionFile(conversationId: string, sessionId: string): string {
    return path.join(this.sessions, `${conversationId}.${sessionId}.jsonl`);
  }

  /**
   * After a commit: keeps the committed session file (moved, not copied). The agent wrote
   * it: it is moved only as a regular file, reached without following a link.
   */
  async keepSession(conversationId: string, sessionId: string, file: AgentPath): Promise<void> {
    if (this.maxSessionBytes === 0) return;
    const target = this.sessionFile(conversationId, sessionId);
    if (!(await this.inDir(this.sessions, () => moveAgentFile(file, target)))) return;
    const size = statSync(target).size;
    if (this.keptBytes !== undefined && this.keptBytes + size <= this.maxSessionBytes) {
      this.keptBytes += size;
      return;
    }
    await this.evict();
  }

  /**
   * Moves the kept session file to `target` if it is exactly the committed session;
   * returns false (and drops it) otherwise.
   */
  async takeSession(conversationId: string, sessionId: string, head: CommittedHead, target: string): Promise<boolean> {
    const cached = this.sessionFile(conversationId, sessionId);
    // Opened as what it was, a file of the agent's: never through a link that may have landed here.
    const fh = await openAgentFile({ root: this.sessions, rel: path.basename(cached) }, head.committedByteCount).catch(() => undefined);
    let matches = false;
    if (fh) {
      try {
        const { size } = fh;
        matches = size === head.committedByteCount && size > 0 && (await tailDigest(fh, size)) === head.committedTailSha256;
      } finally {
        fh.close();
      }
    }
    // Synchronous: metadata calls on the local disk before the run (see ./configLink.ts).
    if (!matches) {
      rmSync(cached, { force: true });
      return false;
    }
    mkdirSync(path.dirname(target), { recursive: true });
    renameSync(cached, target);
    return true;
  }

  /** Keeps the total size of kept sessions under the cap, dropping the least recently kept. */
  private async evict(): Promise<void> {
    const names = await readdir(this.sessions);
    const files = await Promise.all(
      names.map(async (n) => {
        const p = path.join(this.sessions, n);
        const s = await stat(p).catch(() => undefined);
        return { p, size: s?.size ?? 0, mtime: s?.mtimeMs ?? 0 };
      }),
    );
    let total = files.reduce((n, f) => n + f.size, 0);
    for (const f of files.sort((a, b) => a.mtime - b.mtime)) {
      if (total <= this.maxSessionBytes) break;
      await rm(f.p, { force: true });
      total -= f.size;
    }
    this.keptBytes = total;
  }

  /** Runs `write` into `dir`, made once (synchronously: see ./configLink.ts); made again if it went away (ENOENT). */
  private async inDir<T>(dir: string, write: () => T | Promise<T>): Promise<T> {
    if (!this.made.has(dir)) {
      mkdirSync(dir, { recursive: true });
      this.made.add(dir);
    }
    try {
      return await write();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(dir, { recursive: true });
      return write();
    }
  }

  private marker(dirName: string): string {
    return path.join(this.workspaces, `${dirName}.sha256`);
  }

  /**
   * Whether the directory still holds exactly the workspace committed with `storedSha`;
   * when it does, the tree's stamp as that commit left it, if it was noted.
   */
  async workspaceIsCurrent(dirName: string, storedSha: string | undefined): Promise<{ stamp: string | undefined } | undefined> {
    if (storedSha === undefined) return undefined;
    // A small file on the local disk, read before the run on the calling thread (AgentFile.read);
    // opened as a regular file only, never through a link, and read up to its expected size.
    const marked = await readAgentFile({ root: this.workspaces, rel: path.basename(this.marker(dirName)) }, MARKER_MAX_BYTES).catch(() => undefined);
    const [sha, stamp] = (marked?.toString('utf8') ?? '').split(' ');
    return sha === storedSha ? { stamp: stamp === undefined || stamp === '' ? undefined : stamp } : undefined;
  }

  /**
   * After a commit: the directory now matches the archive with this digest, and (when
   * given) has this stamp (src/store/workspaceArchive.ts, treeStamp).
   */
  async markWorkspace(dirName: string, sha: string, stamp?: string): Promise<void> {
    await this.inDir(this.workspaces, () => writeFile(this.marker(dirName), stamp === undefined ? sha : `${sha} ${stamp}`));
  }

  /** Before anything may change the directory. */
  async unmarkWorkspace(dirName: string): Promise<void> {
    rmSync(this.marker(dirName), { force: true });
  }
}
