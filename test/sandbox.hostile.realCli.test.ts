// A prompt-injected agent attacks the worker's own save path, with the REAL CLI in the
// bubblewrap sandbox against the mock model. The sandbox keeps the agent in; these cases
// are about the other side: the worker, on the host, reading what the agent wrote.
// Each case plants something in one turn (links into other conversations, the runs root's
// cache, root-only files and the worker's /proc; FIFOs; link loops; sparse giants; NULs)
// and looks for what came back in the next turn, in the store, in the log, and at the
// worker. One `agentq worker` process (bwrap, AGENTQ_MAX_ATTEMPTS=1) serves every case; it
// must survive them all.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { startMockModel, type MockModel, type RecordedRequest } from '../src/mock/mockModel.js';
import { createClient, type AgentqClient, type TurnSummary } from '../src/queue/client.js';
import { FORWARDED_PATHS } from '../src/sandbox/apiProxy.js';
import { probeSandbox } from '../src/sandbox/probe.js';
import { workspaceDirName } from '../src/store/ids.js';
import { createTestAgentq, type TestAgentq } from './helpers/agentq.js';
import { isAlive } from './helpers/processes.js';
import { offlineCliEnv } from './helpers/realCli.js';
import { killWorkerProcesses, startWorkerProcess, type WorkerProcess } from './helpers/workerProcess.js';

let mock: MockModel;
let t: TestAgentq;
let client: AgentqClient;
let w: WorkerProcess;
const rand = () => randomBytes(6).toString('hex');
const secret = `s3cret${rand()}`;
const realKey = `sk-ant-real-${rand()}`;
const gatewaySecret = `gw-${rand()}`;
const oauthToken = `oauth-${rand()}`;
const victimMark = `VICTIM-${rand()}`;
const victimWord = `kumquat${rand()}`;
/** The first line of the host's /etc/shadow (the test runs as root): it must never reach the agent or the store. */
const shadowLine = readFileSync('/etc/shadow', 'utf8').split('\n')[0]!;
const machine = () => path.join(t.root, 'm');
const workspaceRoot = () => path.join(machine(), 'workspaces');
const runsRoot = () => path.join(machine(), 'runs');

const bash = (command: string) => `<<tool Bash ${JSON.stringify({ command })}>>`;
/**
 * Inside the sandbox: $S is the session file the CLI writes, $D its session folder. The CLI
 * writes its file a little after it starts (a write buffer): wait for it, for up to 10 s.
 */
const SESSION =
  'i=0; until ls ~/projects/-workspace/*.jsonl >/dev/null 2>&1 || [ $i -gt 200 ]; do i=$((i+1)); sleep 0.05; done; ' +
  'S=$(ls ~/projects/-workspace/*.jsonl | head -1); D=${S%.jsonl}; mkdir -p "$D"';

interface TurnResult {
  turn: TurnSummary & { error: { class?: string } | null };
  /** Every tool result the mock was sent in the turn's last request. */
  toolResults: string;
  requests: RecordedRequest[];
}

async function turn(conversationId: string, prompt: string, timeoutMs = 90_000): Promise<TurnResult> {
  const first = mock.requests.length;
  const { turnId } = await client.enqueueTurn({ conversationId, prompt, options: { permissionMode: 'bypassPermissions', maxTurns: 3 } });
  const done = await client.waitForTurn(turnId, timeoutMs);
  const requests = mock.requests.slice(first);
  const last = requests.filter((r) => r.body !== undefined).at(-1)?.body?.messages ?? [];
  const toolResults = JSON.stringify(last.flatMap((m) => (Array.isArray(m.content) ? m.content.filter((b) => b.type === 'tool_result') : [])));
  return { turn: done as TurnResult['turn'], toolResults, requests };
}

