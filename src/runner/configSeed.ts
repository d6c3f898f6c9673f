// The CLI's global state file (`<config dir>/.claude.json`) for each run's fresh config
// directory, made once per worker by the CLI itself.
//
// Every attempt gets a new, empty config directory. A CLI that finds no state file there
// treats the run as a first start: it runs its config migrations, writes the file and a
// backup of it, and only then starts. With the pinned CLI that cost 20-40 ms of every
// turn, measured against a kept config directory: the largest part of the real-CLI tax
// (docs/benchmarks.md). With the state file in place it cost 0-10 ms.
//
// Where the seed comes from matters: a run's config directory is the agent's to write, so
// a file taken from one could carry, say, an MCP server into every later run of every
// tenant. The seed is written by the worker's own CLI binary once, in a scratch directory
// of its own (`claude plugin list`: it starts, migrates, writes the file and exits
// without a model call), and it is never refreshed from a run's directory. Only its
// top-level entries of plain values (strings, numbers, booleans) are kept: the migration
// markers and first-start facts. Objects (projects, servers, accounts, usage) are not, nor
// `userID`, which each run draws for itself.
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import type { Logger } from 'pino';
import { buildRunEnv } from './env.js';
import { OWNER_TAG_PATTERN, ownerTag, removeDeadOwners } from './ownedDirs.js';

/** The CLI's global state file in its config directory. */
export const CLI_STATE_FILE = '.claude.json';
/** A state file larger than this is not a fresh one and is not used. */
const MAX_SEED_BYTES = 64 * 1024;
/** How long the seed run may take before the worker goes on without one. */
const SEED_TIMEOUT_MS = 20_000;
/** Entries each run must draw for itself. */
const PER_RUN_KEYS = new Set(['userID']);

/**
 * The entries of a state file worth giving every run: top-level plain values but
 * PER_RUN_KEYS. Undefined when the text is not a JSON object or keeps nothing.
 */
export function seedFromStateFile(text: string): Buffer | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const kept = Object.entries(value).filter(
    ([key, v]) => !PER_RUN_KEYS.has(key) && (typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isFinite(v))),
  );
  if (kept.length === 0) return undefined;
  return Buffer.from(`${JSON.stringify(Object.fromEntries(kept), null, 2)}\n`);
}

/**
 * Writes the seed as `<configDir>/.claude.json` unless something is there already (a
 * restored or earlier file wins). O_EXCL: a link planted at that path is not followed.
 */
export function seedConfigDir(configDir: string, seed: Buffer): void {
  let fd: number;
  try {
    fd = openSync(path.join(configDir, CLI_STATE_FILE), 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return;
    throw err;
  }
  try {
    writeSync(fd, seed);
  } finally {
    closeSync(fd);
  }
}

export interface SeedSource {
  claudePath: string;
  /** The allow-listed base environment runs get. */
  env: Readonly<Record<string, string>>;
}

/** Scratch directories: `<root>/.config-seed-<owner tag>-<random>` (./ownedDirs.ts). */
const SCRATCH_PREFIX = '.config-seed-';
const SCRATCH_NAME = new RegExp(`^${SCRATCH_PREFIX.replace('.', '\\.')}${OWNER_TAG_PATTERN}-`);

/**
 * Runs the CLI once in a scratch config directory under `scratchRoot` (the worker's runs
 * root) and returns the seed made from the state file it wrote; undefined (and why, in
 * `reason`) when it wrote none or failed.
 */
export async function makeConfigSeed(source: SeedSource, scratchRoot: string, signal?: AbortSignal): Promise<{ seed?: Buffer; reason?: string }> {
  mkdirSync(scratchRoot, { recursive: true });
  // Those of workers killed (kill -9, OOM) during their seed run: they never reached the `finally` below.
  await removeDeadOwners(scratchRoot, SCRATCH_NAME);
  const scratch = mkdtempSync(path.join(scratchRoot, `${SCRATCH_PREFIX}${ownerTag()}-`));
  try {
    const r = await execa(source.claudePath, ['plugin', 'list'], {
      cwd: scratch,
      // A run's environment, with the scratch directory as its config, home and tmp.
      env: buildRunEnv(source.env, { configDir: scratch, tmpDir: scratch }),
      extendEnv: false,
      stdin: 'ignore',
      timeout: SEED_TIMEOUT_MS,
      reject: false,
      ...(signal ? { cancelSignal: signal } : {}),
    });
    if (r.exitCode !== 0) return { reason: `\`claude plugin list\` exited ${r.exitCode ?? r.signal ?? 'without a status'}` };
    let text: Buffer;
    try {
      text = readFileSync(path.join(scratch, CLI_STATE_FILE));
    } catch {
      return { reason: `the CLI wrote no ${CLI_STATE_FILE}` };
    }
    if (text.length > MAX_SEED_BYTES) return { reason: `its ${CLI_STATE_FILE} is ${text.length} bytes` };
    const seed = seedFromStateFile(text.toString('utf8'));
    return seed ? { seed } : { reason: `its ${CLI_STATE_FILE} has nothing to keep` };
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * A worker's seed: empty until made (runs before that go without one, as before), made
 * at most once, and stopped with the worker.
 */
export class ConfigSeed {
  #bytes: Buffer | undefined;
  #making: Promise<void> | undefined;
  readonly #abort = new AbortController();

  /** `scratchRoot`: where the seed run's scratch directory goes (the worker's runs root). */
  constructor(private readonly scratchRoot: string) {}

  /** The seed, once made. */
  get bytes(): Buffer | undefined {
    return this.#bytes;
  }

  /** Starts making the seed in the background; `ready` settles when it is done either way. */
  start(source: SeedSource, log: Logger): void {
    this.#making ??= makeConfigSeed(source, this.scratchRoot, this.#abort.signal).then(
      ({ seed, reason }) => {
        this.#bytes = seed;
        if (!seed && !this.#abort.signal.aborted) log.info({ reason }, 'no CLI state file to seed runs with: each run makes its own (slower first start)');
      },
      (err: unknown) => {
        if (!this.#abort.signal.aborted) log.info({ err }, 'no CLI state file to seed runs with: each run makes its own (slower first start)');
      },
    );
  }

  /** Settles once the seed is made or given up on (immediately when never started). */
  get ready(): Promise<void> {
    return this.#making ?? Promise.resolve();
  }

  /**
   * Writes the seed into a run's config directory, when there is one. Best effort: a run
   * without it only starts slower, and a disk that cannot take 300 bytes fails the run anyway.
   */
  seed(configDir: string): void {
    if (!this.#bytes) return;
    try {
      seedConfigDir(configDir, this.#bytes);
    } catch {
      // As without a seed.
    }
  }

  /** Stops a seed run still going and waits for it. */
  async close(): Promise<void> {
    this.#abort.abort();
    await this.ready;
  }
}
