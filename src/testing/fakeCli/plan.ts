// Choosing the session a run writes to, with the real CLI's rules: a new id (given or
// random), resume in place, or fork into a new file that starts with the old bytes.
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { sessionFilePath } from '../../claude/sessionPath.js';
import { type CliOptions, isUuid } from './args.js';
import { hasContent, readHistory, type SessionHistory } from './sessionFile.js';

export type SessionPlan =
  | {
      kind: 'ok';
      sessionId: string;
      file: string;
      history: SessionHistory | undefined;
      resumed: boolean;
      forkedFrom: string | undefined;
    }
  | { kind: 'in-use'; sessionId: string }
  | { kind: 'missing'; sessionId: string };

/** `$CLAUDE_CONFIG_DIR`, else `$HOME/.claude`, as the CLI resolves it. */
export function configDir(env: NodeJS.ProcessEnv): string {
  if (env.CLAUDE_CONFIG_DIR) return env.CLAUDE_CONFIG_DIR;
  return path.join(env.HOME ?? '', '.claude');
}

function fileFor(dir: string, cwd: string, id: string): string {
  const file = sessionFilePath(dir, cwd, id);
  mkdirSync(path.dirname(file), { recursive: true });
  return file;
}

/**
 * Works out the session file. `copyOnResume` (fork, or the scripted old-CLI behaviour)
 * copies the whole old file into a new id so the old one stays untouched.
 */
export function planSession(opts: CliOptions, dir: string, cwd: string, copyOnResume: boolean): SessionPlan {
  if (opts.resume === undefined) {
    const sessionId = opts.sessionId ?? randomUUID();
    const file = fileFor(dir, cwd, sessionId);
    if (opts.sessionId !== undefined && hasContent(file)) return { kind: 'in-use', sessionId };
    return { kind: 'ok', sessionId, file, history: undefined, resumed: false, forkedFrom: undefined };
  }

  const oldId = opts.resume;
  // A non-UUID id cannot name a session file (and must not escape the projects folder).
  const history = isUuid(oldId) ? readHistory(sessionFilePath(dir, cwd, oldId)) : undefined;
  if (!history) return { kind: 'missing', sessionId: oldId };
  const oldFile = sessionFilePath(dir, cwd, oldId);
  if (!copyOnResume) return { kind: 'ok', sessionId: oldId, file: oldFile, history, resumed: true, forkedFrom: undefined };

  const sessionId = opts.sessionId ?? randomUUID();
  const file = fileFor(dir, cwd, sessionId);
  if (hasContent(file)) return { kind: 'in-use', sessionId };
  copyFileSync(oldFile, file);
  return { kind: 'ok', sessionId, file, history, resumed: true, forkedFrom: oldId };
}