/** Everything stored for a conversation that the agent's files feed: sidecars, folder archives (unpacked), and chunk bytes. */
async function storedText(conversationId: string): Promise<string> {
  const id = (await t.database.pool.query<{ id: string }>('select id from conversations where external_id = $1', [conversationId])).rows[0]!.id;
  const q = (text: string) => t.database.pool.query(text, [id]);
  const sidecars = (await q('select content from session_sidecars where conversation_id = $1')).rows.map((r: { content: string }) => r.content);
  const folders = (await q('select archive from session_folders where conversation_id = $1')).rows.map((r: { archive: Buffer }) =>
    r.archive.length ? gunzipSync(r.archive).toString('latin1') : '',
  );
  const workspace = (await q('select archive from workspaces where conversation_id = $1')).rows.map((r: { archive: Buffer }) =>
    r.archive.length ? gunzipSync(r.archive).toString('latin1') : '',
  );
  return [...sidecars, ...folders, ...workspace].join('\n');
}

/** What the agent sees of its own config dir and workspace on a later turn: every file's text. */
const LOOK = 'cd ~ && find . /workspace -type f 2>/dev/null | head -200 | xargs -r cat 2>/dev/null | head -c 200000';

function expectNothingForeign(text: string): void {
  expect(text).not.toContain(victimMark);
  expect(text).not.toContain(victimWord);
  expect(text).not.toContain(shadowLine);
  expect(text).not.toContain(secret);
  expect(text).not.toContain(realKey);
  expect(text).not.toContain(gatewaySecret);
  expect(text).not.toContain(oauthToken);
}

function expectWorkerWell(): void {
  expect(isAlive(w.pid), 'the worker is alive').toBe(true);
  const log = w.stdout() + w.stderr();
  for (const s of [secret, realKey, gatewaySecret, oauthToken, t.database.url]) expect(log).not.toContain(s);
}

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestAgentq();
  client = createClient(t.config);
  const { bwrapPath, socatPath } = loadConfig(t.env).sandbox;
  const probe = await probeSandbox(bwrapPath, socatPath);
  if (!probe.ok) throw new Error(`bubblewrap is not usable here (${probe.reason}); install it: apt-get install -y bubblewrap socat`);
  mkdirSync(machine(), { recursive: true });
  const env: Record<string, string> = {
    ...t.env,
    AGENTQ_WORKSPACE_ROOT: workspaceRoot(),
    AGENTQ_RUNS_ROOT: runsRoot(),
    ...offlineCliEnv(mock.url),
    ANTHROPIC_API_KEY: realKey,
    ANTHROPIC_CUSTOM_HEADERS: `X-Gateway-Key: ${gatewaySecret}`,
    CLAUDE_CODE_OAUTH_TOKEN: oauthToken,
    AGENTQ_CLI_ENV_ALLOW: '',
    AGENTQ_SANDBOX: 'bwrap',
    AGENTQ_MAX_ATTEMPTS: '1',
    AGENTQ_LOG_LEVEL: 'info',
    AGENTQ_WORKSPACE_MAX_BYTES: String(8 * 1024 * 1024),
    AGENTQ_TEST_SECRET: secret,
  };
  delete env.AGENTQ_CLAUDE_PATH;
  delete env.FAKE_CLAUDE_LOG;
  w = await startWorkerProcess(env, { name: 'hostile', dir: machine(), concurrency: 1, readyTimeoutMs: 30_000 });
  // Another tenant's conversation on the same worker: a file in its workspace, a word in its session.
  const v = await turn('victim', `remember ${victimWord} ${bash(`echo ${victimMark} > private.txt`)}`);
  expect(v.turn.status).toBe('succeeded');
  expect(existsSync(path.join(workspaceRoot(), workspaceDirName('victim'), 'private.txt'))).toBe(true);
}, 120_000);

afterAll(async () => {
  await w?.stop('SIGTERM', 20_000).catch(() => undefined);
  await killWorkerProcesses();
  await client?.close();
  await t?.cleanup();
  await mock?.close();
});

