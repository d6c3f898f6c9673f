// `agentq transcript`: a conversation's turns and stored events from Postgres, as text and
// as JSON lines, and --follow picking up a turn that runs after it started.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { main, type CliIo } from '../src/cli/main.js';
import { transcriptCommand } from '../src/cli/transcriptCommand.js';
import { eventLines } from '../src/cli/transcriptFormat.js';
import { createClient, type AgentqClient } from '../src/queue/client.js';
import { createWorker, type TurnWorker } from '../src/worker/worker.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { waitUntil } from './helpers/processes.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../bin/agentq.js');

let t: TestAgentq;
let client: AgentqClient;
let worker: TurnWorker;

beforeEach(async () => {
  t = await createTestAgentq();
  client = createClient(t.config);
  worker = createWorker(t.config, { concurrency: 2 });
  await worker.start();
});
afterEach(async () => {
  await worker.stop({ graceMs: 0 });
  await client.close();
  await t.cleanup();
});

function captureIo(env: Record<string, string>): CliIo & { lines: string[]; errors: string[] } {
  const lines: string[] = [];
  const errors: string[] = [];
  return { env, lines, errors, out: (s) => lines.push(...s.split('\n')), err: (s) => errors.push(s) };
}

async function twoTurns(conversationId: string): Promise<string[]> {
  const a = await client.enqueueTurn({ conversationId, prompt: '#fake {"costUsd":0.125}\nfirst question' });
  const b = await client.enqueueTurn({ conversationId, prompt: 'second question' });
  expect((await client.waitForTurn(a.turnId, 20_000)).status).toBe('succeeded');
  expect((await client.waitForTurn(b.turnId, 20_000)).status).toBe('succeeded');
  return [a.turnId, b.turnId];
}

