// Which Claude Code CLI versions agentq is tested with, and how to ask a binary its
// version. The pinned dependency is the default; the previous one is kept in the test
// matrix so a fleet can upgrade while conversations are open (docs/cli-versions.md).
import { createRequire } from 'node:module';
import path from 'node:path';
import { execa } from 'execa';

/** The version of `@anthropic-ai/claude-code` in package.json: what `npm ci` installs and workers run by default. */
export const PINNED_CLI_VERSION = '2.1.332';

/** The earlier version the contract tests also run against (the devDependency alias `claude-code-2.1.197`). */
export const PREVIOUS_CLI_VERSION = '2.1.197';

/** Every version the tests run the real CLI with, newest first. */
export const TESTED_CLI_VERSIONS: readonly string[] = [PINNED_CLI_VERSION, PREVIOUS_CLI_VERSION];

export function isTestedCliVersion(version: string): boolean {
  return TESTED_CLI_VERSIONS.includes(version);
}

/**
 * A version as the CLI's init event reports it, if it looks like one. The line comes from a
 * process the worker does not control (AGENTQ_CLAUDE_PATH may be any binary), and the value
 * is stored on the turn and printed by `agentq show`: nothing long, nothing that is not
 * letters, digits, `.`, `+`, `-`.
 */
export function reportedCliVersion(value: unknown): string | undefined {
  return typeof value === 'string' && /^[0-9A-Za-z.+-]{1,64}$/.test(value) ? value : undefined;
}

/** The version in `claude --version` output (`2.1.332 (Claude Code)`), or undefined. */
export function parseCliVersion(output: string): string | undefined {
  return /\b(\d+\.\d+\.\d+)\b/.exec(output)?.[1];
}

export type CliVersionProbe = { ok: true; version?: string; output: string } | { ok: false; message: string };

/** Runs `<claudePath> --version` with `env` only (no shell, stdin closed). */
export async function probeCliVersion(claudePath: string, env: Readonly<Record<string, string>>, timeoutMs = 10_000): Promise<CliVersionProbe> {
  const r = await execa(claudePath, ['--version'], { reject: false, timeout: timeoutMs, stdin: 'ignore', env: { ...env }, extendEnv: false });
  if (r.exitCode !== 0) return { ok: false, message: r.shortMessage ?? `exit code ${String(r.exitCode)}` };
  const output = r.stdout.trim();
  const version = parseCliVersion(output);
  return version === undefined ? { ok: true, output } : { ok: true, version, output };
}

/** What an operator should know about a version: tested, or not (and which are). */
export function describeCliVersion(version: string | undefined): { tested: boolean; note: string } {
  if (version === undefined) return { tested: false, note: 'version not recognised' };
  if (isTestedCliVersion(version)) return { tested: true, note: version === PINNED_CLI_VERSION ? 'the pinned, tested version' : 'a tested version' };
  return { tested: false, note: `not a version agentq was tested with (tested: ${TESTED_CLI_VERSIONS.join(', ')})` };
}

/** The npm package that holds an installed CLI version: the pinned dependency, or the devDependency alias of the previous one. */
function packageOf(version: string): string {
  if (version === PINNED_CLI_VERSION) return '@anthropic-ai/claude-code';
  if (version === PREVIOUS_CLI_VERSION) return `claude-code-${PREVIOUS_CLI_VERSION}`;
  throw new Error(`no CLI ${version} is installed with agentq (installed: ${TESTED_CLI_VERSIONS.join(', ')})`);
}

/**
 * The binary of a tested CLI version installed with agentq: the pinned one always, the
 * previous one only in a development install (`npm ci` with devDependencies).
 */
export function installedCliPath(version: string): string {
  const pkg = packageOf(version);
  let pkgJson: string;
  try {
    pkgJson = createRequire(import.meta.url).resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(`CLI ${version} is not installed (package ${pkg}: a devDependency; run npm ci in a development checkout)`);
  }
  return path.join(path.dirname(pkgJson), 'bin', 'claude.exe');
}