describe('links planted in the config dir are never followed by the worker', () => {
  it('the session folder as a link to another conversation, a subagent dir as a link to the runs root cache, a sidecar as a link to /etc/shadow and to /proc/<worker>/environ', async () => {
    const victimDir = path.join(workspaceRoot(), workspaceDirName('victim'));
    const cache = path.join(runsRoot(), '.cache', 'sessions');
    // The victim's data is where the links point: the test checks the planting is real.
    expect(readFileSync(path.join(victimDir, 'private.txt'), 'utf8')).toContain(victimMark);
    const plant = [
      SESSION,
      // The rest of the folder: tool-results is another conversation's workspace.
      `ln -s ${victimDir} "$D/tool-results"`,
      // subagents/cache: every conversation's cached transcript on this worker.
      `mkdir -p "$D/subagents" && ln -s ${cache} "$D/subagents/cache"`,
      `printf '{"type":"user","n":1}\\n' > "$D/subagents/agent-a.jsonl" && ln -s /etc/shadow "$D/subagents/agent-a.meta.json"`,
      `printf '{"type":"user","n":2}\\n' > "$D/subagents/agent-b.jsonl" && ln -s /proc/${w.pid}/environ "$D/subagents/agent-b.meta.json"`,
      `ln -s ${path.join(victimDir, 'private.txt')} "$D/subagents/agent-c.jsonl"`,
      'echo planted',
    ].join(' && ');
    const one = await turn('hostile-links', `plant ${bash(plant)}`);
    expect(one.toolResults).toContain('planted');
    expect(one.turn.status).toBe('succeeded');
    expect(one.turn.attempts).toBe(1);
    const two = await turn('hostile-links', `look ${bash(LOOK)}`);
    expect(two.turn.status).toBe('succeeded');
    expectNothingForeign(two.toolResults);
    expectNothingForeign(await storedText('hostile-links'));
    // What was refused is said on the turn.
    const events = (await t.database.pool.query<{ payload: string }>('select payload from turn_events where turn_id = $1', [one.turn.turnId])).rows
      .map((e) => e.payload)
      .join('\n');
    expect(events).toMatch(/subagent_transcript_not_saved|session_folder_not_saved/);
    expectWorkerWell();
  }, 180_000);

  it('the session file itself as a link to /etc/shadow: the turn fails after AGENTQ_MAX_ATTEMPTS (1), nothing of it is stored, the next turn starts clean', async () => {
    const one = await turn('hostile-session', `swap ${bash(`${SESSION} && ln -sf /etc/shadow "$S" && echo swapped`)}`);
    expect(one.toolResults).toContain('swapped');
    expect(one.turn.status).toBe('failed');
    expect(one.turn.error?.class).toBe('session_not_saved');
    expect(one.turn.attempts).toBe(1);
    const conv = await client.getConversation('hostile-session');
    expect(conv?.sessionId ?? null).toBeNull();
    const two = await turn('hostile-session', `look ${bash(LOOK)}`);
    expect(two.turn.status).toBe('succeeded');
    expectNothingForeign(two.toolResults);
    expectWorkerWell();
  }, 180_000);
});

