import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildArgv } from '../src/runner/argv.js';
import { parseEventLine } from '../src/runner/events.js';
import { LineSplitter, LineTooLongError, TailBuffer } from '../src/runner/lineSplitter.js';
import { parseRunOptions } from '../src/runner/options.js';
import { RunOptionsError } from '../src/errors.js';
import { encodeCwd, javaStringHash } from '../src/claude/sessionPath.js';

const SID = '11111111-1111-4111-8111-111111111111';
const SID2 = '22222222-2222-4222-8222-222222222222';
const base = { prompt: 'hi', cwd: '/w', configDir: '/c', tmpDir: '/t' };

describe('buildArgv', () => {
  it('always runs headless with stream-json and puts the prompt after --', () => {
    const argv = buildArgv(parseRunOptions({ ...base, prompt: '-looks like a flag', session: { mode: 'new', sessionId: SID } }));
    expect(argv.slice(0, 4)).toEqual(['-p', '--output-format', 'stream-json', '--verbose']);
    expect(argv).toContain('--session-id');
    expect(argv.slice(-2)).toEqual(['--', '-looks like a flag']);
  });

  it('maps every typed option to its flag', () => {
    const argv = buildArgv(
      parseRunOptions({
        ...base,
        session: { mode: 'resume', sessionId: SID, fork: true, forkSessionId: SID2 },
        model: 'claude-x',
        systemPrompt: 'sys',
        appendSystemPrompt: 'more',
        allowedTools: ['Read', 'Bash(git log:*)'],
        disallowedTools: ['WebFetch'],
        permissionMode: 'acceptEdits',
        maxTurns: 7,
        maxBudgetUsd: 1.5,
        includePartialMessages: true,
        addDirs: ['/data'],
        mcpConfig: ['{"mcpServers":{}}'],
      }),
    );
    expect(argv).toEqual([
      '-p', '--output-format', 'stream-json', '--verbose',
      '--resume', SID, '--fork-session', '--session-id', SID2,
      '--model', 'claude-x', '--system-prompt', 'sys', '--append-system-prompt', 'more',
      '--permission-mode', 'acceptEdits', '--max-turns', '7', '--max-budget-usd', '1.5',
      '--include-partial-messages',
      '--allowedTools', 'Read', 'Bash(git log:*)', '--disallowedTools', 'WebFetch',
      '--add-dir', '/data', '--mcp-config', '{"mcpServers":{}}',
      '--', 'hi',
    ]);
  });

  it('with streamInput, asks for stream-json input and keeps the prompt off argv', () => {
    const argv = buildArgv(parseRunOptions({ ...base, streamInput: true, session: { mode: 'new', sessionId: SID } }));
    expect(argv).toContain('--input-format');
    expect(argv).not.toContain('hi');
    expect(argv).not.toContain('--');
  });
});

describe('parseRunOptions', () => {
  it('names each bad field', () => {
    let e: unknown;
    try {
      parseRunOptions({ prompt: '', cwd: 'rel', configDir: '/c', tmpDir: '/t', session: { mode: 'new', sessionId: 'nope' }, maxTurns: 0, bogus: 1 });
    } catch (err) {
      e = err;
    }
    expect(e).toBeInstanceOf(RunOptionsError);
    const fields = (e as RunOptionsError).fields;
    expect(fields).toEqual(expect.arrayContaining(['prompt', 'cwd', 'session.sessionId', 'maxTurns']));
    expect((e as Error).message).toMatch(/bogus/);
  });

  it('rejects control characters in tool rules', () => {
    expect(() => parseRunOptions({ ...base, session: { mode: 'new', sessionId: SID }, allowedTools: ['Bash\n--evil'] })).toThrow(
      /allowedTools\.0/,
    );
  });
});

describe('parseEventLine', () => {
  // Captured from the real CLI 2.1.197 (shared/claude-cli/examples).
  const examples = path.resolve(import.meta.dirname, 'fixtures/cli-2.1.197');

  it('parses every captured real-CLI stream without an invalid line', () => {
    for (const file of readdirSync(examples).filter((f) => f.startsWith('stream-json'))) {
      const lines = readFileSync(path.join(examples, file), 'utf8').split('\n').filter(Boolean);
      const events = lines.map(parseEventLine);
      expect(events.filter((e) => e.kind === 'invalid'), file).toEqual([]);
      expect(events.some((e) => e.kind === 'result' || e.kind === 'init'), file).toBe(true);
    }
  });

  it('types the known events and keeps unknown fields', () => {
    const init = parseEventLine('{"type":"system","subtype":"init","session_id":"s","future_field":1}');
    expect(init.kind).toBe('init');
    if (init.kind === 'init') expect((init.data as Record<string, unknown>).future_field).toBe(1);
    const result = parseEventLine('{"type":"result","subtype":"success","is_error":false,"total_cost_usd":0.5}');
    expect(result.kind).toBe('result');
  });

  it('passes unknown types and garbage on without throwing', () => {
    expect(parseEventLine('{"type":"brand_new","x":1}')).toMatchObject({ kind: 'other', data: { type: 'brand_new' } });
    expect(parseEventLine('not json {')).toEqual({ kind: 'invalid', line: 'not json {' });
    expect(parseEventLine('[1,2]').kind).toBe('invalid');
    // A known type with a broken shape is kept raw rather than dropped.
    expect(parseEventLine('{"type":"result","subtype":5}').kind).toBe('other');
  });
});

describe('LineSplitter', () => {
  it('joins lines split across chunks and across multibyte characters', () => {
    const s = new LineSplitter(100);
    const bytes = Buffer.from('{"a":"é"}\n{"b":2}\nrest');
    const out: string[] = [];
    for (let i = 0; i < bytes.length; i += 3) out.push(...s.push(bytes.subarray(i, i + 3)));
    expect(out).toEqual(['{"a":"é"}', '{"b":2}']);
    expect(s.flush()).toBe('rest');
  });

  it('throws once a line passes the cap, even without a newline', () => {
    const s = new LineSplitter(10);
    expect(() => s.push(Buffer.from('0123456789abc'))).toThrow(LineTooLongError);
    const t = new LineSplitter(10);
    t.push(Buffer.from('01234'));
    expect(() => t.push(Buffer.from('56789x\n'))).toThrow(LineTooLongError);
  });
});

describe('TailBuffer', () => {
  it('keeps only the last bytes', () => {
    const t = new TailBuffer(5);
    for (const c of ['abc', 'def', 'ghij']) t.push(Buffer.from(c));
    expect(t.toString()).toBe('fghij');
  });
});

describe('encodeCwd', () => {
  it('replaces every non-alphanumeric UTF-16 unit with -', () => {
    expect(encodeCwd('/srv/example/ws/H')).toBe('-srv-example-ws-H');
    expect(encodeCwd('/tmp/é😀')).toBe('-tmp----');
  });

  it('cuts names over 200 characters and adds the base-36 hash', () => {
    const long = `/${'a'.repeat(250)}`;
    const enc = encodeCwd(long);
    expect(enc.startsWith(`-${'a'.repeat(199)}-`)).toBe(true);
    expect(enc).toBe(`${('-' + 'a'.repeat(250)).slice(0, 200)}-${Math.abs(javaStringHash(long)).toString(36)}`);
    expect(javaStringHash('hello')).toBe(99162322);
  });
});
