// The approval gate's hook as the CLI runs it (`sh -c <command>`, the call's JSON on stdin):
// what it answers for each kind of call, and that everything it cannot do blocks the call
// (exit code 2) instead of letting it through.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { callIsGated, DENIED_MESSAGE, GATE_PROCESS_TAG, gateFlags, gateInputDigest, gateSettings, SIBLING_NOT_RUN, SUBAGENT_NOT_GATED, type GateSpec } from '../src/runner/approvalGate.js';
import { signalRun } from '../src/runner/processTree.js';
import { isAlive, waitUntil } from './helpers/processes.js';
import { parseEnqueueInput } from '../src/queue/turnInput.js';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'agentq-gate-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface HookSettings {
  hooks: { PreToolUse: { matcher: string; hooks: { command: string; timeout: number }[] }[] };
}

function runHook(spec: GateSpec, call: unknown, nodePath?: string) {
  const settings = JSON.parse(gateSettings(spec, nodePath)) as HookSettings;
  const { command } = settings.hooks.PreToolUse[0]!.hooks[0]!;
  const r = spawnSync('/bin/sh', ['-c', command], { input: typeof call === 'string' ? call : JSON.stringify(call), env: { PATH: '/usr/bin:/bin', CLAUDE_CODE_TMPDIR: tmp }, encoding: 'utf8' });
  const out = r.stdout.trim() === '' ? undefined : (JSON.parse(r.stdout) as { hookSpecificOutput: { permissionDecision: string; permissionDecisionReason: string; updatedInput?: unknown } }).hookSpecificOutput;
  return { code: r.status, out, stderr: r.stderr };
}

let keys = 0;
const spec = (rules: string[], decisions: GateSpec['decisions'] = {}): GateSpec => ({ rules, decisions, runKey: `k${++keys}` });
const bashCall = (id: string, command: string) => ({ tool_name: 'Bash', tool_use_id: id, tool_input: { command } });

