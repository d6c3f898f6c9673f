// Whether a turn runs warm (its CLI kept for the next turn) and which turns may share a
// kept process. A turn's `options.warm` wins (`false`: never; `{ idleMs }`: keep it that
// long); otherwise AGENTQ_WARM_IDLE_MS (0: off).
import type { Config } from '../config.js';

/** How long to keep the turn's CLI after it, or undefined: cold (start and end a process for it). */
export function warmIdleMsFor(options: Record<string, unknown>, config: Config): number | undefined {
  const warm = options.warm as false | { idleMs: number } | undefined;
  if (warm === false) return undefined;
  if (warm !== undefined) return warm.idleMs;
  return config.worker.warmIdleMs > 0 ? config.worker.warmIdleMs : undefined;
}

/** Turn options that are not arguments of the CLI process: a kept process serves turns that differ only in these. */
const NOT_PROCESS_OPTIONS = new Set(['warm', 'continueOnRetry', 'streamInput']);

/** A stable key of the options a CLI process was started with. */
export function warmOptionsKey(options: Record<string, unknown>): string {
  const keys = Object.keys(options)
    .filter((k) => !NOT_PROCESS_OPTIONS.has(k) && options[k] !== undefined)
    .sort();
  return JSON.stringify(keys.map((k) => [k, options[k]]));
}
