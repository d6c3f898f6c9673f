// `npm run demo`: the idea of agentq in one run, offline. Turn 1 runs the real Claude
// Code CLI on "machine A"; only its session file travels to "machine B" (a different
// workspace path, a fresh config dir and HOME); turn 2 resumes it there and the model
// receives the whole history. Without ANTHROPIC_API_KEY the built-in mock model answers.
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../config.js';
import { sessionFilePath } from '../claude/sessionPath.js';
import type { ClaudeEvent } from '../runner/events.js';
import { runClaude, runnerSettings, type RunnerSettings } from '../runner/runClaude.js';
import type { RunOptions } from '../runner/options.js';
import { startMockModel, type MockModel } from '../mock/mockModel.js';

const say = (text: string) => process.stdout.write(`${text}\n`);

function printEvent(e: ClaudeEvent): void {
  if (e.kind === 'init') say(`    init     session ${e.data.session_id} in ${e.data.cwd ?? '?'}`);
  if (e.kind === 'assistant') {
    for (const block of Array.isArray(e.data.message.content) ? e.data.message.content : []) {
      if (block.type === 'text') say(`    assistant ${JSON.stringify(block.text).slice(0, 120)}`);
      if (block.type === 'tool_use') say(`    tool_use  ${block.name as string} ${JSON.stringify(block.input).slice(0, 100)}`);
    }
  }
  if (e.kind === 'result') say(`    result   ${e.data.subtype} (${e.data.num_turns ?? 0} model turns, $${e.data.total_cost_usd ?? 0})`);
}

function machine(root: string, name: string) {
  const cwd = path.join(root, name, 'workspaces', 'ticket-4812');
  mkdirSync(cwd, { recursive: true });
  return { cwd, configDir: path.join(root, name, 'claude-config'), tmpDir: path.join(root, name, 'tmp') };
}

export async function runDemo(env: Readonly<Record<string, string | undefined>>): Promise<number> {
  const config = loadConfig(env);
  const useMock = !config.anthropic.apiKey;
  let mock: MockModel | undefined;
  let settings: RunnerSettings = runnerSettings(config);
  if (useMock) {
    mock = await startMockModel();
    settings = {
      ...settings,
      env: { ...settings.env, ANTHROPIC_BASE_URL: mock.url, ANTHROPIC_API_KEY: 'sk-agentq-demo-mock', CLAUDE_CODE_MAX_RETRIES: '0' },
    };
    say(`No ANTHROPIC_API_KEY: using the built-in mock model at ${mock.url}`);
  }
  const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-demo-'));
  try {
    const sessionId = randomUUID();
    const common: Pick<RunOptions, 'permissionMode' | 'allowedTools' | 'maxTurns'> = {
      permissionMode: 'acceptEdits',
      allowedTools: ['Bash', 'Read', 'Write'],
      maxTurns: 5,
    };
    const a = machine(root, 'machine-a');
    const firstPrompt = useMock
      ? 'Note the ticket number. <<tool Bash {"command":"echo ticket 4812: printer on fire > notes.txt"}>>'
      : 'Use Bash to write "ticket 4812: printer on fire" into notes.txt, then say done.';
    say(`\nTurn 1 on machine A (${a.cwd}), new session ${sessionId}`);
    const first = await runClaude({ prompt: firstPrompt, ...a, ...common, session: { mode: 'new', sessionId } }, settings, {
      onEvent: printEvent,
    });
    say(`  outcome: ${first.type}`);
    if (first.type !== 'success') {
      say(`  ${JSON.stringify(first).slice(0, 500)}`);
      return 1;
    }

    const b = machine(root, 'machine-b-elsewhere');
    const from = sessionFilePath(a.configDir, a.cwd, sessionId);
    const to = sessionFilePath(b.configDir, b.cwd, sessionId);
    mkdirSync(path.dirname(to), { recursive: true });
    copyFileSync(from, to);
    say(`\nOnly the session file moves to machine B: ${readFileSync(from).length} bytes`);
    say(`  ${from}\n  -> ${to}`);

    say(`\nTurn 2 on machine B (${b.cwd}), --resume ${sessionId}`);
    const second = await runClaude(
      { prompt: 'What did you write in the previous turn?', ...b, ...common, session: { mode: 'resume', sessionId } },
      settings,
      { onEvent: printEvent },
    );
    say(`  outcome: ${second.type}, same session: ${second.sessionId === sessionId}`);
    if (mock) {
      const last = mock.mainRequests().at(-1)?.body?.messages ?? [];
      const history = JSON.stringify(last);
      say(`  the model received ${last.length} messages; turn 1's command is among them: ${history.includes('printer on fire')}`);
    }
    return second.type === 'success' && second.sessionId === sessionId ? 0 : 1;
  } finally {
    rmSync(root, { recursive: true, force: true });
    await mock?.close();
  }
}

runDemo(process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
