import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { and, asc, eq, sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { syntheticSessionLines } from '../src/bench/syntheticSession.js';
import { sessionFilePath } from '../src/claude/sessionPath.js';
import {
  SessionAttemptConflictError,
  SessionCorruptError,
  SessionDivergedError,
  SessionLineTooLongError,
  SessionNotFoundError,
  StoreInputError,
} from '../src/errors.js';
import { ensureConversation } from '../src/store/conversations.js';
import { hydrateSession } from '../src/store/hydrate.js';
import { persistSession, type PersistInput } from '../src/store/persist.js';
import { conversations, sessionChunks, sessions } from '../src/store/schema.js';
import { commitSessionLines, discardUncommitted, getSessionHead } from '../src/store/sessions.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { tempDirs } from './helpers/files.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'cli-2.1.197');
const MAX_LINE = 16 * 1024 * 1024;

let t: TestDatabase;
const dirs = tempDirs();

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});
afterEach(() => dirs.cleanup());

/** A fresh machine: its own working directory and config dir. */
function machine(label = 'm') {
  const cwd = dirs.make(`${label}-cwd`);
  const configDir = dirs.make(`${label}-cfg`);
  return { cwd, configDir };
}

async function newConversation() {
  const c = await ensureConversation(t.db, { externalId: `ticket-${randomUUID()}` });
  return c.id;
}

function lines(sessionId: string, count: number, seed: number): Buffer {
  const out: Buffer[] = [];
  const gen = syntheticSessionLines({ sessionId, seed });
  for (let i = 0; i < count; i++) out.push(gen.next().value as Buffer);
  return Buffer.concat(out);
}

/** Writes bytes at the session path of a machine (creating the project folder). */
function writeSession(m: { cwd: string; configDir: string }, sessionId: string, bytes: Buffer, append = false): string {
  const file = sessionFilePath(m.configDir, m.cwd, sessionId);
  mkdirSync(path.dirname(file), { recursive: true });
  if (append) appendFileSync(file, bytes);
  else writeFileSync(file, bytes);
  return file;
}

function persist(input: Omit<PersistInput, 'maxLineBytes'> & { maxLineBytes?: number }) {
  return persistSession(t.db, { maxLineBytes: MAX_LINE, ...input });
}

async function chunkRows(conversationId: string, sessionId: string) {
  return t.db
    .select({
      firstLine: sessionChunks.firstLine,
      lineCount: sessionChunks.lineCount,
      byteOffset: sessionChunks.byteOffset,
      byteLen: sessionChunks.byteLen,
      attempt: sessionChunks.attempt,
      committed: sessionChunks.committed,
    })
    .from(sessionChunks)
    .where(and(eq(sessionChunks.conversationId, conversationId), eq(sessionChunks.sessionId, sessionId)))
    .orderBy(asc(sessionChunks.firstLine));
}

/** Chunks tile the session exactly: each starts where the previous ended, and the head matches. */
async function expectContiguous(conversationId: string, sessionId: string, file: Buffer) {
  const rows = await chunkRows(conversationId, sessionId);
  let line = 0;
  let offset = 0;
  for (const r of rows) {
    expect(r.firstLine).toBe(line);
    expect(r.byteOffset).toBe(offset);
    line += r.lineCount;
    offset += r.byteLen;
  }
  const newlines = file.reduce((n, b) => n + (b === 0x0a ? 1 : 0), 0);
  expect(line).toBe(newlines);
  expect(offset).toBe(file.lastIndexOf(0x0a) + 1);
  const head = await getSessionHead(t.db, conversationId, sessionId);
  expect(head?.lineCount).toBe(line);
  expect(head?.byteCount).toBe(offset);
}

