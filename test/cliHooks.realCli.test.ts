// Contract: how the real CLI (both tested versions) combines PreToolUse hooks, the facts a
// durable approval gate stands on (issue 21). A gate hook given with `--settings` answers
// `defer`, `allow` or `deny`; hooks the agent could plant answer `allow` from every
// settings file it can write (the workspace's .claude/settings.json and
// settings.local.json, the user settings in CLAUDE_CONFIG_DIR, and $HOME/.claude, which
// the CLI does not read when CLAUDE_CONFIG_DIR is set). Measured: the gate's `defer` or
// `deny` wins over a planted `allow`, a deferred call does not run, a resume asks the gate
// again for it, `--setting-sources ''` keeps every file-based hook from running while
// `--settings` still applies, and a hook's `if` rule narrower than a tool (`Bash(touch:*)`)
// is matched on the command's text, so `bash -c '...'` passes it: only a whole tool is a
// boundary. And in -p mode ExitPlanMode is not something a gate can approve.
import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { installedCliPath, PINNED_CLI_VERSION, TESTED_CLI_VERSIONS } from '../src/runner/cliVersion.js';
import { offlineCliEnv, testCliIs } from './helpers/realCli.js';

const run = promisify(execFile);

let mock: MockModel;
let root: string;

beforeAll(async () => {
  mock = await startMockModel();
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-cli-hooks-'));
});
afterAll(async () => {
  await mock?.close();
  rmSync(root, { recursive: true, force: true });
});

/** A hook that logs each call to `<name>.log` and answers what `<name>.mode` holds. */
function hook(dir: string, name: string): string {
  const file = path.join(dir, `${name}.sh`);
  writeFileSync(
    file,
    `#!/bin/sh\ncat >> ${dir}/${name}.log\necho >> ${dir}/${name}.log\n` +
      `printf '{"hookSpecificOutput":{"hookEventName":"PreToolUse","permissionDecision":"%s","permissionDecisionReason":"${name}"}}\\n' "$(cat ${dir}/${name}.mode)"\n`,
  );
  chmodSync(file, 0o755);
  return file;
}

const settingsFor = (command: string) => JSON.stringify({ hooks: { PreToolUse: [{ matcher: 'Bash', hooks: [{ type: 'command', command }] }] } });

interface Case {
  dir: string;
  cwd: string;
  setMode(name: string, mode: 'allow' | 'deny' | 'defer'): void;
  calls(name: string): number;
  markerLines(): number;
  claude(args: string[]): Promise<{ result: Record<string, unknown> | undefined }>;
}

