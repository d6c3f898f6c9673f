// Where the Claude Code CLI keeps a session file, as measured in
// shared/claude-cli/README.md. Both the runner and the session store use this module,
// so the rule lives in exactly one place.
import { realpathSync } from 'node:fs';
import path from 'node:path';

/** Longest encoded folder name the CLI keeps verbatim; longer ones get a hash suffix. */
export const MAX_ENCODED_CWD_LENGTH = 200;

/** Java-style 32-bit string hash over UTF-16 code units, as the CLI computes it. */
export function javaStringHash(s: string): number {
  let h = 0;
  for (let i = 0; i < s.length; i++) {
    h = ((h << 5) - h + s.charCodeAt(i)) | 0;
  }
  return h;
}

/**
 * Encodes an absolute, already-resolved path the way the CLI names its project folder:
 * every UTF-16 code unit that is not [a-zA-Z0-9] becomes `-`; past 200 characters the
 * name is cut and suffixed with `-<base36 |hash|>` of the full path.
 */
export function encodeCwd(realCwd: string): string {
  const encoded = realCwd.replace(/[^a-zA-Z0-9]/g, '-');
  if (encoded.length <= MAX_ENCODED_CWD_LENGTH) return encoded;
  return `${encoded.slice(0, MAX_ENCODED_CWD_LENGTH)}-${Math.abs(javaStringHash(realCwd)).toString(36)}`;
}

/** The project folder for a cwd, computed from its real path (symlinks resolved). */
export function projectDir(configDir: string, cwd: string): string {
  return path.join(configDir, 'projects', encodeCwd(realpathSync(cwd)));
}

/**
 * `projects/<encoded cwd>/<sessionId>.jsonl`, the session file's path beneath the config
 * dir (posix). The cwd is `realpath(cwd)`, or `cliCwd` when given: the cwd as the CLI sees
 * it (already resolved, e.g. a sandbox's fixed mount point, which need not exist here).
 */
export function sessionFileRelPath(cwd: string, sessionId: string, cliCwd?: string): string {
  return `projects/${encodeCwd(cliCwd ?? realpathSync(cwd))}/${sessionId}.jsonl`;
}

/** `<configDir>/projects/<encoded realpath(cwd)>/<sessionId>.jsonl` (see sessionFileRelPath). */
export function sessionFilePath(configDir: string, cwd: string, sessionId: string, cliCwd?: string): string {
  return path.join(configDir, ...sessionFileRelPath(cwd, sessionId, cliCwd).split('/'));
}

/**
 * The folder the CLI keeps next to a session file, `<project>/<sessionId>/`: subagent
 * transcripts (`subagents/`), the full text of tool outputs too large for the transcript
 * (`tool-results/<id>.txt`, named there by absolute path). Works on absolute paths and on
 * posix paths relative to the config dir alike.
 */
export function sessionFolderPath(sessionFile: string, sessionId: string): string {
  return path.posix.join(path.posix.dirname(sessionFile), sessionId);
}
