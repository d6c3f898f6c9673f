// The CLI versions agentq is tested with: the pin in package.json, the installed binaries,
// and what an operator is told about a version.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { cliVersionsText } from '../src/cli/turnCommands.js';
import {
  describeCliVersion,
  installedCliPath,
  parseCliVersion,
  PINNED_CLI_VERSION,
  PREVIOUS_CLI_VERSION,
  probeCliVersion,
  reportedCliVersion,
  TESTED_CLI_VERSIONS,
} from '../src/runner/cliVersion.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

describe('CLI versions', () => {
  it('the pinned version is the one package.json installs, and the previous one is its devDependency alias', () => {
    expect(pkg.dependencies['@anthropic-ai/claude-code']).toBe(PINNED_CLI_VERSION);
    expect(pkg.devDependencies[`claude-code-${PREVIOUS_CLI_VERSION}`]).toBe(`npm:@anthropic-ai/claude-code@${PREVIOUS_CLI_VERSION}`);
    expect(TESTED_CLI_VERSIONS).toEqual([PINNED_CLI_VERSION, PREVIOUS_CLI_VERSION]);
  });

  it('each installed binary says the version it is installed as', async () => {
    for (const version of TESTED_CLI_VERSIONS) {
      const probe = await probeCliVersion(installedCliPath(version), { PATH: process.env.PATH ?? '/usr/bin:/bin' });
      expect(probe).toMatchObject({ ok: true, version, output: `${version} (Claude Code)` });
    }
  });

  it('a binary that does not run is reported, not thrown', async () => {
    const probe = await probeCliVersion('/nonexistent/claude', {});
    expect(probe.ok).toBe(false);
  });

  it('parses `claude --version` and says whether a version was tested', () => {
    expect(parseCliVersion('2.1.332 (Claude Code)')).toBe('2.1.332');
    expect(parseCliVersion('fake-1 (Claude Code)')).toBeUndefined();
    expect(describeCliVersion(PINNED_CLI_VERSION)).toEqual({ tested: true, note: 'the pinned, tested version' });
    expect(describeCliVersion(PREVIOUS_CLI_VERSION)).toEqual({ tested: true, note: 'a tested version' });
    expect(describeCliVersion('2.1.400')).toEqual({ tested: false, note: `not a version agentq was tested with (tested: ${TESTED_CLI_VERSIONS.join(', ')})` });
    expect(describeCliVersion(undefined).tested).toBe(false);
  });

  it('`agentq show` names one version, or each attempt\'s when they differ', () => {
    expect(cliVersionsText({ '1': '2.1.332', '2': '2.1.332' })).toBe('2.1.332');
    expect(cliVersionsText({ '2': '2.1.332', '1': '2.1.197', '10': '2.1.332' })).toBe('2.1.197 (attempt 1), 2.1.332 (attempt 2), 2.1.332 (attempt 10)');
  });

  it('a version reported in an init event is stored only when it looks like one', () => {
    expect(reportedCliVersion('2.1.332')).toBe('2.1.332');
    expect(reportedCliVersion('fake-1')).toBe('fake-1');
    expect(reportedCliVersion('2.1.332\u001b]0;pwned\u0007')).toBeUndefined();
    expect(reportedCliVersion('9'.repeat(65))).toBeUndefined();
    expect(reportedCliVersion('')).toBeUndefined();
    expect(reportedCliVersion(2)).toBeUndefined();
  });

  it('only the tested versions are installed with agentq', () => {
    expect(() => installedCliPath('2.1.100')).toThrow(/no CLI 2.1.100 is installed with agentq/);
  });
});