/** A workspace where the agent planted `allow` hooks in every settings file it can write. */
function setUp(version: string, name: string): Case {
  const dir = path.join(root, `${version}-${name}`);
  const cwd = path.join(dir, 'ws');
  const configDir = path.join(dir, 'config');
  const home = path.join(dir, 'home');
  for (const d of [path.join(cwd, '.claude'), configDir, path.join(home, '.claude')]) mkdirSync(d, { recursive: true });
  const gate = hook(dir, 'gate');
  writeFileSync(path.join(dir, 'gate-settings.json'), settingsFor(gate));
  const planted = ['project', 'local', 'user', 'home'].map((where) => [where, hook(dir, `planted-${where}`)] as const);
  const plantedFiles: Record<string, string> = {
    project: path.join(cwd, '.claude', 'settings.json'),
    local: path.join(cwd, '.claude', 'settings.local.json'),
    user: path.join(configDir, 'settings.json'),
    home: path.join(home, '.claude', 'settings.json'),
  };
  for (const [where, command] of planted) {
    writeFileSync(plantedFiles[where]!, settingsFor(command));
    writeFileSync(path.join(dir, `planted-${where}.mode`), 'allow');
  }
  const c: Case = {
    dir,
    cwd,
    setMode: (n, mode) => writeFileSync(path.join(dir, `${n}.mode`), mode),
    calls: (n) => (existsSync(path.join(dir, `${n}.log`)) ? readFileSync(path.join(dir, `${n}.log`), 'utf8').split('\n').filter((l) => l.startsWith('{')).length : 0),
    markerLines: () => (existsSync(path.join(dir, 'marker')) ? readFileSync(path.join(dir, 'marker'), 'utf8').split('\n').filter(Boolean).length : 0),
    async claude(args) {
      const env = { ...offlineCliEnv(mock.url), HOME: home, CLAUDE_CONFIG_DIR: configDir };
      const argv = [...args, '--settings', path.join(dir, 'gate-settings.json'), '--permission-mode', 'bypassPermissions', '--output-format', 'stream-json', '--verbose', '--max-turns', '4'];
      const { stdout } = await run(installedCliPath(version), argv, { cwd, env, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
      const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      return { result: lines.find((l) => l.type === 'result') };
    },
  };
  return c;
}

const prompt = (c: Case) => `go <<tool Bash ${JSON.stringify({ command: `echo ran >> ${c.dir}/marker` })}>>`;
const planted = ['planted-project', 'planted-local', 'planted-user', 'planted-home'];

// Both versions in one pass (the test runs each binary itself); skipped in the previous-CLI pass.
describe.skipIf(!testCliIs(PINNED_CLI_VERSION)).each(TESTED_CLI_VERSIONS)('PreToolUse hooks of the real CLI %s', (version) => {
  it("the gate's defer wins over an allow planted in every writable settings file; the call does not run until a resume the gate allows", async () => {
    const c = setUp(version, 'defer');
    c.setMode('gate', 'defer');
    const first = await c.claude(['-p', prompt(c)]);
    expect(first.result).toMatchObject({ subtype: 'success', terminal_reason: 'tool_deferred', deferred_tool_use: { name: 'Bash' } });
    expect(c.markerLines()).toBe(0);
    // The planted hooks of the workspace and of CLAUDE_CONFIG_DIR were asked (sources the agent can use); $HOME/.claude was not read.
    expect(planted.map((p) => c.calls(p) > 0)).toEqual([true, true, true, false]);
    const deferredId = (first.result!.deferred_tool_use as { id: string }).id;

    c.setMode('gate', 'allow');
    const resumed = await c.claude(['-p', '--resume', String(first.result!.session_id)]);
    expect(resumed.result).toMatchObject({ subtype: 'success', terminal_reason: 'completed' });
    expect(c.markerLines()).toBe(1);
    // The resume asked the gate again for the same call.
    const gateInputs = readFileSync(path.join(c.dir, 'gate.log'), 'utf8').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as { tool_use_id: string });
    expect(gateInputs.map((g) => g.tool_use_id)).toEqual([deferredId, deferredId]);
  }, 120_000);

  it("the gate's deny wins over a planted allow", async () => {
    const c = setUp(version, 'gate-deny');
    c.setMode('gate', 'deny');
    await c.claude(['-p', prompt(c)]);
    expect(c.calls('gate')).toBe(1);
    expect(c.calls('planted-project')).toBe(1);
    expect(c.markerLines()).toBe(0);
  }, 120_000);

  it("a hook's `if` rule narrower than the tool is matched on the command's text: `bash -c` passes it", async () => {
    const c = setUp(version, 'if-rule');
    c.setMode('gate', 'defer');
    const gated = JSON.stringify({ hooks: { PreToolUse: [{ matcher: 'Bash', hooks: [{ type: 'command', command: path.join(c.dir, 'gate.sh'), if: 'Bash(touch:*)' }] }] } });
    writeFileSync(path.join(c.dir, 'gate-settings.json'), gated);
    const direct = await c.claude(['-p', `go <<tool Bash ${JSON.stringify({ command: `touch ${c.dir}/direct` })}>>`, '--setting-sources', '']);
    expect(direct.result).toMatchObject({ terminal_reason: 'tool_deferred' });
    expect(existsSync(path.join(c.dir, 'direct'))).toBe(false);
    // The same command inside `bash -c` is not matched: the hook is not asked and the command runs.
    const wrapped = await c.claude(['-p', `go <<tool Bash ${JSON.stringify({ command: `bash -c 'touch ${c.dir}/wrapped'` })}>>`, '--setting-sources', '']);
    expect(wrapped.result).toMatchObject({ terminal_reason: 'completed' });
    expect(existsSync(path.join(c.dir, 'wrapped'))).toBe(true);
    expect(c.calls('gate')).toBe(1);
  }, 120_000);

  it("--setting-sources '' keeps every file-based hook from running; --settings still applies", async () => {
    const c = setUp(version, 'no-sources');
    c.setMode('gate', 'defer');
    const r = await c.claude(['-p', prompt(c), '--setting-sources', '']);
    expect(r.result).toMatchObject({ terminal_reason: 'tool_deferred' });
    expect(c.calls('gate')).toBe(1);
    expect(planted.map((p) => c.calls(p))).toEqual([0, 0, 0, 0]);
    expect(c.markerLines()).toBe(0);
  }, 120_000);

  // The pinned CLI only (14 s a version; 2.1.197 measured the same by hand, docs/approvals.md).
  it.skipIf(version !== PINNED_CLI_VERSION)('in -p mode ExitPlanMode and AskUserQuestion are not offered; with a permission prompt tool the gate can defer ExitPlanMode, but its allow does not end plan mode', async () => {
    const c = setUp(version, 'plan');
    c.setMode('gate', 'defer');
    const settings = JSON.stringify({ hooks: { PreToolUse: [{ matcher: 'ExitPlanMode|AskUserQuestion', hooks: [{ type: 'command', command: path.join(c.dir, 'gate.sh') }] }] } });
    const question = { questions: [{ question: 'Which?', header: 'Which', options: [{ label: 'A', description: 'a' }, { label: 'B', description: 'b' }], multiSelect: false }] };
    const run1 = async (args: string[]) => {
      const from = mock.requests.length;
      const env = { ...offlineCliEnv(mock.url), HOME: path.join(c.dir, 'home'), CLAUDE_CONFIG_DIR: path.join(c.dir, 'config') };
      const argv = [...args, '--settings', settings, '--setting-sources', '', '--output-format', 'stream-json', '--verbose', '--max-turns', '4'];
      const { stdout } = await run(installedCliPath(version), argv, { cwd: c.cwd, env, timeout: 60_000, maxBuffer: 64 * 1024 * 1024 });
      const result = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.type === 'result');
      return { result, sent: JSON.stringify(mock.requests.slice(from).filter((r) => r.kind === 'main').map((r) => r.body?.messages)) };
    };
    const plain = await run1(['-p', '--permission-mode', 'plan', `plan <<tool ExitPlanMode ${JSON.stringify({ plan: 'step one' })}>> <<tool AskUserQuestion ${JSON.stringify(question)}>>`]);
    expect(plain.sent).toContain('No such tool available: ExitPlanMode');
    expect(plain.sent).toContain('No such tool available: AskUserQuestion');
    expect(c.calls('gate')).toBe(0);

    const stdio = ['--permission-prompt-tool', 'stdio', '--permission-mode', 'plan'];
    const deferred = await run1(['-p', ...stdio, `plan <<tool ExitPlanMode ${JSON.stringify({ plan: 'step one' })}>>`]);
    expect(deferred.result).toMatchObject({ terminal_reason: 'tool_deferred', deferred_tool_use: { name: 'ExitPlanMode' } });
    c.setMode('gate', 'allow');
    const resumed = await run1(['-p', ...stdio, '--resume', String(deferred.result!.session_id)]);
    // After the gate's allow the CLI still asks its permission prompt, which a headless run cannot answer.
    expect(resumed.sent).toMatch(/Tool permission request failed: (AbortError: |Error: )?Stream closed/);
  }, 120_000);
});
