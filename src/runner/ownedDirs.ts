// Directories a worker makes for itself and removes when done (a run's directory, the
// config seed's scratch), named after their owner so that what a killed worker (kill -9,
// OOM) left can be told from what a live one is using: `<pid>-<host tag>`. The host tag
// keeps a worker from judging another machine's (or container's) pids when several share
// one directory: only this host's dead owners are removed.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { isLive } from './processTree.js';

const hostTag = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);

/** Process `pid` (this one by default) on this host, for a directory name: `<pid>-<host tag>`. */
export function ownerTag(pid = process.pid): string {
  return `${pid}-${hostTag}`;
}

/** An owner tag as it appears in a name; its groups are the pid and the host tag. */
export const OWNER_TAG_PATTERN = String.raw`(\d+)-([0-9a-f]{8})`;

/**
 * Removes the entries of `root` whose name `pattern` matches with an owner tag (the
 * pattern's first two groups, as in OWNER_TAG_PATTERN) of a process of this host that is
 * gone. Links are removed, never followed. Returns the names removed.
 */
export async function removeDeadOwners(root: string, pattern: RegExp): Promise<string[]> {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = pattern.exec(name);
    if (!m || m[2] !== hostTag) continue;
    const pid = Number(m[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || pid === process.pid || isLive(pid)) continue;
    await rm(path.join(root, name), { recursive: true, force: true }).catch(() => undefined);
    removed.push(name);
  }
  return removed;
}