describe('the approval gate hook', () => {
  it('defers the first gated call of a run and refuses later ones with a reason; leaves other tools alone', () => {
    const s = spec(['Bash']);
    expect(runHook(s, bashCall('t1', 'ls')).out).toMatchObject({ permissionDecision: 'defer' });
    expect(runHook(s, bashCall('t2', 'ls')).out).toMatchObject({ permissionDecision: 'deny', permissionDecisionReason: SIBLING_NOT_RUN });
    expect(runHook(s, { tool_name: 'Read', tool_use_id: 't3', tool_input: {} })).toMatchObject({ code: 0, out: undefined });
  });

  it("refuses a subagent's gated call with a reason (the CLI would drop its deferral) without using up the run's one deferral", () => {
    const s = spec(['Bash']);
    const sub = { ...bashCall('s1', 'ls'), agent_id: 'a4cc4c01b6713b2f7', agent_type: 'general-purpose' };
    expect(runHook(s, sub).out).toMatchObject({ permissionDecision: 'deny', permissionDecisionReason: SUBAGENT_NOT_GATED });
    expect(runHook(s, { ...sub, tool_name: 'Read', tool_input: {} })).toMatchObject({ code: 0, out: undefined });
    expect(runHook(s, bashCall('m1', 'ls')).out).toMatchObject({ permissionDecision: 'defer' });
  });

  it('answers a recorded decision by tool_use_id: allow (with the input a person gave), deny with its message', () => {
    const s = spec(['Bash'], {
      a: { decision: 'allow', tool: 'Bash', updatedInput: { command: 'echo safer' } },
      d: { decision: 'deny', tool: 'Bash', message: 'not now' },
      n: { decision: 'deny', tool: 'Bash' },
      w: { decision: 'allow', tool: 'Write' },
    });
    expect(runHook(s, bashCall('a', 'rm -rf /')).out).toEqual({ hookEventName: 'PreToolUse', permissionDecision: 'allow', permissionDecisionReason: expect.any(String), updatedInput: { command: 'echo safer' } });
    expect(runHook(s, bashCall('d', 'ls')).out).toMatchObject({ permissionDecision: 'deny', permissionDecisionReason: 'not now' });
    expect(runHook(s, bashCall('n', 'ls')).out).toMatchObject({ permissionDecision: 'deny', permissionDecisionReason: DENIED_MESSAGE });
    // An allow recorded for another tool does not open this one.
    expect(runHook(s, bashCall('w', 'ls')).out).toMatchObject({ permissionDecision: 'deny' });
  });

  it('an input nested too deep to digest gets no digest (the lock refuses its call) instead of failing the worker', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < 200_000; i++) deep = [deep];
    expect(gateInputDigest(deep)).toBeUndefined();
    expect(gateInputDigest({ a: [1, 2] })).toMatch(/^[0-9a-f]{64}$/);
  });

  it('the lock adds an ask rule for the whole gated tools (a Bash pattern: Bash, in bypassPermissions only), and no PermissionRequest hook; without it, none', () => {
    type Settings = { permissions?: { ask: string[] }; hooks: Record<string, { matcher: string }[]> };
    const rules = ['Bash(git push:*)', 'mcp__crm__send_reply'];
    const locked = JSON.parse(gateSettings({ ...spec(rules), lock: true, bypass: true })) as Settings;
    expect(locked.permissions).toEqual({ ask: ['Bash', 'mcp__crm__send_reply'] });
    expect(Object.keys(locked.hooks)).toEqual(['PreToolUse']);
    // Another mode: the pattern is left to the mode (a lock on Bash would decide the calls it does not match).
    expect(JSON.parse(gateSettings({ ...spec(rules), lock: true })).permissions).toEqual({ ask: ['mcp__crm__send_reply'] });
    expect(JSON.parse(gateSettings({ ...spec(['Bash', 'Bash(git push:*)']), lock: true })).permissions).toEqual({ ask: ['Bash'] });
    // Nothing to lock: no ask rule.
    expect(JSON.parse(gateSettings({ ...spec(['Bash(git push:*)']), lock: true })).permissions).toBeUndefined();
    expect(JSON.parse(gateSettings(spec(['Bash']))).permissions).toBeUndefined();
  });

  it('a Bash pattern matches the command text anywhere (bash -c, &&, extra spaces); other tools with a pattern are gated whole', () => {
    const s = spec(['Bash(git push:*)', 'Write(/etc/*)']);
    expect(runHook(s, bashCall('p1', 'git status')).out).toBeUndefined();
    expect(runHook(spec(['Bash(git push:*)']), bashCall('p2', "bash -c 'cd repo &&  git   push origin'")).out).toMatchObject({ permissionDecision: 'defer' });
    expect(runHook(spec(['Write(/etc/*)']), { tool_name: 'Write', tool_use_id: 'w1', tool_input: { file_path: '/tmp/x' } }).out).toMatchObject({ permissionDecision: 'defer' });
    expect(runHook(spec(['*']), { tool_name: 'mcp__crm__send_reply', tool_use_id: 'm1', tool_input: {} }).out).toMatchObject({ permissionDecision: 'defer' });
  });

  it('the TypeScript matcher (callIsGated) agrees with the hook on every call of a table', () => {
    const rules = [['Bash(git push:*)'], ['Bash'], ['Bash(*)'], ['Write(/etc/*)', 'Bash(refund :*)'], ['*'], ['mcp__crm__send_reply'], ['Bash(npm   publish)']];
    const calls: [string, Record<string, unknown>][] = [
      ['Bash', { command: 'git status' }],
      ['Bash', { command: "bash -c 'cd r &&  git   push'" }],
      ['Bash', { command: 'refund  42' }],
      ['Bash', { command: 'npm publish --tag x' }],
      ['Bash', {}],
      ['Bash', { command: 42 }],
      ['Write', { file_path: '/tmp/x' }],
      ['mcp__crm__send_reply', { text: 'hi' }],
      ['Read', { file_path: '/etc/passwd' }],
    ];
    let n = 0;
    for (const r of rules) {
      for (const [tool, input] of calls) {
        const hook = runHook(spec(r), { tool_name: tool, tool_use_id: `m${++n}`, tool_input: input });
        expect(callIsGated(r, tool, input), `${r.join(',')} ${tool} ${JSON.stringify(input)}`).toBe(hook.out?.permissionDecision === 'defer');
      }
    }
  });

  it('fails closed: unreadable input, no node, or no place for its marker block the call (exit 2)', () => {
    expect(runHook(spec(['Bash']), 'not json')).toMatchObject({ code: 2, out: undefined });
    expect(runHook(spec(['Bash']), bashCall('n1', 'ls'), '/nonexistent/node')).toMatchObject({ code: 2, out: undefined });
    const s = spec(['Bash']);
    const settings = JSON.parse(gateSettings(s)) as HookSettings;
    const r = spawnSync('/bin/sh', ['-c', settings.hooks.PreToolUse[0]!.hooks[0]!.command], { input: JSON.stringify(bashCall('x', 'ls')), env: { PATH: '/usr/bin:/bin', CLAUDE_CODE_TMPDIR: path.join(tmp, 'missing', 'dir') }, encoding: 'utf8' });
    expect(r.status).toBe(2);
    expect(existsSync(path.join(tmp, 'missing'))).toBe(false);
  });

  it('the CLI reads no settings file in a gated run, and asks the worker (the permission prompt tool) with the lock or for AskUserQuestion', () => {
    const flags = gateFlags(spec(['Bash']));
    expect(flags.slice(0, 3)).toEqual(['--setting-sources', '', '--settings']);
    expect(flags).not.toContain('--permission-prompt-tool');
    expect(gateFlags({ ...spec(['Bash']), lock: true })).toEqual(expect.arrayContaining(['--permission-prompt-tool', 'stdio']));
    expect(gateFlags({ ...spec(['Bash(git push:*)']), lock: true })).not.toContain('--permission-prompt-tool');
    expect(gateFlags(spec(['AskUserQuestion']))).toEqual(expect.arrayContaining(['--permission-prompt-tool', 'stdio']));
    expect(JSON.parse(gateSettings({ ...spec(['AskUserQuestion', 'Write']), lock: true })).permissions).toEqual({ ask: ['AskUserQuestion', 'Write'] });
    const settings = JSON.parse(gateSettings(spec(['Bash(git push:*)', 'mcp__crm__send_reply']))) as HookSettings;
    expect(settings.hooks.PreToolUse[0]!.matcher).toBe('Bash|mcp__crm__send_reply');
  });

  it('a policy that is not valid is refused at enqueue, naming the field', () => {
    expect(() => parseEnqueueInput({ conversationId: 'c', prompt: 'p', options: { approvals: { tools: ['Bash; rm'] } } }, 1000)).toThrow(/options\.approvals\.tools\.0/);
    expect(() => parseEnqueueInput({ conversationId: 'c', prompt: 'p', options: { approvals: { tools: [] } } }, 1000)).toThrow(/options\.approvals\.tools/);
    expect(() => parseEnqueueInput({ conversationId: 'c', prompt: 'p', approvals: { tools: ['Bash'], timeoutMs: 5 } }, 1000)).toThrow(/approvals\.timeoutMs/);
    expect(parseEnqueueInput({ conversationId: 'c', prompt: 'p', approvals: null }, 1000).approvals).toBeNull();
  });
});

