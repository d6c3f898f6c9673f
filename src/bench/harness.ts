// The benchmark harness: each benchmark returns figures, each figure carries the
// baseline measured in the same run (machines here are noisy: compare ratios).

export interface Figure {
  bench: string;
  value: number;
  unit: string;
  /** The same quantity for the baseline, measured in the same run; null if none applies. */
  baseline: number | null;
  target: string;
}

/** A target's text with the bound it works out to in this run, and whether the value is within it. */
export function against(target: string, bound: number, unit: string, met: boolean): string {
  return `${target} (${[round(bound, 2), unit].filter((x) => x !== '').join(' ')} in this run): ${met ? 'met' : 'missed'}`;
}

export interface Benchmark {
  /** Matched by `--filter`; figures are named separately. */
  name: string;
  description: string;
  /** Runs the real CLI (`ctx.cli`): with `--cli all` it runs once per tested CLI version. */
  realCli?: boolean;
  run(ctx: BenchContext): Promise<Figure[]>;
}

export interface BenchContext {
  /** Progress notes (stderr); stdout is reserved for the figures. */
  log(text: string): void;
  /** The real CLI a `realCli` benchmark runs (`--cli`; default the pinned version). */
  cli: { version: string; path: string };
}

export function median(values: readonly number[]): number {
  return quantile(values, 0.5);
}

export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  const hi = Math.ceil(pos);
  return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (pos - lo);
}

export function round(value: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

/** Runs fn while sampling RSS every 2 ms; returns its duration and the peak RSS growth in MB. */
export async function measured<T>(fn: () => Promise<T>): Promise<{ ms: number; rssMb: number; value: T }> {
  const before = process.memoryUsage.rss();
  let peak = before;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 2);
  const t = performance.now();
  try {
    const value = await fn();
    const ms = performance.now() - t;
    peak = Math.max(peak, process.memoryUsage.rss());
    return { ms, rssMb: (peak - before) / 1e6, value };
  } finally {
    clearInterval(timer);
  }
}

/**
 * `AGENTQ_CLI_SPAWN` from the bench's own environment, for the workers it configures
 * (`AGENTQ_CLI_SPAWN=direct npm run bench` compares with the worker spawning its runs itself).
 */
export function spawnModeOverride(env: Readonly<Record<string, string | undefined>> = process.env): Record<string, string> {
  const mode = env.AGENTQ_CLI_SPAWN;
  return mode ? { AGENTQ_CLI_SPAWN: mode } : {};
}
