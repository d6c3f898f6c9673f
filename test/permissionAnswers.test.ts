// The worker's answers to the CLI's permission requests (the worker's permission lock,
// docs/approvals.md): what each kind of call gets, as the CLI sends them (fields measured
// with 2.1.197 and 2.1.332). The real CLI asking them is in approvals.realCli.test.ts.
import { describe, expect, it } from 'vitest';
import { gateInputDigest, UNAPPROVED_NOT_RUN, type GateSpec } from '../src/runner/approvalGate.js';
import { buildArgv } from '../src/runner/argv.js';
import { parseRunOptions } from '../src/runner/options.js';
import { controlResponseLine, NOT_GRANTED, PermissionAnswers } from '../src/runner/permissionAnswers.js';

const ask = (tool: string, input: Record<string, unknown>, id: string, by: 'rule' | 'mode' = 'rule') => ({
  subtype: 'can_use_tool',
  tool_name: tool,
  input,
  tool_use_id: id,
  ...(by === 'rule' ? { matched_ask_rule: { source: 'flagSettings', tool_name: tool } } : {}),
});

/** The Write call a person was shown and allowed. */
const write = { file_path: '/w/a', content: 'x', opts: [1, { y: 'é', x: null }] };

const gate = (over: Partial<GateSpec> = {}): GateSpec => ({
  rules: ['Bash(git push:*)', 'Write', 'AskUserQuestion'],
  decisions: {
    approved: { decision: 'allow', tool: 'Write', inputSha256: gateInputDigest(write) },
    tampered: { decision: 'allow', tool: 'Write', inputSha256: gateInputDigest(write) },
    undigested: { decision: 'allow', tool: 'Write' },
    changed: { decision: 'allow', tool: 'AskUserQuestion', updatedInput: { questions: [], answers: { 'Which?': 'B' } } },
    denied: { decision: 'deny', tool: 'Bash', message: 'not this one' },
  },
  runKey: 'k',
  lock: true,
  bypass: true,
  ...over,
});

