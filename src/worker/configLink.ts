// The path an unsandboxed CLI gets as CLAUDE_CONFIG_DIR. Each attempt has a config
// directory of its own (a fresh dir under the runs root, removed afterwards), but the CLI
// writes absolute paths under it into the transcript: a tool output too large for the
// transcript is saved to <config>/projects/<project>/<session>/tool-results/<id>.txt and
// the model is told that path, to read it again in a later turn. So the CLI is given a
// path that stays the same for the conversation, a symlink
// <runs root>/.config-links/<workspace dir name> re-pointed at each attempt's own
// directory, and the stored session folder is restored behind it. Workers configured
// with the same AGENTQ_RUNS_ROOT and AGENTQ_WORKSPACE_ROOT see the same paths. (Inside
// the sandbox the config directory is mounted at a fixed path instead.)
//
// The link holds its target relative to .config-links (`../<run dir>/config`): short
// enough for ext4 to keep in the inode (under 60 bytes), where an absolute one took a
// block of its own, allocated at each re-pointing and freed with the link it replaced
// (a rename over it took 127 µs against 18; docs/benchmarks.md).
//
// Only the lease holder may run the conversation's CLI. A CLI left from an earlier
// attempt on this machine (its worker froze past the lease, or died) would write through
// the re-pointed link into this attempt's session, so it is killed first; and a CLI an
// earlier attempt starts later (its worker froze after its lease check) is not started
// once the link leads elsewhere (src/runner/linkCheck.ts).
import { randomUUID } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, readlinkSync, renameSync, rmSync, symlinkSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { linkDestination } from '../runner/linkCheck.js';
import { CONVERSATION_LINK_VAR, killProcessesWithEnv, linkMark } from '../runner/processTree.js';

/** The conversation's stable config path on a worker whose runs root is `runsRoot`. */
export function configLinkPath(runsRoot: string, dirName: string): string {
  return path.join(runsRoot, '.config-links', dirName);
}

/** What `link` holds to lead to `target`: the path from the link's directory. */
export function linkText(link: string, target: string): string {
  return path.relative(path.dirname(link), target);
}

/**
 * Points `link` at `target` (an absolute path; created if missing), atomically. When it
 * pointed at another attempt's directory that still exists, every process of a run of the
 * conversation (its environment names the link as CLAUDE_CONFIG_DIR, or carries its mark,
 * sandboxed runs too) is killed first, and again after. Returns their pids.
 * Synchronous file calls: a handful of metadata calls on the worker's local disk before
 * the CLI starts, each far cheaper than a hop to the thread pool and back (~0.2-0.3 ms
 * each on a busy 2-core machine; docs/benchmarks.md).
 */
export function pointConfigLink(link: string, target: string): number[] {
  mkdirSync(target, { recursive: true });
  mkdirSync(path.dirname(link), { recursive: true });
  const previous = currentTarget(link);
  if (previous === target) return [];
  const inUse = previous !== undefined && existsSync(previous);
  // Unsandboxed runs name the link as their config dir; every run carries its mark.
  const killUsers = () => killProcessesWithEnv('CLAUDE_CONFIG_DIR', link, [CONVERSATION_LINK_VAR, linkMark(link)]);
  const killed = inUse ? killUsers() : [];
  const tmp = `${link}.${randomUUID().slice(0, 8)}`;
  symlinkSync(linkText(link, target), tmp);
  try {
    renameSync(tmp, link);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
  // And once more: a run the earlier attempt started between that scan and the rename
  // (its start checked the link while it still led there: src/runner/linkCheck.ts).
  if (inUse) killed.push(...killUsers());
  return killed;
}

/** Where the link leads, as an absolute path; undefined when there is none (anything else at that path is removed). */
function currentTarget(link: string): string | undefined {
  try {
    const st = lstatSync(link);
    if (st.isSymbolicLink()) return linkDestination(link, readlinkSync(link));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  // Not a link (a CLI created a directory there while the link was missing): nothing
  // else writes under this path, and the link replaces it. What it holds was written by a
  // CLI, so its size is not bounded: moved aside at once, removed off the calling thread.
  const aside = `${link}.stale-${randomUUID().slice(0, 8)}`;
  renameSync(link, aside);
  void rm(aside, { recursive: true, force: true }).catch(() => undefined);
  return undefined;
}