describe('session round trip', () => {
  it('ten appends each hydrate byte-identical under a different cwd and a fresh config dir', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    let expected = Buffer.alloc(0);
    for (let turn = 0; turn < 10; turn++) {
      const m = machine(`turn${turn}`);
      // Every other machine reaches its cwd through a symlink: the folder name comes from the real path.
      let cwd = m.cwd;
      if (turn % 2 === 1) {
        cwd = path.join(dirs.make('link'), 'ws');
        symlinkSync(m.cwd, cwd);
      }
      if (turn > 0) {
        const h = await hydrateSession(t.db, { conversationId, sessionId, cwd, configDir: m.configDir });
        expect(h.path).toBe(sessionFilePath(m.configDir, m.cwd, sessionId));
        expect(readFileSync(h.path).equals(expected)).toBe(true);
        expect(h.bytes).toBe(expected.length);
      }
      const delta = lines(sessionId, 5 + turn * 3, turn + 1);
      const file = writeSession({ cwd, configDir: m.configDir }, sessionId, delta, true);
      const r = await persist({ conversationId, sessionId, filePath: file, attempt: `turn${turn}:1`, commit: true });
      expected = Buffer.concat([expected, delta]);
      expect(r.linesAdded).toBe(5 + turn * 3);
      expect(r.bytesAdded).toBe(delta.length);
    }
    const last = machine('final');
    const h = await hydrateSession(t.db, { conversationId, sessionId, ...last });
    expect(readFileSync(h.path).equals(expected)).toBe(true);
    await expectContiguous(conversationId, sessionId, expected);
  });

  it('the real CLI session files round-trip byte for byte, and a resumed file stores only its new lines', async () => {
    const firstRun = readFileSync(path.join(FIXTURES, 'session-2.1.197-first-run.jsonl'));
    const afterResumes = readFileSync(path.join(FIXTURES, 'session-2.1.197-after-resumes.jsonl'));
    expect(afterResumes.subarray(0, firstRun.length).equals(firstRun)).toBe(true);
    const conversationId = await newConversation();
    const sessionId = '91e55eb6-85a3-4c62-b695-195408835595';

    const a = machine('a');
    const fileA = writeSession(a, sessionId, firstRun);
    expect((await persist({ conversationId, sessionId, filePath: fileA, attempt: 1, commit: true })).bytesAdded).toBe(firstRun.length);

    const b = machine('b');
    const hb = await hydrateSession(t.db, { conversationId, sessionId, ...b });
    expect(readFileSync(hb.path).equals(firstRun)).toBe(true);
    appendFileSync(hb.path, afterResumes.subarray(firstRun.length)); // what the resumed CLI appends
    const r = await persist({ conversationId, sessionId, filePath: hb.path, attempt: 2, commit: true });
    expect(r.bytesAdded).toBe(afterResumes.length - firstRun.length);

    const c = machine('c');
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId, ...c })).path).equals(afterResumes)).toBe(true);

    const sigterm = readFileSync(path.join(FIXTURES, 'session-after-sigterm-then-resume.jsonl'));
    const otherId = 'e2d91ae9-606d-44fa-b196-a0da5e56ee87';
    const fileS = writeSession(a, otherId, sigterm);
    await persist({ conversationId, sessionId: otherId, filePath: fileS, attempt: 3, commit: true });
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId: otherId, ...c })).path).equals(sigterm)).toBe(true);
  });

  it('keeps bytes that are not valid UTF-8, CRLF endings and blank lines exactly', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const bytes = Buffer.concat([
      Buffer.from('{"a":"caf\u00e9 \ud83d\ude80"}\r\n'),
      Buffer.from([0x7b, 0xff, 0xfe, 0xc3, 0x28, 0x7d, 0x0a]),
      Buffer.from('\n\n{"b":1}\n'),
    ]);
    const file = writeSession(machine(), sessionId, bytes);
    expect((await persist({ conversationId, sessionId, filePath: file, attempt: 1, commit: true })).linesAdded).toBe(5);
    const h = await hydrateSession(t.db, { conversationId, sessionId, ...machine() });
    expect(readFileSync(h.path).equals(bytes)).toBe(true);
  });
});