describe("the worker's permission answers", () => {
  it('allows an approved call once a run, by its tool_use_id, with the input the person was shown or gave', () => {
    const answers = new PermissionAnswers(gate());
    // Keys in another order than the stored input: the digests agree.
    const reordered = { opts: [1, { x: null, y: 'é' }], content: 'x', file_path: '/w/a' };
    expect(answers.answer(ask('Write', reordered, 'approved'))).toEqual({ behavior: 'allow', updatedInput: reordered });
    expect(answers.answer(ask('Write', write, 'approved'))).toEqual({ behavior: 'deny', message: UNAPPROVED_NOT_RUN });
    // The same tool_use_id with other input (a session file the agent rewrote): refused.
    expect(answers.answer(ask('Write', { ...write, file_path: '/etc/passwd' }, 'tampered'))).toEqual({ behavior: 'deny', message: UNAPPROVED_NOT_RUN });
    expect(answers.answer(ask('Write', write, 'undigested'))).toEqual({ behavior: 'deny', message: UNAPPROVED_NOT_RUN });
    expect(answers.answer(ask('AskUserQuestion', { questions: [] }, 'changed'))).toEqual({ behavior: 'allow', updatedInput: { questions: [], answers: { 'Which?': 'B' } } });
    // An allow recorded for another tool opens nothing; a deny is told to the model.
    expect(answers.answer(ask('Bash', { command: 'ls' }, 'changed'))).toEqual({ behavior: 'deny', message: UNAPPROVED_NOT_RUN });
    expect(answers.answer(ask('Bash', { command: 'git push' }, 'denied'))).toEqual({ behavior: 'deny', message: 'not this one' });
  });

  it('refuses a gated call no person decided (its hook was killed), and answers the calls the rules do not gate as the mode would', () => {
    const answers = new PermissionAnswers(gate());
    expect(answers.answer(ask('Write', { file_path: '/w/b' }, 't1'))).toEqual({ behavior: 'deny', message: UNAPPROVED_NOT_RUN });
    expect(answers.answer(ask('Bash', { command: 'cd r && git  push' }, 't2'))).toEqual({ behavior: 'deny', message: UNAPPROVED_NOT_RUN });
    // Bash is asked whole for its pattern: an ungated command runs in bypassPermissions...
    expect(answers.answer(ask('Bash', { command: 'ls' }, 't3'))).toEqual({ behavior: 'allow', updatedInput: { command: 'ls' } });
    // ...also when 2.1.197 says a rule asked...
    const old = { subtype: 'can_use_tool', tool_name: 'Bash', input: { command: 'ls' }, tool_use_id: 't4', decision_reason_type: 'rule' };
    expect(answers.answer(old)).toEqual({ behavior: 'allow', updatedInput: { command: 'ls' } });
    // ...but not when the mode asked (a protected path, say), nor in another mode, nor for a tool no rule names.
    expect(answers.answer(ask('Bash', { command: 'ls' }, 't5', 'mode'))).toEqual({ behavior: 'deny', message: NOT_GRANTED });
    expect(new PermissionAnswers(gate({ bypass: false })).answer(ask('Bash', { command: 'ls' }, 't6'))).toEqual({ behavior: 'deny', message: NOT_GRANTED });
    expect(answers.answer(ask('Edit', { file_path: '/w/c' }, 't7', 'mode'))).toEqual({ behavior: 'deny', message: NOT_GRANTED });
  });

  it('refuses what it cannot read, and leaves other control requests to the caller', () => {
    const answers = new PermissionAnswers(gate());
    expect(answers.answer({ subtype: 'can_use_tool', tool_name: 'Write', input: 'not an object' })).toEqual({ behavior: 'deny', message: UNAPPROVED_NOT_RUN });
    expect(answers.answer({ subtype: 'can_use_tool', tool_name: 'Write', input: {}, tool_use_id: '__proto__' })).toEqual({ behavior: 'deny', message: UNAPPROVED_NOT_RUN });
    expect(answers.answer({ subtype: 'mcp_message' })).toBeUndefined();
    expect(answers.answer(null)).toBeUndefined();
    expect(JSON.parse(controlResponseLine('r1', { behavior: 'deny', message: 'm' }))).toEqual({ type: 'control_response', response: { subtype: 'success', request_id: 'r1', response: { behavior: 'deny', message: 'm' } } });
    expect(JSON.parse(controlResponseLine('r2', { error: 'e' }))).toEqual({ type: 'control_response', response: { subtype: 'error', request_id: 'r2', error: 'e' } });
  });

  it('a locked run speaks stream-json on stdin: no prompt in argv, the prompt tool on stdio', () => {
    const base = { cwd: '/w', configDir: '/c', tmpDir: '/t', session: { mode: 'new', sessionId: '6f1c1a52-4d8e-4b44-9a57-0d1a5e2b9c11' }, prompt: 'go', permissionMode: 'bypassPermissions' } as const;
    const locked = buildArgv(parseRunOptions({ ...base, gate: { rules: ['Write'], decisions: {}, runKey: 'k', lock: true } }));
    expect(locked).toEqual(expect.arrayContaining(['--input-format', 'stream-json', '--permission-prompt-tool', 'stdio']));
    expect(locked).not.toContain('go');
    const unlocked = buildArgv(parseRunOptions({ ...base, gate: { rules: ['Write'], decisions: {}, runKey: 'k' } }));
    expect(unlocked).not.toContain('--input-format');
    expect(unlocked.slice(-2)).toEqual(['--', 'go']);
    // bypass comes from the run's own mode, not from the caller.
    expect(() => parseRunOptions({ ...base, gate: { rules: ['Write'], decisions: {}, runKey: 'k', bypass: true } })).toThrow(/gate/);
  });
});
