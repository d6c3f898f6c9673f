// What the runner asks for when it starts a CLI run, and what it gets back, whichever way
// the process is spawned (./spawnDirect.ts, ./spawnHelper.ts).
import type { Readable, Writable } from 'node:stream';

export interface SpawnRequest {
  file: string;
  args: readonly string[];
  cwd: string;
  /** The run's whole environment (nothing is inherited). */
  env: Readonly<Record<string, string>>;
  /** A pipe to the run's stdin; else it reads /dev/null. */
  stdin: boolean;
  /** Given to the run as its fd 3 (bwrap's options), then closed. */
  fd3?: Uint8Array | undefined;
  /** Start only while the symlink `link` leads to `target` (./linkCheck.ts). */
  linkCheck?: LinkCheck | undefined;
}

/** A symlink that must lead to `target` when the run starts. */
export interface LinkCheck {
  link: string;
  target: string;
}

export interface RunExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** The spawn failed (the process may never have run), or its exit could not be observed. */
  error?: (Error & { code?: string | undefined }) | undefined;
}

export interface SpawnedRun {
  /** Undefined when nothing started. The run is its own session and process group. */
  pid: number | undefined;
  stdin: Writable | null;
  stdout: Readable | null;
  stderr: Readable | null;
  /** Settles once, never rejects. */
  exited: Promise<RunExit>;
  /** Closes the worker's ends of the pipes once the run is over. */
  release(): void;
}