describe('persist', () => {
  it('leaves an incomplete last line in the file until its newline arrives', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const complete = lines(sessionId, 4, 7);
    const m = machine();
    const file = writeSession(m, sessionId, Buffer.concat([complete, Buffer.from('{"type":"assistant","mess')]));
    const first = await persist({ conversationId, sessionId, filePath: file, attempt: 1, commit: true });
    expect(first).toMatchObject({ linesAdded: 4, bytesAdded: complete.length, partialBytes: 25 });
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId, ...machine() })).path).equals(complete)).toBe(true);

    appendFileSync(file, 'age":{}}\n');
    const second = await persist({ conversationId, sessionId, filePath: file, attempt: 1, commit: true });
    expect(second).toMatchObject({ linesAdded: 1, bytesAdded: 34, partialBytes: 0 });
    const h = await hydrateSession(t.db, { conversationId, sessionId, ...machine() });
    expect(readFileSync(h.path).equals(readFileSync(file))).toBe(true);
  });

  it('an empty file stores an empty session that hydrates to an empty file', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const file = writeSession(machine(), sessionId, Buffer.alloc(0));
    expect(await persist({ conversationId, sessionId, filePath: file, attempt: 1, commit: true })).toMatchObject({
      linesAdded: 0,
      bytesAdded: 0,
      chunksAdded: 0,
    });
    const h = await hydrateSession(t.db, { conversationId, sessionId, ...machine() });
    expect(h).toMatchObject({ lines: 0, bytes: 0 });
    expect(readFileSync(h.path).length).toBe(0);
  });

  it('persisting an unchanged file again stores nothing twice', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const bytes = lines(sessionId, 20, 3);
    const file = writeSession(machine(), sessionId, bytes);
    await persist({ conversationId, sessionId, filePath: file, attempt: 1 });
    const again = await persist({ conversationId, sessionId, filePath: file, attempt: 1 });
    expect(again).toMatchObject({ linesAdded: 0, bytesAdded: 0, chunksAdded: 0, lineCount: 20 });
    expect(await chunkRows(conversationId, sessionId)).toHaveLength(1);
    await expectContiguous(conversationId, sessionId, bytes);
  });

  it('splits a large delta into chunks of at most the chunk size, cut at line ends', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const bytes = lines(sessionId, 600, 11);
    const file = writeSession(machine(), sessionId, bytes);
    const r = await persist({ conversationId, sessionId, filePath: file, attempt: 1, chunkBytes: 64 * 1024, commit: true });
    const rows = await chunkRows(conversationId, sessionId);
    expect(r.chunksAdded).toBe(rows.length);
    expect(rows.length).toBeGreaterThan(bytes.length / (64 * 1024));
    for (const row of rows) expect(row.byteLen).toBeLessThanOrEqual(64 * 1024);
    await expectContiguous(conversationId, sessionId, bytes);
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId, ...machine() })).path).equals(bytes)).toBe(true);
  });

  it('two persist calls racing on one session store every line once, with no gap', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const m = machine();
    const base = lines(sessionId, 30, 5);
    const file = writeSession(m, sessionId, base);
    const results = await Promise.all([1, 2, 3, 4].map(() => persist({ conversationId, sessionId, filePath: file, attempt: 1, chunkBytes: 4096 })));
    expect(results.reduce((n, r) => n + r.linesAdded, 0)).toBe(30);
    expect(results.filter((r) => r.linesAdded > 0)).toHaveLength(1);

    // Racing again while the file grows between the calls.
    const more = lines(sessionId, 40, 6);
    appendFileSync(file, more.subarray(0, 9000));
    const racing = Promise.all([
      persist({ conversationId, sessionId, filePath: file, attempt: 1, chunkBytes: 4096 }),
      persist({ conversationId, sessionId, filePath: file, attempt: 1, chunkBytes: 4096 }),
    ]);
    appendFileSync(file, more.subarray(9000));
    await racing;
    await persist({ conversationId, sessionId, filePath: file, attempt: 1, commit: true });
    const all = Buffer.concat([base, more]);
    await expectContiguous(conversationId, sessionId, all);
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId, ...machine() })).path).equals(all)).toBe(true);
  });

  it('a line over the cap fails naming the session and line, and stores nothing of that call', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const m = machine();
    const good = lines(sessionId, 3, 9);
    const file = writeSession(m, sessionId, good);
    await persist({ conversationId, sessionId, filePath: file, attempt: 1, commit: true, maxLineBytes: 8192 });
    const before = await getSessionHead(t.db, conversationId, sessionId);

    appendFileSync(file, Buffer.concat([lines(sessionId, 2, 10), Buffer.from(`{"big":"${'x'.repeat(10_000)}"}\n`), lines(sessionId, 2, 12)]));
    const err = await persist({ conversationId, sessionId, filePath: file, attempt: 2, maxLineBytes: 8192, chunkBytes: 1024 }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SessionLineTooLongError);
    expect(err).toMatchObject({ name: 'SessionLineTooLongError', sessionId, lineNumber: 6, maxLineBytes: 8192 });
    expect((err as Error).message).toContain(`Session ${sessionId}: line 6`);
    expect(await getSessionHead(t.db, conversationId, sessionId)).toEqual(before);
    expect(await chunkRows(conversationId, sessionId)).toHaveLength(1);
  });

  it('an incomplete last line already over the cap fails too', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const file = writeSession(machine(), sessionId, Buffer.from(`{"ok":1}\n{"partial":"${'y'.repeat(5000)}`));
    await expect(persist({ conversationId, sessionId, filePath: file, attempt: 1, maxLineBytes: 4096 })).rejects.toMatchObject({
      name: 'SessionLineTooLongError',
      lineNumber: 2,
    });
    expect(await chunkRows(conversationId, sessionId)).toHaveLength(0);
  });

  it('refuses a file shorter than what is stored, or differing before the stored head', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const m = machine();
    const bytes = lines(sessionId, 10, 13);
    const file = writeSession(m, sessionId, bytes);
    await persist({ conversationId, sessionId, filePath: file, attempt: 1, commit: true });

    writeFileSync(file, bytes.subarray(0, bytes.length - 10));
    await expect(persist({ conversationId, sessionId, filePath: file, attempt: 2 })).rejects.toBeInstanceOf(SessionDivergedError);

    const altered = Buffer.from(bytes);
    altered[altered.length - 3] = 0x21;
    writeFileSync(file, Buffer.concat([altered, lines(sessionId, 2, 14)]));
    await expect(persist({ conversationId, sessionId, filePath: file, attempt: 2 })).rejects.toThrow(/differ from the stored ones/);
    expect((await getSessionHead(t.db, conversationId, sessionId))?.lineCount).toBe(10);
  });

  it('refuses a session id that is not a safe file name, naming the field', async () => {
    const conversationId = await newConversation();
    await expect(persist({ conversationId, sessionId: '../escape', filePath: '/dev/null', attempt: 1 })).rejects.toMatchObject({
      name: 'StoreInputError',
      field: 'sessionId',
    });
    await expect(
      hydrateSession(t.db, { conversationId, sessionId: 'a/b', ...machine() }),
    ).rejects.toBeInstanceOf(StoreInputError);
  });

  it('inside a caller transaction that rolls back, nothing is stored', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const file = writeSession(machine(), sessionId, lines(sessionId, 5, 15));
    await expect(
      t.db.transaction(async (tx) => {
        await persistSession(tx, { conversationId, sessionId, filePath: file, attempt: 1, commit: true, maxLineBytes: MAX_LINE });
        throw new Error('the commit failed later');
      }),
    ).rejects.toThrow('the commit failed later');
    expect(await getSessionHead(t.db, conversationId, sessionId)).toBeUndefined();
  });
});