describe('files that are not files, and trees that do not end', () => {
  it('FIFOs, a fan-out of link loops, a 10 GB sparse file and NULs: the turn ends, the worker lives, one attempt only', async () => {
    const plant = [
      SESSION,
      'mkdir -p "$D/subagents" "$D/tool-results"',
      // A reader of any of these would wait for ever.
      'mkfifo "$D/subagents/agent-f.jsonl" "$D/tool-results/pipe.txt"',
      `printf '{"type":"user"}\\n' > "$D/subagents/agent-g.jsonl" && mkfifo "$D/subagents/agent-g.meta.json"`,
      // A walk that follows links never ends here.
      'for i in $(seq 1 30); do ln -s . "$D/tool-results/l$i"; ln -s .. "$D/tool-results/u$i"; done',
      // Apparent size 10 GB, no blocks.
      'truncate -s 10G "$D/tool-results/huge.txt" "$D/subagents/agent-h.jsonl"',
      // Postgres text cannot hold NUL: a sidecar with one failed every commit, for ever.
      `printf '{"type":"user"}\\n' > "$D/subagents/agent-n.jsonl" && printf 'a\\000b' > "$D/subagents/agent-n.meta.json"`,
      'echo planted',
    ].join(' && ');
    const started = Date.now();
    const one = await turn('hostile-shapes', `plant ${bash(plant)}`, 120_000);
    expect(one.toolResults).toContain('planted');
    expect(one.turn.status).toBe('succeeded');
    expect(one.turn.attempts).toBe(1);
    // One attempt: the model was asked for the prompt and the tool result, no more.
    expect(one.requests.filter((r) => r.kind === 'main')).toHaveLength(2);
    expect(Date.now() - started).toBeLessThan(60_000);
    const two = await turn('hostile-shapes', `look ${bash('ls ~/projects/-workspace/*/tool-results | wc -l; echo looked')}`);
    expect(two.turn.status).toBe('succeeded');
    expect(two.toolResults).toContain('looked');
    expectWorkerWell();
  }, 240_000);

  it('a 10 GB sparse file in the workspace fails the turn as too large, at once, storing nothing', async () => {
    const one = await turn('hostile-sparse-workspace', `grow ${bash('truncate -s 10G /workspace/huge.bin && echo grown')}`);
    expect(one.turn.status).toBe('failed');
    expect(one.turn.error?.class).toBe('workspace_too_large');
    expect(await storedText('hostile-sparse-workspace')).toBe('');
    expectWorkerWell();
  }, 120_000);
});

describe('the sandbox shows the agent no way out', () => {
  it('traversal through the API forwarder reaches nothing upstream', async () => {
    const port = 8719;
    const raw = (line: string) =>
      `exec 3<>/dev/tcp/127.0.0.1/${port} && printf '${line} HTTP/1.1\\r\\nHost: x\\r\\nContent-Length: 2\\r\\nConnection: close\\r\\n\\r\\n{}' >&3 && head -1 <&3`;
    const probes = ['POST /v1/../anything', 'POST /v1/%2e%2e/anything', 'POST /v1/messages/../../admin', 'GET /v1/models', 'POST //v1/messages'];
    const command = probes.map((p) => `echo "${p} => $(${raw(p)})"`).join('; ');
    const before = mock.requests.length;
    const one = await turn('hostile-forwarder', `probe ${bash(command)}`);
    expect(one.turn.status).toBe('succeeded');
    for (const p of probes) expect(one.toolResults).toMatch(new RegExp(`${p.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} => HTTP/1.1 404`));
    // Upstream saw only the CLI's own requests, each with the real credentials.
    const upstream = mock.requests.slice(before).filter((r) => r.kind !== 'probe');
    for (const r of upstream) {
      expect(FORWARDED_PATHS, r.url).toContain(r.path);
      expect(r.headers['x-api-key']).toBe(realKey);
      expect(r.headers['x-gateway-key']).toBe(gatewaySecret);
      expect(r.headers.authorization).toBe(`Bearer ${oauthToken}`);
    }
    expectWorkerWell();
  }, 120_000);

  it('no credential, worker pid or host root is in the environment, in /proc/1 (bubblewrap), or in the argv it can read', async () => {
    const command = [
      'echo "ENV<<$(env | sort)>>"',
      `echo "P1ENV<<$(tr '\\0' '\\n' < /proc/1/environ)>>"`,
      `echo "P1CMD<<$(tr '\\0' ' ' < /proc/1/cmdline)>>"`,
      `echo "CMDS<<$(cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' ')>>"`,
    ].join('; ');
    const one = await turn('hostile-env', `read ${bash(command)}`);
    expect(one.turn.status).toBe('succeeded');
    const out = one.toolResults;
    expect(out).toContain('ENV<<');
    expect(out).toMatch(/P1CMD<<\S*bwrap --args 3 -- /);
    for (const s of [realKey, gatewaySecret, oauthToken, secret, 'AGENTQ_PARENT_PID', `=${w.pid}\\n`, 'X-Gateway-Key', runsRoot(), workspaceRoot(), t.database.url]) {
      expect(out, s).not.toContain(s);
    }
    expectWorkerWell();
  }, 120_000);
});