describe('agentq transcript', () => {
  it('prints each turn: prompt, assistant text, result and cost, in order', async () => {
    const [first, second] = await twoTurns('tr-text');
    const io = captureIo(t.env);
    expect(await main(['node', 'agentq', 'transcript', 'tr-text'], io)).toBe(0);
    const text = io.lines.join('\n');
    const at = (s: string) => {
      const i = text.indexOf(s);
      expect(i, `output contains ${JSON.stringify(s)}:\n${text}`).toBeGreaterThanOrEqual(0);
      return i;
    };
    const order = [
      at(`── turn 1 · ${first}`),
      at('> #fake {"costUsd":0.125}'),
      at('  · session '),
      at('  assistant: fake reply to: first question'),
      at('  result (success · $0.1250'),
      at('── turn 1 succeeded · $0.1250 · 1 attempt'),
      at(`── turn 2 · ${second}`),
      at('> second question'),
      at('  assistant: fake reply to: second question'),
      at('── turn 2 succeeded'),
    ];
    expect([...order].sort((x, y) => x - y)).toEqual(order);
    expect(io.errors).toEqual([]);
  });

  it('--json prints one object per line: turn, its events, turn_end, for each turn', async () => {
    const [first, second] = await twoTurns('tr-json');
    const io = captureIo(t.env);
    expect(await main(['node', 'agentq', 'transcript', 'tr-json', '--json'], io)).toBe(0);
    const objects = io.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    const kinds = objects.map((o) => `${String(o.kind)}:${String(o.turnId)}`);
    const firstEnd = kinds.indexOf(`turn_end:${first}`);
    expect(kinds[0]).toBe(`turn:${first}`);
    expect(kinds.slice(1, firstEnd).every((k) => k === `event:${first}`)).toBe(true);
    expect(kinds[firstEnd + 1]).toBe(`turn:${second}`);
    expect(kinds.at(-1)).toBe(`turn_end:${second}`);
    const results = objects.filter((o) => o.kind === 'event' && o.type === 'result');
    expect(results.map((o) => (o.event as { result: string }).result)).toEqual(['fake reply to: first question', 'fake reply to: second question']);
    const ends = objects.filter((o) => o.kind === 'turn_end');
    expect(ends.map((o) => [o.status, o.costUsd])).toEqual([
      ['succeeded', 0.125],
      ['succeeded', expect.any(Number)],
    ]);
    expect(objects[0]).toMatchObject({ kind: 'turn', seq: 1, prompt: '#fake {"costUsd":0.125}\nfirst question' });
    // Event seqs are in order within the turn.
    const seqs = objects.filter((o) => o.kind === 'event' && o.turnId === first).map((o) => o.seq as number);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
  });

  it('a reader that closes the pipe early (`| head -1`) ends the command quietly with exit 0', async () => {
    await twoTurns('tr-pipe');
    // The real process, as a shell pipe has it: its stdout closed after the first line.
    const child = spawn(process.execPath, [BIN, 'transcript', 'tr-pipe', '--follow'], { env: t.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
    child.stdout.destroy();
    const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
  });

  it('a malformed conversation id exits 2 naming it; an unknown one exits 1', async () => {
    const bad = captureIo(t.env);
    expect(await main(['node', 'agentq', 'transcript', 'not a valid id!'], bad)).toBe(2);
    expect(bad.errors.join('\n')).toMatch(/^conversation: /);
    const badTenant = captureIo(t.env);
    expect(await main(['node', 'agentq', 'transcript', 'ok-id', '--tenant', 'bad tenant'], badTenant)).toBe(2);
    expect(badTenant.errors.join('\n')).toMatch(/--tenant/);
    const unknown = captureIo(t.env);
    expect(await main(['node', 'agentq', 'transcript', 'nobody-here'], unknown)).toBe(1);
    expect(unknown.errors.join('\n')).toContain('no conversation "nobody-here" for tenant "default"');
    expect(unknown.lines).toEqual([]);
  });

  it('--follow prints the events of a turn that starts after it, while it runs, until stopped', async () => {
    const [first] = await twoTurns('tr-follow');
    const io = captureIo(t.env);
    const stop = new AbortController();
    const following = transcriptCommand(t.config, io, 'tr-follow', { follow: true, pollMs: 50 }, stop.signal);
    try {
      await waitUntil(() => io.lines.some((l) => l.startsWith('── turn 2 succeeded')), 'the existing turns printed');
      expect(io.lines[0]).toBe(`── turn 1 · ${first}`);
      const third = await client.enqueueTurn({ conversationId: 'tr-follow', prompt: '#fake {"delayMs":1500}\nthird question' });
      // Seen while it runs: its header and its init event, before any footer.
      await waitUntil(() => io.lines.some((l) => l === `── turn 3 · ${third.turnId}`), 'the new turn printed', 10_000);
      await waitUntil(() => io.lines.slice(io.lines.indexOf(`── turn 3 · ${third.turnId}`)).some((l) => l.startsWith('  · session ')), 'its first event printed', 10_000);
      expect((await client.getTurn(third.turnId))?.status).toBe('running');
      expect(io.lines.some((l) => l.startsWith('── turn 3 succeeded'))).toBe(false);
      await waitUntil(() => io.lines.some((l) => l.startsWith('── turn 3 succeeded')), 'the new turn finished', 15_000);
      expect(io.lines).toContain('  assistant: fake reply to: third question');
      // Nothing printed twice.
      expect(io.lines.filter((l) => l.startsWith('  result ('))).toHaveLength(3);
    } finally {
      stop.abort();
    }
    expect(await following).toBe(0);
  });
});

describe('transcript formatting', () => {
  it('shows tool calls and their results from real CLI stream-json lines', () => {
    const file = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures/cli-2.1.197/stream-json.jsonl');
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter(Boolean)
      .flatMap((payload, i) => eventLines({ attempt: 1, seq: i + 1, type: 'x', payload }));
    expect(lines).toContain('  assistant: I will run a command.');
    expect(lines).toContain('  tool call Bash: {"command":"echo hi","description":"Print hi"}');
    expect(lines).toContain('  tool result: hi');
    expect(lines.some((l) => l.startsWith('  result (success · $'))).toBe(true);
    expect(eventLines({ attempt: 1, seq: 1, type: 'invalid', payload: 'not json {' })).toEqual(['  [unparsed invalid line] not json {']);
  });
});
