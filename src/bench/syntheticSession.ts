// Synthetic CLI session lines, shaped like the real session files in
// shared/claude-cli/examples (message lines with uuid/parentUuid/sessionId/cwd/version/
// timestamp, plus queue-operation, attachment and last-prompt lines), with sizes from
// ~150 bytes to a few KiB and some non-ASCII text. Deterministic for a given seed. Used
// by the store benchmark and the store tests.
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';

const WORDS = (
  'the session store writes every line back byte for byte and a worker resumes the ' +
  'conversation where it stopped; function const return await import export file path ' +
  'test run build deploy ticket customer refund invoice error retry backoff queue lease ' +
  'überprüfen naïve café 東京 données 🚀 ✓ —'
).split(' ');

/** A small, fast, seedable PRNG (mulberry32). */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function uuidFrom(next: () => number): string {
  const hex = Array.from({ length: 32 }, () => Math.floor(next() * 16).toString(16)).join('');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-a${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

export interface SyntheticOptions {
  sessionId: string;
  seed?: number;
  cwd?: string;
}

/** An endless stream of session lines (each a Buffer ending in `\n`). */
export function* syntheticSessionLines(options: SyntheticOptions): Generator<Buffer> {
  const next = rng(options.seed ?? 1);
  const cwd = options.cwd ?? '/srv/example/ws/A';
  let parent: string | null = null;
  let clock = Date.parse('2026-11-25T14:40:35.390Z');
  const text = (min: number, spread: number) => {
    const n = min + Math.floor(next() * spread);
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(WORDS[Math.floor(next() * WORDS.length)]!);
    return out.join(' ');
  };
  for (;;) {
    clock += Math.floor(next() * 2000);
    const timestamp = new Date(clock).toISOString();
    const uuid = uuidFrom(next);
    const base = { parentUuid: parent, isSidechain: false, uuid, timestamp, cwd, sessionId: options.sessionId, version: '2.1.197' };
    const r = next();
    let entry: unknown;
    if (r < 0.08) {
      entry = { type: 'queue-operation', operation: next() < 0.5 ? 'enqueue' : 'dequeue', timestamp, sessionId: options.sessionId };
    } else if (r < 0.15) {
      entry = { type: 'last-prompt', lastPrompt: text(3, 20), sessionId: options.sessionId };
    } else if (r < 0.3) {
      entry = { ...base, type: 'user', message: { role: 'user', content: text(5, 60) }, userType: 'external', entrypoint: 'sdk-cli' };
    } else if (r < 0.4) {
      entry = { ...base, attachment: { type: 'agent_listing_delta', addedLines: [text(20, 200), text(20, 200)] }, type: 'attachment' };
    } else {
      const id = `msg_${uuid.replace(/-/g, '').slice(0, 24)}`;
      entry = {
        ...base,
        message: { model: 'claude-sonnet-4-5', id, type: 'message', role: 'assistant', content: [{ type: 'text', text: text(10, 700) }] },
        requestId: `req_${id.slice(4)}`,
        type: 'assistant',
      };
    }
    if (r >= 0.15) parent = uuid;
    yield Buffer.from(`${JSON.stringify(entry)}\n`);
  }
}

/** Writes lines until the file holds at least `targetBytes`; returns the line and byte counts. */
export async function writeSyntheticSession(
  filePath: string,
  targetBytes: number,
  options: SyntheticOptions & { flags?: string },
): Promise<{ lines: number; bytes: number }> {
  const out = createWriteStream(filePath, { flags: options.flags ?? 'w' });
  let lines = 0;
  let bytes = 0;
  for (const line of syntheticSessionLines(options)) {
    if (bytes >= targetBytes) break;
    if (!out.write(line)) await once(out, 'drain');
    lines++;
    bytes += line.length;
  }
  out.end();
  await once(out, 'finish');
  return { lines, bytes };
}