describe('attempts, commit and forks', () => {
  it('a retried attempt continues from the interrupted checkpoints and commits them with its own lines', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const committed = lines(sessionId, 6, 20);
    const m1 = machine('a1');
    const file1 = writeSession(m1, sessionId, committed);
    await persist({ conversationId, sessionId, filePath: file1, attempt: 't1:1', commit: true });

    // Turn 2, attempt 1: checkpoints, then the worker dies.
    const checkpoint = lines(sessionId, 4, 21);
    appendFileSync(file1, checkpoint);
    await persist({ conversationId, sessionId, filePath: file1, attempt: 't2:1' });
    const head = await getSessionHead(t.db, conversationId, sessionId);
    expect(head).toMatchObject({ lineCount: 10, committedLineCount: 6 });

    // Committed only, by default.
    const plain = await hydrateSession(t.db, { conversationId, sessionId, ...machine('peek') });
    expect(readFileSync(plain.path).equals(committed)).toBe(true);

    // Attempt 2 continues.
    const m2 = machine('a2');
    const h2 = await hydrateSession(t.db, { conversationId, sessionId, ...m2, includeUncommitted: true });
    expect(h2).toMatchObject({ lines: 10, uncommittedLines: 4 });
    const own = lines(sessionId, 3, 22);
    appendFileSync(h2.path, own);
    await persist({ conversationId, sessionId, filePath: h2.path, attempt: 't2:2', commit: true });

    const rows = await chunkRows(conversationId, sessionId);
    expect(rows.map((r) => [r.attempt, r.committed])).toEqual([
      ['t1:1', true],
      ['t2:1', true],
      ['t2:2', true],
    ]);
    const after = await getSessionHead(t.db, conversationId, sessionId);
    expect(after).toMatchObject({ lineCount: 13, committedLineCount: 13, committedByteCount: after?.byteCount });
    const all = Buffer.concat([committed, checkpoint, own]);
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId, ...machine('b') })).path).equals(all)).toBe(true);
  });

  it('discardUncommitted drops abandoned checkpoints; without it a restarted attempt is refused as diverged', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const committed = lines(sessionId, 5, 30);
    const file1 = writeSession(machine(), sessionId, committed);
    await persist({ conversationId, sessionId, filePath: file1, attempt: 1, commit: true });
    appendFileSync(file1, lines(sessionId, 5, 31));
    await persist({ conversationId, sessionId, filePath: file1, attempt: 2 });

    // Attempt 3 starts over from the committed lines but forgets to discard.
    const m3 = machine();
    const h3 = await hydrateSession(t.db, { conversationId, sessionId, ...m3 });
    const fresh = lines(sessionId, 7, 32);
    appendFileSync(h3.path, fresh);
    await expect(persist({ conversationId, sessionId, filePath: h3.path, attempt: 3 })).rejects.toBeInstanceOf(SessionDivergedError);

    expect(await discardUncommitted(t.db, { conversationId, sessionId })).toMatchObject({ linesDiscarded: 5 });
    const r = await persist({ conversationId, sessionId, filePath: h3.path, attempt: 3, commit: true });
    expect(r.linesAdded).toBe(7);
    const all = Buffer.concat([committed, fresh]);
    await expectContiguous(conversationId, sessionId, all);
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId, ...machine() })).path).equals(all)).toBe(true);
  });

  it('commit refuses when another attempt appended after the committing attempt', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const file = writeSession(machine(), sessionId, lines(sessionId, 3, 40));
    await persist({ conversationId, sessionId, filePath: file, attempt: 'a' });
    appendFileSync(file, lines(sessionId, 3, 41));
    await persist({ conversationId, sessionId, filePath: file, attempt: 'zombie' });
    await expect(commitSessionLines(t.db, { conversationId, sessionId, attempt: 'a' })).rejects.toBeInstanceOf(SessionAttemptConflictError);
    expect(await getSessionHead(t.db, conversationId, sessionId)).toMatchObject({ committedLineCount: 0 });
    // The later attempt, whose history includes the earlier lines, may commit.
    expect(await commitSessionLines(t.db, { conversationId, sessionId, attempt: 'zombie' })).toMatchObject({ linesCommitted: 6 });
  });

  it('a changed session id is stored as its own session with forked_from, and commit points the conversation at it', async () => {
    const conversationId = await newConversation();
    const original = randomUUID();
    const m = machine();
    const history = lines(original, 8, 50);
    const file = writeSession(m, original, history);
    await persist({ conversationId, sessionId: original, filePath: file, attempt: 1, commit: true });
    let conv = (await t.db.select().from(conversations).where(eq(conversations.id, conversationId)))[0];
    expect(conv?.sessionId).toBe(original);

    // The CLI reports a new id (a fork, or an old CLI on resume): a new file with the full history.
    const forked = randomUUID();
    const forkBytes = Buffer.concat([Buffer.from(history.toString('utf8').replaceAll(original, forked)), lines(forked, 4, 51)]);
    const forkFile = writeSession(m, forked, forkBytes);
    await persist({ conversationId, sessionId: forked, filePath: forkFile, attempt: 2, forkedFrom: original });
    conv = (await t.db.select().from(conversations).where(eq(conversations.id, conversationId)))[0];
    expect(conv?.sessionId).toBe(original); // not before commit
    await commitSessionLines(t.db, { conversationId, sessionId: forked, attempt: 2 });
    conv = (await t.db.select().from(conversations).where(eq(conversations.id, conversationId)))[0];
    expect(conv?.sessionId).toBe(forked);

    const rows = await t.db.select().from(sessions).where(eq(sessions.conversationId, conversationId)).orderBy(asc(sessions.createdAt));
    expect(rows.map((r) => [r.sessionId, r.forkedFrom, r.lineCount])).toEqual([
      [original, null, 8],
      [forked, original, 12],
    ]);
    const back = machine();
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId: original, ...back })).path).equals(history)).toBe(true);
    expect(readFileSync((await hydrateSession(t.db, { conversationId, sessionId: forked, ...back })).path).equals(forkBytes)).toBe(true);
  });
});

