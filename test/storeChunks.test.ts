import { randomBytes } from 'node:crypto';
import zlib from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { SessionLineTooLongError } from '../src/errors.js';
import { SDK_CODEC } from '../src/sdk/appendLines.js';
import { decodeChunk, encodeChunk, LineChunker, SYNC_CODEC_MAX_BYTES, type PendingChunk } from '../src/store/chunks.js';
import { chunkCodecs } from '../src/store/schema.js';

/** A seeded stream of lines of 0..maxLen bytes (any byte but the newline), each ending in \n. */
function randomLines(seed: number, count: number, maxLen: number): Buffer {
  let s = seed;
  const next = () => ((s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    const line = Buffer.alloc(Math.floor(next() * maxLen) + 1);
    for (let j = 0; j < line.length - 1; j++) {
      const b = Math.floor(next() * 256);
      line[j] = b === 0x0a ? 0x0b : b;
    }
    line[line.length - 1] = 0x0a;
    parts.push(line);
  }
  return Buffer.concat(parts);
}

function feed(bytes: Buffer, blockSizes: number[], chunkBytes: number, maxLineBytes = 1 << 20) {
  const chunker = new LineChunker({ sessionId: 's', firstLine: 10, byteOffset: 1000, maxLineBytes, chunkBytes });
  const chunks: PendingChunk[] = [];
  let pos = 0;
  let i = 0;
  while (pos < bytes.length) {
    const size = blockSizes[i++ % blockSizes.length]!;
    chunks.push(...chunker.push(Buffer.from(bytes.subarray(pos, pos + size))));
    pos += size;
  }
  chunks.push(...chunker.finish());
  return { chunks, partial: chunker.partialBytes };
}

describe('LineChunker', () => {
  it.each([
    [[1], 64],
    [[7, 300, 1], 256],
    [[4096], 1000],
    [[100_000], 4096],
  ])('cuts any block pattern %j into chunks of complete lines, in order, within %i bytes unless one line is longer', (blocks, chunkBytes) => {
    const bytes = Buffer.concat([randomLines(blocks[0]!, 300, 600), Buffer.from('partial-line-without-newline')]);
    const { chunks, partial } = feed(bytes, blocks, chunkBytes);
    const complete = bytes.subarray(0, bytes.lastIndexOf(0x0a) + 1);
    expect(Buffer.concat(chunks.map((c) => c.raw)).equals(complete)).toBe(true);
    expect(partial).toBe(bytes.length - complete.length);
    let line = 10;
    let offset = 1000;
    for (const c of chunks) {
      expect(c.firstLine).toBe(line);
      expect(c.byteOffset).toBe(offset);
      expect(c.raw[c.raw.length - 1]).toBe(0x0a);
      expect(c.raw.reduce((n, b) => n + (b === 0x0a ? 1 : 0), 0)).toBe(c.lineCount);
      if (c.lineCount > 1) expect(c.raw.length).toBeLessThanOrEqual(chunkBytes);
      line += c.lineCount;
      offset += c.raw.length;
    }
    expect(line - 10).toBe(300);
  });

  it('gives a line longer than the chunk size a chunk of its own', () => {
    const long = Buffer.concat([Buffer.alloc(5000, 0x61), Buffer.from('\n')]);
    const bytes = Buffer.concat([Buffer.from('a\nb\n'), long, Buffer.from('c\n')]);
    const { chunks } = feed(bytes, [333], 1024);
    expect(chunks.map((c) => c.raw.length)).toEqual([4, 5001, 2]);
  });

  it('reports the 1-based line number of a line over the cap, complete or not', () => {
    expect(() => feed(Buffer.from(`a\nb\n${'x'.repeat(50)}\n`), [8], 1024, 20)).toThrow(SessionLineTooLongError);
    try {
      feed(Buffer.from(`a\nb\n${'x'.repeat(50)}`), [1000], 1024, 20);
      expect.unreachable();
    } catch (err) {
      expect(err).toMatchObject({ lineNumber: 13, lineBytes: 50, maxLineBytes: 20 });
    }
  });
});

describe('chunk codecs', () => {
  it.each(chunkCodecs)('%s decodes to the exact bytes it encoded', async (codec) => {
    const raw = randomLines(3, 200, 400);
    expect((await decodeChunk(await encodeChunk(raw, codec), codec)).equals(raw)).toBe(true);
  });

  it.each(chunkCodecs)('%s: a chunk past the thread-pool size decodes exactly whatever decoded length it is told', async (codec) => {
    // Compressible and not: the output buffer is sized from a guess either way.
    const raws = [Buffer.from('{"type":"user","text":"hello"}\n'.repeat(40_000)), Buffer.from(`${randomBytes(600_000).toString('base64')}\n`)];
    for (const raw of raws) {
      const data = await encodeChunk(raw, codec);
      for (const hint of [undefined, raw.length, 1, raw.length * 3, Number.MAX_SAFE_INTEGER]) {
        expect((await decodeChunk(data, codec, hint)).equals(raw)).toBe(true);
      }
    }
  });
});

describe('the brotli chunk check', () => {
  /** Session-like lines: JSON text, so a damaged stream can still decode to plausible bytes. */
  const jsonLines = (n: number) => Buffer.from(`${Array.from({ length: n }, (_, i) => JSON.stringify({ i, text: 'word '.repeat(i % 17) })).join('\n')}\n`);
  /** Every single-bit flip of `data`, decoded: how many gave bytes other than `raw` without an error. */
  async function undetectedFlips(data: Buffer, raw: Buffer, decode: (d: Buffer) => Promise<Buffer> | Buffer): Promise<number> {
    let wrong = 0;
    for (let i = 0; i < data.length; i++) {
      for (let bit = 0; bit < 8; bit++) {
        const damaged = Buffer.from(data);
        damaged[i]! ^= 1 << bit;
        try {
          // What the length and final-newline checks of the readers let through.
          const out = await decode(damaged);
          if (!out.equals(raw) && out.length === raw.length && out[out.length - 1] === 0x0a) wrong++;
        } catch {
          // Caught: what a damaged chunk should do.
        }
      }
    }
    return wrong;
  }

  it("is the Agent SDK adapter's codec", () => {
    expect(SDK_CODEC).toBe('br');
  });

  it('catches every single-bit flip that plain brotli decodes to wrong bytes of the right length', async () => {
    const raw = jsonLines(100);
    const plain = zlib.brotliCompressSync(raw, { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1 } });
    // Without the check, a flipped bit often still decodes, to other bytes of the recorded length.
    expect(await undetectedFlips(plain, raw, (d) => zlib.brotliDecompressSync(d))).toBeGreaterThan(100);
    const checked = await encodeChunk(raw, 'br');
    expect(checked.length).toBe(plain.length + 8);
    expect(await undetectedFlips(checked, raw, (d) => decodeChunk(d, 'br', raw.length))).toBe(0);
  });

  it('catches damage in a chunk decoded on the thread pool', async () => {
    const raw = Buffer.from(`${Array.from({ length: 3000 }, (_, i) => JSON.stringify({ i, id: randomBytes(24).toString('base64') })).join('\n')}\n`);
    const data = await encodeChunk(raw, 'br');
    expect(data.length).toBeGreaterThan(SYNC_CODEC_MAX_BYTES / 4);
    for (const at of [0.1, 0.5, 0.9].map((f) => Math.floor(data.length * f))) {
      const damaged = Buffer.from(data);
      damaged[at]! ^= 0x10;
      await expect(decodeChunk(damaged, 'br', raw.length)).rejects.toThrow();
    }
    expect((await decodeChunk(data, 'br', raw.length)).equals(raw)).toBe(true);
  });

  it('refuses a damaged or foreign trailer, and reads a stream without one (written before the check)', async () => {
    const raw = jsonLines(50);
    const data = await encodeChunk(raw, 'br');
    const stream = data.subarray(0, data.length - 8);
    expect((await decodeChunk(stream, 'br', raw.length)).equals(raw)).toBe(true);
    const wrongCrc = Buffer.from(data);
    wrongCrc[wrongCrc.length - 1]! ^= 1;
    await expect(decodeChunk(wrongCrc, 'br', raw.length)).rejects.toThrow(/CRC-32 mismatch/);
    await expect(decodeChunk(Buffer.concat([data, Buffer.from([0])]), 'br', raw.length)).rejects.toThrow(/after the brotli stream/);
    await expect(decodeChunk(Buffer.concat([stream, Buffer.from('XXXX\0\0\0\0')]), 'br', raw.length)).rejects.toThrow(/after the brotli stream/);
  });
});
