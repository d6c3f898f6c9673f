// The fake's `.claude.json`, shaped like the real CLI's: `plugin list` writes a first-start
// one (migration marker, a per-install id, an object) and exits, as the real one does for
// the worker's config seed; every turn records the file it started with and then writes
// its own entries into it, as the real CLI does, so a test sees whether one run's file
// reached another.
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { configDir } from './plan.js';

const STATE_FILE = '.claude.json';

function statePath(): string {
  return path.join(configDir(process.env), STATE_FILE);
}

/** The state file as the turn found it; null when there was none. */
export function readStateFile(): string | null {
  try {
    return readFileSync(statePath(), 'utf8');
  } catch {
    return null;
  }
}

/** `claude plugin list` on a fresh config directory. */
export function pluginList(): number {
  const file = statePath();
  const state = { firstStartTime: new Date().toISOString(), migrationVersion: 1, fakeCli: true, userID: randomUUID(), projects: {} };
  try {
    readFileSync(file);
  } catch {
    writeFileSync(file, JSON.stringify(state, null, 2), { mode: 0o600 });
  }
  process.stdout.write('No plugins installed.\n');
  return 0;
}

/** What a turn adds to the state file: its own id and an object of per-project state. */
export function touchStateFile(sessionId: string): void {
  let state: Record<string, unknown> = {};
  const before = readStateFile();
  if (before !== null) {
    try {
      state = JSON.parse(before) as Record<string, unknown>;
    } catch {
      state = {};
    }
  }
  state.userID ??= randomUUID();
  state.lastSessionId = sessionId;
  state.projects = { [process.cwd()]: { lastSessionId: sessionId } };
  writeFileSync(statePath(), JSON.stringify(state, null, 2), { mode: 0o600 });
}
