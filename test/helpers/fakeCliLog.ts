// What the fake CLI recorded (FAKE_CLAUDE_LOG, src/testing/fakeCli/record.ts): one JSON
// object per line, read the same way by every test.
import { existsSync, readFileSync } from 'node:fs';

/** One recorded event of a fake CLI process; which fields are set depends on `event`. */
export interface FakeCliRecord {
  event: string;
  pid: number;
  ppid?: number;
  /** The worker that started the run (its AGENTQ_PARENT_PID; unsandboxed runs only). */
  workerPid?: number;
  /** The prompt as the CLI received it (argv or stdin), and its text. */
  prompt?: string;
  promptText?: string;
  /** The user prompts of the session before this run (resumed runs). */
  history?: string[];
  sessionId?: string;
  resumed?: boolean;
  cwd?: string;
  /** The turn number within one process (warm, multi-turn runs). */
  turn?: number;
  childPid?: number;
  /** What the run found of its session folder at start: each subagent's transcript, and the saved tool outputs. */
  subagents?: Record<string, { texts: string[]; meta: boolean }>;
  toolResults?: Record<string, string>;
  /** The config directory's `.claude.json` as the run found it at start; null when there was none. */
  stateFile?: string | null;
  startedAt?: number;
  endedAt?: number;
  exitCode?: number;
}

/** Every record in `file`, oldest first; none when the file does not exist yet. */
export function readFakeCliLog(file: string): FakeCliRecord[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as FakeCliRecord);
}