describe('hydrate', () => {
  it('throws SessionNotFoundError for a session that was never stored', async () => {
    const conversationId = await newConversation();
    await expect(hydrateSession(t.db, { conversationId, sessionId: randomUUID(), ...machine() })).rejects.toBeInstanceOf(SessionNotFoundError);
  });

  it('a damaged stored chunk fails as corrupt and leaves no session file behind', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const file = writeSession(machine(), sessionId, lines(sessionId, 50, 60));
    await persist({ conversationId, sessionId, filePath: file, attempt: 1, commit: true, chunkBytes: 2048 });
    await t.db.execute(sql`update session_chunks set data = overlay(data placing '\\x00000000'::bytea from 12)
      where conversation_id = ${conversationId}::uuid and session_id = ${sessionId} and first_line > 0
      and first_line = (select min(first_line) from session_chunks where conversation_id = ${conversationId}::uuid and session_id = ${sessionId} and first_line > 0)`);
    const m = machine();
    await expect(hydrateSession(t.db, { conversationId, sessionId, ...m })).rejects.toBeInstanceOf(SessionCorruptError);
    const target = sessionFilePath(m.configDir, m.cwd, sessionId);
    expect(existsSync(target)).toBe(false);
    expect(existsSync(path.dirname(target)) ? readdirSync(path.dirname(target)) : []).toEqual([]);
  });

  it('replaces a stale file already at the session path', async () => {
    const conversationId = await newConversation();
    const sessionId = randomUUID();
    const bytes = lines(sessionId, 5, 70);
    await persist({ conversationId, sessionId, filePath: writeSession(machine(), sessionId, bytes), attempt: 1, commit: true });
    const m = machine();
    writeSession(m, sessionId, Buffer.from('old contents\n'));
    const h = await hydrateSession(t.db, { conversationId, sessionId, ...m });
    expect(readFileSync(h.path).equals(bytes)).toBe(true);
  });
});
