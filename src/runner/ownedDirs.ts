// Directories a worker makes for itself and removes when done (a run's directory, the
// config seed's scratch), named after their owner so that what a killed worker (kill -9,
// OOM) left can be told from what a live one is using: `<pid>-<start>-<host tag>`. The
// start (when the process started, in clock ticks after boot) tells a reused pid from its
// first owner: a restarted container's worker often gets the very pid its killed
// predecessor had. The host tag keeps a worker from judging another machine's (or
// container's) pids when several share one directory: only this host's dead owners are
// removed.
import { createHash } from 'node:crypto';
import { readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { startTicks } from './processTree.js';

const hostTag = createHash('sha256').update(os.hostname()).digest('hex').slice(0, 8);

/** This process's start, read once. */
const ownStart = startTicks(process.pid);

/** Process `pid` (this one by default) on this host, for a directory name: `<pid>-<start>-<host tag>` ('0' for a start not known). */
export function ownerTag(pid = process.pid): string {
  return `${pid}-${(pid === process.pid ? ownStart : startTicks(pid)) ?? 0}-${hostTag}`;
}

/**
 * An owner tag as it appears in a name; its groups are the pid, the start and the host tag.
 * A tag without the start (agentq before 2026-12-07, session 10) still matches.
 */
export const OWNER_TAG_PATTERN = String.raw`(\d+)-(?:(\d+)-)?([0-9a-f]{8})`;

/** Whether the owner a tag names still runs on this host: the same pid, started at the same time (a tag without a start: the same pid). */
function ownerLives(pid: number, start: string | undefined): boolean {
  const now = startTicks(pid);
  if (now === undefined) return false;
  return start === undefined || start === '0' || String(now) === start;
}

/**
 * Removes the entries of `root` whose name `pattern` matches with an owner tag (the
 * pattern's first three groups, as in OWNER_TAG_PATTERN) of a process of this host that is
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
    if (!m || m[3] !== hostTag) continue;
    const pid = Number(m[1]);
    if (!Number.isSafeInteger(pid) || pid <= 0 || ownerLives(pid, m[2])) continue;
    await rm(path.join(root, name), { recursive: true, force: true }).catch(() => undefined);
    removed.push(name);
  }
  return removed;
}
