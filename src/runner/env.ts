// The CLI's environment: the allow-listed base from config plus the run's own dirs.
// Built with extendEnv:false at spawn, so nothing else of the worker leaks in.
import type { ValidRunOptions } from './options.js';

export function buildRunEnv(base: Readonly<Record<string, string>>, o: Pick<ValidRunOptions, 'env' | 'configDir' | 'homeDir' | 'tmpDir'>): Record<string, string> {
  return {
    ...base,
    ...o.env,
    CLAUDE_CONFIG_DIR: o.configDir,
    HOME: o.homeDir ?? o.configDir,
    CLAUDE_CODE_TMPDIR: o.tmpDir,
    TMPDIR: o.tmpDir,
    // No update checks, telemetry or error reports from a worker.
    DISABLE_AUTOUPDATER: '1',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: base.CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC ?? '1',
  };
}
