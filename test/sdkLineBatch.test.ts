import { describe, expect, it } from 'vitest';
import { LineBatch, SDK_CODEC } from '../src/sdk/appendLines.js';
import { decodeChunk } from '../src/store/chunks.js';

/** Seeded lines of 0..maxChars characters mixing 1-, 2-, 3- and 4-byte UTF-8 (no newline). */
function lines(seed: number, count: number, maxChars: number): string[] {
  let s = seed;
  const next = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const alphabet = ['a', 'Z', '{', '"', 'é', 'ß', '東', '—', '🚀', '✓'];
  return Array.from({ length: count }, () => {
    const n = Math.floor(next() * next() * maxChars);
    let line = '';
    for (let i = 0; i < n; i++) line += alphabet[Math.floor(next() * alphabet.length)];
    return line;
  });
}

describe('LineBatch', () => {
  it.each([
    [1, 64, 40],
    [2, 1000, 300],
    [3, 4096, 3000],
    [4, 16 * 1024, 20_000],
    [5, 256 * 1024, 2_000],
  ])('seed %i: chunks of at most %i bytes (unless one line is longer), greedy, in order, exact bytes', async (seed, chunkBytes, maxChars) => {
    const input = lines(seed, 400, maxChars);
    const batch = new LineBatch(chunkBytes);
    for (const line of input) expect(batch.add(line)).toBe(Buffer.byteLength(line) + 1);
    const { chunks } = batch.finish();
    expect(Buffer.concat(chunks.map((c) => c.raw)).toString('utf8')).toBe(input.map((l) => `${l}\n`).join(''));
    let at = 0;
    for (const [k, c] of chunks.entries()) {
      const mine = input.slice(at, at + c.lineCount);
      at += c.lineCount;
      expect(c.raw.toString('utf8')).toBe(mine.map((l) => `${l}\n`).join(''));
      if (c.lineCount > 1) expect(c.raw.length).toBeLessThanOrEqual(chunkBytes);
      // Greedy: the next chunk's first line would not have fit in this one.
      const following = input[at];
      if (k < chunks.length - 1 && following !== undefined) expect(c.raw.length + Buffer.byteLength(following) + 1).toBeGreaterThan(chunkBytes);
      expect((await decodeChunk(await c.data, SDK_CODEC, c.raw.length)).equals(c.raw)).toBe(true);
    }
    expect(at).toBe(input.length);
  });

  it('measures a line over its cap without making a buffer for it (its batch is refused)', () => {
    const batch = new LineBatch(1024, 100);
    expect(batch.add('x'.repeat(10))).toBe(11);
    expect(batch.add('é'.repeat(5000))).toBe(10_001);
    expect(batch.add('y')).toBe(2);
    const { chunks } = batch.finish();
    expect(chunks.map((c) => c.raw.toString())).toEqual([`${'x'.repeat(10)}\ny\n`]);
  });

  it('stores nothing for no lines', () => {
    expect(new LineBatch().finish().chunks).toEqual([]);
  });
});
