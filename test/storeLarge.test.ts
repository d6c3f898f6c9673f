// A 50 MB session end to end, in its own file (and so its own process): RSS is measured.
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream, mkdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeSyntheticSession } from '../src/bench/syntheticSession.js';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import { ensureConversation } from '../src/store/conversations.js';
import { hydrateSession } from '../src/store/hydrate.js';
import { persistSession } from '../src/store/persist.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { tempDirs } from './helpers/files.js';

let t: TestDatabase;
const dirs = tempDirs();

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  dirs.cleanup();
  await t?.drop();
});

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const part of createReadStream(file)) hash.update(part as Buffer);
  return hash.digest('hex');
}

it('a 50 MB session round-trips byte for byte, and hydrate grows RSS by far less than the session', async () => {
  const { id: conversationId } = await ensureConversation(t.db, { externalId: 'large-session' });
  const sessionId = randomUUID();
  const a = { cwd: dirs.make('large-a'), configDir: dirs.make('large-a-cfg') };
  const file = sessionFilePath(a.configDir, a.cwd, sessionId);
  mkdirSync(path.dirname(file), { recursive: true });
  const written = await writeSyntheticSession(file, 50 * 1024 * 1024, { sessionId });
  const stored = await persistSession(t.db, { conversationId, sessionId, filePath: file, attempt: 1, commit: true, maxLineBytes: 16 * 1024 * 1024 });
  expect(stored).toMatchObject({ linesAdded: written.lines, bytesAdded: written.bytes });
  expect(stored.chunksAdded).toBeGreaterThanOrEqual(50);

  const b = { cwd: dirs.make('large-b'), configDir: dirs.make('large-b-cfg') };
  const before = process.memoryUsage.rss();
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 1);
  let hydrated;
  try {
    hydrated = await hydrateSession(t.db, { conversationId, sessionId, ...b });
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, process.memoryUsage.rss());
  const growthMb = (peak - before) / 1e6;
  expect(hydrated).toMatchObject({ lines: written.lines, bytes: written.bytes });
  // A read of the whole session into memory would grow RSS by at least its 50 MB.
  expect(growthMb).toBeLessThan(50);
  expect(await sha256File(hydrated.path)).toBe(await sha256File(file));
});
