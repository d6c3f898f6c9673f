// The last check before a CLI starts: the conversation's link (src/worker/configLink.ts)
// still leads to this attempt's directory. A worker frozen after its lease check (SIGSTOP,
// a long pause) may wake after another worker took the conversation over and re-pointed
// the link; a CLI it started then would run in the conversation's workspace beside the
// other attempt's, and unsandboxed resume, and write into, that attempt's session through
// the link (the chaos suite's freeze case caught one). The check runs where the process
// is started, just before the fork: in the spawn helper, which the worker's pause does not
// stop, or in the worker itself with AGENTQ_CLI_SPAWN=direct.
import { readlinkSync } from 'node:fs';
import path from 'node:path';
import type { LinkCheck } from './spawnTypes.js';

/** Error code of a run not started because its config link leads elsewhere. */
export const STALE_LINK = 'ERR_AGENTQ_STALE_CONFIG_LINK';

/** Where a link whose text is `text` leads: resolved from the link's directory (src/worker/configLink.ts writes it relative). */
export function linkDestination(link: string, text: string): string {
  return path.resolve(path.dirname(link), text);
}

/** Undefined when the link leads to its target; else why the run must not start. */
export function staleLink(check: LinkCheck | undefined): string | undefined {
  if (check === undefined) return undefined;
  let target: string;
  try {
    target = linkDestination(check.link, readlinkSync(check.link));
  } catch (err) {
    target = `nothing (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`;
  }
  if (target === check.target) return undefined;
  return `not started: the conversation's config link ${check.link} leads to ${target}, not to this attempt's ${check.target} (another attempt took the conversation over)`;
}
