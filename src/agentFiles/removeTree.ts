// Removes a directory the worker made and an agent wrote into (a run's directory), the way
// ./agentTree.ts reads one: each directory held open and its children reached through
// /proc/self/fd/<fd>/<name>, so no link is followed, whatever the agent swaps meanwhile
// (unlink and rmdir never follow the last component; a directory is entered only through
// O_DIRECTORY | O_NOFOLLOW).
//
// Node's recursive `rm` of a run's directory (five directories, a file or two) cost ~0.9 ms
// of CPU: a promise and a thread-pool hop for every call, and an lstat and a failed rmdir
// for every directory. Here listing and opening are synchronous (a tick's worth of entries
// at a time) and only the unlinks and rmdirs go to the thread pool: ~0.55 ms. Those two
// stay off the event loop on purpose: on ext4 each waits on the journal while Postgres
// commits on the same disk, and made synchronously right after a turn's commit they held
// back its acknowledgement by ~1 ms (docs/benchmarks.md, sixteenth session).
import { closeSync, openSync, opendirSync } from 'node:fs';
import { rm, rmdir, unlink } from 'node:fs/promises';
import { setImmediate as nextTick } from 'node:timers/promises';
import { DEFAULT_MAX_DEPTH, DIR_FLAGS, ENTRIES_PER_TICK, via } from './agentTree.js';

/** Times an entry is tried again when it changes under the removal (a process of the run still writing). */
const RETRIES = 2;

const codeOf = (err: unknown) => (err as NodeJS.ErrnoException).code;

/**
 * Removes `dir` (a directory of the worker's own, not a link) and everything beneath it;
 * nothing when it does not exist. Never throws: what this way cannot remove (deeper than
 * DEFAULT_MAX_DEPTH, an error of the disk) is left to Node's recursive removal, as before.
 */
export async function removeAgentDir(dir: string): Promise<void> {
  try {
    await removeHeld(dir);
  } catch {
    await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  }
}

async function removeHeld(dir: string): Promise<void> {
  let fd: number;
  try {
    fd = openSync(dir, DIR_FLAGS);
  } catch (err) {
    if (codeOf(err) === 'ENOENT') return;
    throw err;
  }
  const pace = { entries: 0 };
  try {
    await empty(fd, 0, pace);
  } finally {
    closeSync(fd);
  }
  try {
    await rmdir(dir);
  } catch (err) {
    if (codeOf(err) !== 'ENOENT') throw err;
  }
}

/** Removes what the directory held open as `dir` contains, listed a few entries at a time. */
async function empty(dir: number, depth: number, pace: { entries: number }): Promise<void> {
  if (depth >= DEFAULT_MAX_DEPTH) throw new Error(`deeper than ${DEFAULT_MAX_DEPTH} levels`);
  const listing = opendirSync(`/proc/self/fd/${dir}`, { bufferSize: 256 });
  try {
    for (let e = listing.readSync(); e !== null; e = listing.readSync()) {
      if (++pace.entries % ENTRIES_PER_TICK === 0) await nextTick();
      await removeEntry(dir, e.name, e.isDirectory(), depth, pace);
    }
  } finally {
    listing.closeSync();
  }
}

/** Removes the child `name` of `dir`: `isDir` as listed, which may no longer be true. */
async function removeEntry(dir: number, name: string, isDir: boolean, depth: number, pace: { entries: number }): Promise<void> {
  const child = via(dir, name);
  for (let tries = 0; ; tries++) {
    try {
      if (!isDir) {
        await unlink(child);
        return;
      }
      const fd = openSync(child, DIR_FLAGS);
      try {
        await empty(fd, depth + 1, pace);
      } finally {
        closeSync(fd);
      }
      await rmdir(child);
      return;
    } catch (err) {
      const code = codeOf(err);
      if (code === 'ENOENT') return;
      if (tries >= RETRIES) throw err;
      // Listed as a file, now a directory (or listed with no type); a directory swapped
      // for a link or a file; a directory that gained an entry meanwhile.
      if (code === 'EISDIR' || code === 'EPERM') isDir = true;
      else if (code === 'ELOOP' || code === 'ENOTDIR') isDir = false;
      else if (code !== 'ENOTEMPTY') throw err;
    }
  }
}
