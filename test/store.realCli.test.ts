// The store with session files written by the REAL CLI: ten turns, each on a different
// "machine" (another workspace path, a fresh config dir and HOME), hydrated from Postgres
// before the turn and persisted after it. The hydrated file must be byte-identical to
// what the previous machine had, and the mock model must receive the whole history.
import { randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import { runClaude, type RunnerSettings } from '../src/runner/runClaude.js';
import { startMockModel, type MockModel } from '../src/mock/mockModel.js';
import { ensureConversation } from '../src/store/conversations.js';
import { hydrateSession } from '../src/store/hydrate.js';
import { persistSession } from '../src/store/persist.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { realCliSettings } from './helpers/realCli.js';

let mock: MockModel;
let t: TestDatabase;
let root: string;

beforeAll(async () => {
  mock = await startMockModel();
  t = await createTestDatabase();
  root = mkdtempSync(path.join(os.tmpdir(), 'agentq-store-cli-'));
});
afterAll(async () => {
  await mock.close();
  await t.drop();
  rmSync(root, { recursive: true, force: true });
});

const settings = (): RunnerSettings => realCliSettings(mock.url);

describe('the session store with the real CLI', () => {
  it('ten turns on ten machines: hydrated byte for byte, and the model sees the whole history', async () => {
    const conv = await ensureConversation(t.db, { externalId: 'ticket-4812' });
    const sessionId = randomUUID();
    let previous: Buffer | undefined;
    for (let turn = 0; turn < 10; turn++) {
      // Each machine has a different workspace path; hash-like names make the encoded folders differ.
      const cwd = path.join(root, `machine-${turn}`, `ws-${randomUUID().slice(0, 8)}`, 'ticket-4812');
      const configDir = path.join(root, `machine-${turn}`, 'config');
      mkdirSync(cwd, { recursive: true });
      if (turn > 0) {
        const h = await hydrateSession(t.db, { conversationId: conv.id, sessionId, cwd, configDir });
        expect(h.path).toBe(sessionFilePath(configDir, cwd, sessionId));
        expect(readFileSync(h.path).equals(previous!)).toBe(true);
      }
      mock.reset();
      // Turns 3 and 7 use a tool, so tool_use and tool_result lines are in the file too.
      const prompt = turn % 4 === 3 ? `turn ${turn} <<tool Bash {"command":"echo t${turn} > f${turn}.txt"}>>` : `turn ${turn}`;
      const outcome = await runClaude(
        {
          prompt,
          cwd,
          configDir,
          tmpDir: path.join(root, `machine-${turn}`, 'tmp'),
          session: turn === 0 ? { mode: 'new', sessionId } : { mode: 'resume', sessionId },
          permissionMode: 'bypassPermissions',
          maxTurns: 3,
        },
        settings(),
      );
      expect(outcome.type, outcome.stderrTail).toBe('success');
      expect(outcome.sessionId).toBe(sessionId);
      const sent = JSON.stringify(mock.mainRequests().at(-1)?.body?.messages);
      for (let earlier = 0; earlier <= turn; earlier++) expect(sent).toContain(`turn ${earlier}`);

      const local = sessionFilePath(configDir, cwd, sessionId);
      const persist = () =>
        persistSession(t.db, { conversationId: conv.id, sessionId, filePath: local, attempt: turn + 1, commit: true, maxLineBytes: 16 * 1024 * 1024 });
      const stored = await persist();
      previous = readFileSync(local);
      expect(stored.byteCount).toBe(previous.length);
      expect(stored.partialBytes).toBe(0);
      // Persisting again stores nothing twice.
      expect((await persist()).linesAdded).toBe(0);
    }
  }, 120_000);
});