/** Settles once the shell `pid` ignores SIGTERM (its `trap` ran) or is gone; polled without a timer's delay. */
async function trapSet(pid: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    let status: string;
    try {
      status = readFileSync(`/proc/${pid}/status`, 'utf8');
    } catch {
      return;
    }
    const ignored = BigInt(`0x${/^SigIgn:\s*([0-9a-f]+)/m.exec(status)?.[1] ?? '0'}`);
    if ((ignored & (1n << 14n)) !== 0n) return;
    if (Date.now() > deadline) throw new Error(`the gate's shell ${pid} set no trap within 10 s`);
    await new Promise((r) => setImmediate(r));
  }
}

describe('the approval gate hook under a stopping run', () => {
  it('SIGTERM to its process group mid-answer never leaves the call unanswered (an answer, or exit 2)', async () => {
    const { spawn } = await import('node:child_process');
    for (let i = 0; i < 6; i++) {
      const settings = JSON.parse(gateSettings(spec(['Bash']))) as HookSettings;
      const child = spawn('/bin/sh', ['-c', settings.hooks.PreToolUse[0]!.hooks[0]!.command], { detached: true, env: { PATH: '/usr/bin:/bin', CLAUDE_CODE_TMPDIR: tmp } });
      let stdout = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      child.stdin.end(JSON.stringify(bashCall(`sig${i}`, 'ls')));
      // From its first command on (a signal before that is what GATE_PROCESS_TAG is for, in
      // the test below): at once, then while node starts and answers.
      await trapSet(child.pid!);
      await new Promise((r) => setTimeout(r, i * 8));
      try {
        process.kill(-child.pid!, 'SIGTERM');
      } catch (err) {
        // It answered already.
        if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
      }
      const end = await exited;
      expect(end.signal).toBeNull();
      if (end.code === 0) expect(JSON.parse(stdout)).toMatchObject({ hookSpecificOutput: { permissionDecision: 'defer' } });
      else expect(end.code).toBe(2);
    }
  });

  it('a stopping run never sends the gate SIGTERM (its shell could get it before its trap runs), and SIGKILL still ends it', async () => {
    const { spawn } = await import('node:child_process');
    expect(gateSettings(spec(['Bash']))).toContain(GATE_PROCESS_TAG);
    // A run's process group: a leader (the CLI), an untagged child (a tool) and a tagged one
    // (a hook) that, unlike the gate, does not ignore SIGTERM, so a SIGTERM sent to it shows.
    const stay = "setInterval(() => {}, 1000)";
    const leader = spawn('/bin/sh', ['-c', `node -e '${stay}' & node -e '${stay}' ${GATE_PROCESS_TAG} & exec sleep 60`], { detached: true, stdio: 'ignore' });
    const root = leader.pid!;
    const inGroup = () => readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).filter((pid) => isAlive(pid) && pgidOf(pid) === root);
    const tagged = () => inGroup().filter((pid) => readFileSync(`/proc/${pid}/cmdline`).includes(GATE_PROCESS_TAG));
    try {
      await waitUntil(() => inGroup().length === 3 && tagged().length === 1 && readFileSync(`/proc/${root}/cmdline`, 'latin1').startsWith('sleep'), 'the group to start');
      const hook = tagged()[0]!;
      signalRun(root, 'no-such-run', 'SIGTERM', { spareTagged: GATE_PROCESS_TAG });
      await waitUntil(() => inGroup().length === 1, 'the leader and the tool to end');
      expect(inGroup()).toEqual([hook]);
      signalRun(root, 'no-such-run', 'SIGKILL', { spareTagged: GATE_PROCESS_TAG });
      await waitUntil(() => !isAlive(hook), 'SIGKILL to end the hook');
    } finally {
      for (const pid of inGroup()) process.kill(pid, 'SIGKILL');
    }
  });

  it("a fork that has not exec'd yet (a hook being started is one, with its CLI's command line) is spared SIGTERM too", async () => {
    const { spawn } = await import('node:child_process');
    const beats = path.join(tmp, 'beats');
    const count = () => (existsSync(beats) ? readFileSync(beats, 'utf8').length : 0);
    // The subshell is a fork of the leader's shell that never execs: it stands for a hook
    // between its fork and its exec, which a SIGTERM would end before its trap is set.
    const leader = spawn('/bin/sh', ['-c', `(while :; do printf x >> '${beats}'; sleep 0.05; done) & wait`], { detached: true, stdio: 'ignore' });
    const root = leader.pid!;
    const inGroup = () => readdirSync('/proc').filter((n) => /^\d+$/.test(n)).map(Number).filter((pid) => isAlive(pid) && pgidOf(pid) === root);
    const cmdline = (pid: number) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`);
      } catch {
        return Buffer.alloc(0);
      }
    };
    const forks = () => inGroup().filter((pid) => pid !== root && cmdline(pid).length > 0 && cmdline(pid).equals(cmdline(root)));
    try {
      await waitUntil(() => forks().length === 1 && count() > 0, 'the fork to start');
      const fork = forks()[0]!;
      signalRun(root, 'no-such-run', 'SIGTERM', { spareTagged: GATE_PROCESS_TAG });
      await waitUntil(() => !isAlive(root), 'the leader to end');
      const before = count();
      await waitUntil(() => count() >= before + 3, 'the fork to go on beating');
      expect(isAlive(fork)).toBe(true);
      signalRun(root, 'no-such-run', 'SIGKILL', { spareTagged: GATE_PROCESS_TAG });
      await waitUntil(() => !isAlive(fork), 'SIGKILL to end the fork');
    } finally {
      for (const pid of inGroup()) process.kill(pid, 'SIGKILL');
    }
  });
});

function pgidOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return undefined;
  }
}
