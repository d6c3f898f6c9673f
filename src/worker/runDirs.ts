// An attempt's directory under the runs root (its CLI config dir, HOME and tmp), named
// after the worker that owns it (src/runner/ownedDirs.ts): an attempt removes its own when
// it ends, and what a killed worker left is removed by the housekeeping of any worker of
// the same host, after the orphan sweep has stopped the CLIs still running there.
import { randomUUID } from 'node:crypto';
import { OWNER_TAG_PATTERN, ownerTag, removeDeadOwners } from '../runner/ownedDirs.js';

/**
 * `<turn id's first 8 characters>.<attempt>.<random>.<owner tag>`: short, so that the
 * conversation's link to its config dir (../<this>/config) fits in an ext4 inode
 * (src/worker/configLink.ts).
 */
export function runDirName(turnId: string, attempt: number): string {
  return `${runDirPrefix(turnId, attempt)}${randomUUID().slice(0, 8)}.${ownerTag()}`;
}

/** How the names of a turn's run dirs for `attempt` begin. */
export function runDirPrefix(turnId: string, attempt: number): string {
  return `${turnId.slice(0, 8)}.${attempt}.`;
}

const RUN_DIR_NAME = new RegExp(String.raw`^[^.]+\.\d+\.[0-9a-f]{8}\.${OWNER_TAG_PATTERN}$`);

/** Removes the run directories of this host's workers that are gone; returns their names. */
export function removeDeadRunDirs(runsRoot: string): Promise<string[]> {
  return removeDeadOwners(runsRoot, RUN_DIR_NAME);
}
