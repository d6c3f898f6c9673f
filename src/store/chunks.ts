// Session bytes → chunks of complete lines, and chunk codecs. Lines are bytes: they are
// cut at 0x0A and never decoded, so what is stored is exactly what the CLI wrote.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { SessionLineTooLongError } from '../errors.js';
import type { ChunkCodec } from './schema.js';

/** A chunk holds complete lines up to this many raw bytes (a longer single line gets a chunk of its own). */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;

/**
 * The codec a worker writes new chunks with: gzip level 1. Measured with the store
 * benchmark on a 50 MB session (2 cores): it stores ~25% of the bytes and hydrates
 * ~1.3-2× faster than identity (fewer bytes from Postgres, inflate on the thread pool).
 * Brotli quality 1 (with the CRC-32 after its stream, see encodeChunk) compresses 1.3-2×
 * faster and stores ~8% fewer bytes, but hydrated that session 10-20% slower (159-175
 * against 172-209 ms, 2026-12-07; its check runs on the main thread, gzip's in zlib): a
 * session is hydrated on every cold turn and written once, so the worker keeps gzip. The
 * Agent SDK adapter, whose appends are its hot path, writes brotli (SDK_CODEC in
 * src/sdk/appendLines.ts). Readers accept every codec, so this can change without a
 * migration.
 */
export const DEFAULT_CODEC: ChunkCodec = 'gzip';

const NEWLINE = 0x0a;

/** Complete lines cut from a session file, ready to encode and store. */
export interface PendingChunk {
  /** 0-based line number of the first line. */
  firstLine: number;
  lineCount: number;
  /** File offset of the first byte. */
  byteOffset: number;
  /** The raw bytes, ending in a newline. */
  raw: Buffer;
}

export interface ChunkerOptions {
  sessionId: string;
  /** Where the bytes pushed first sit in the file (the stored head). */
  firstLine: number;
  byteOffset: number;
  maxLineBytes: number;
  chunkBytes?: number;
}

/**
 * Cuts a byte stream that starts at a line boundary into chunks of complete lines. A
 * trailing partial line is held back (it is not stored until its newline arrives).
 * Throws SessionLineTooLongError as soon as a line, complete or not, passes the cap.
 */
export class LineChunker {
  private pending: Buffer = Buffer.alloc(0);
  /** Bytes of `pending` already split into lines (always at a line boundary). */
  private scanned = 0;
  /** Complete lines in pending[0, scanned). */
  private scannedLines = 0;
  private nextLine: number;
  private nextOffset: number;
  private readonly chunkBytes: number;

  constructor(private readonly options: ChunkerOptions) {
    this.nextLine = options.firstLine;
    this.nextOffset = options.byteOffset;
    this.chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  }

  /** Adds bytes; returns the chunks that are full. */
  push(block: Buffer): PendingChunk[] {
    // [scanned, previous length) was searched already and holds no newline.
    let searchFrom = this.pending.length;
    this.pending = this.pending.length === 0 ? block : Buffer.concat([this.pending, block]);
    const out: PendingChunk[] = [];
    let pos = this.scanned;
    for (;;) {
      const nl = this.pending.indexOf(NEWLINE, Math.max(pos, searchFrom));
      searchFrom = 0;
      if (nl === -1) break;
      this.checkLength(nl + 1 - pos);
      // The line [pos, nl] would overfill the chunk: cut before it, unless it is alone.
      if (nl + 1 > this.chunkBytes && this.scannedLines > 0) {
        out.push(this.cut());
        pos = 0;
        continue;
      }
      pos = nl + 1;
      this.scanned = pos;
      this.scannedLines++;
      if (pos >= this.chunkBytes) {
        out.push(this.cut());
        pos = 0;
      }
    }
    this.checkLength(this.pending.length - this.scanned);
    return out;
  }

  /** Ends the input: the complete lines not yet in a chunk, if any. The partial tail is dropped. */
  finish(): PendingChunk[] {
    return this.scannedLines > 0 ? [this.cut()] : [];
  }

  /** Bytes of the incomplete last line held back. */
  get partialBytes(): number {
    return this.pending.length - this.scanned;
  }

  private cut(): PendingChunk {
    const chunk: PendingChunk = {
      firstLine: this.nextLine,
      lineCount: this.scannedLines,
      byteOffset: this.nextOffset,
      raw: this.pending.subarray(0, this.scanned),
    };
    this.nextLine += this.scannedLines;
    this.nextOffset += this.scanned;
    this.pending = this.pending.subarray(this.scanned);
    this.scanned = 0;
    this.scannedLines = 0;
    return chunk;
  }

  private checkLength(lineBytes: number): void {
    if (lineBytes > this.options.maxLineBytes) {
      const lineNumber = this.nextLine + this.scannedLines + 1;
      throw new SessionLineTooLongError(this.options.sessionId, lineNumber, lineBytes, this.options.maxLineBytes);
    }
  }
}

const gzip = promisify(zlib.gzip);
const gunzip = promisify(zlib.gunzip);
const brotliCompress = promisify(zlib.brotliCompress);

/**
 * Below this many bytes a chunk is coded on the calling thread: a turn's few KiB take
 * tens of microseconds, and the hop to the thread pool and back took ~1.2 ms each way on
 * a busy 2-core machine (measured in the commit of a real-CLI turn, docs/benchmarks.md).
 */
export const SYNC_CODEC_MAX_BYTES = 64 * 1024;

/**
 * The output buffer of a zlib call on the thread pool. zlib's default (16 KiB) makes a
 * 1 MiB chunk 16-64 round trips between a pool thread and the main thread, each waiting
 * for the main thread to be free; one buffer the size of the expected output makes it one
 * or two. Measured here on 1 MiB of session lines (gzip level 1, ~250 KiB out): inflating
 * took 9.5 ms with the default and 3.9 ms with this; deflating while the main thread was
 * busy for 8 ms, 17 ms and 9 ms.
 */
function outputBuffer(expectedBytes: number): number {
  return Math.min(MAX_OUTPUT_BUFFER, Math.max(zlib.constants.Z_DEFAULT_CHUNK, expectedBytes + 1024));
}
const MAX_OUTPUT_BUFFER = 8 * 1024 * 1024;

/**
 * A 'br' chunk is the brotli stream, then BR_CHECK_MAGIC and the CRC-32 of the raw bytes
 * (big-endian). A brotli decoder stops at the end of its stream and leaves what follows, so
 * a reader without the check decodes these chunks too; a 'br' chunk with nothing after
 * its stream (written before the check existed) is read unchecked.
 */
const BR_CHECK_MAGIC = Buffer.from('AQC1', 'latin1');
const BR_CHECK_BYTES = BR_CHECK_MAGIC.length + 4;

function brotliParams(rawBytes: number): zlib.BrotliOptions {
  return { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: rawBytes } };
}

function withCheck(stream: Buffer, raw: Buffer): Buffer {
  const out = Buffer.allocUnsafe(stream.length + BR_CHECK_BYTES);
  stream.copy(out, 0);
  BR_CHECK_MAGIC.copy(out, stream.length);
  out.writeUInt32BE(zlib.crc32(raw), stream.length + BR_CHECK_MAGIC.length);
  return out;
}

/** Encodes raw chunk bytes; the zlib work of a larger chunk runs on the libuv thread pool. */
export async function encodeChunk(raw: Buffer, codec: ChunkCodec): Promise<Buffer> {
  switch (codec) {
    case 'identity':
      return raw;
    case 'gzip':
      // Session lines deflate to about a quarter at level 1; a larger output takes more rounds.
      return raw.length < SYNC_CODEC_MAX_BYTES ? zlib.gzipSync(raw, { level: 1 }) : gzip(raw, { level: 1, chunkSize: outputBuffer(raw.length >> 1) });
    case 'br': {
      const stream =
        raw.length < SYNC_CODEC_MAX_BYTES ? zlib.brotliCompressSync(raw, brotliParams(raw.length)) : await brotliCompress(raw, { ...brotliParams(raw.length), chunkSize: outputBuffer(raw.length >> 1) });
      return withCheck(stream, raw);
    }
  }
}

/** The decoded bytes and how many bytes of the input the decoder's stream took. */
interface Decoded {
  buffer: Buffer;
  engine: { bytesWritten: number };
}

/** `info: true` (documented for every zlib convenience method, missing from the BrotliOptions type). */
const WITH_INFO = { info: true } as zlib.BrotliOptions;

function brotliDecode(data: Buffer, chunkSize: number): Promise<Decoded> | Decoded {
  if (data.length < SYNC_CODEC_MAX_BYTES / 4) return zlib.brotliDecompressSync(data, WITH_INFO) as unknown as Decoded;
  return new Promise((resolve, reject) => {
    zlib.brotliDecompress(data, { ...WITH_INFO, chunkSize }, (err, result) => (err ? reject(err) : resolve(result as unknown as Decoded)));
  });
}

/** A 'br' chunk's bytes checked against the CRC-32 after its stream (see BR_CHECK_MAGIC). */
function checkedBrotli(data: Buffer, decoded: Decoded): Buffer {
  const trailer = data.subarray(decoded.engine.bytesWritten);
  if (trailer.length === 0) return decoded.buffer;
  if (trailer.length !== BR_CHECK_BYTES || !trailer.subarray(0, BR_CHECK_MAGIC.length).equals(BR_CHECK_MAGIC)) {
    throw new Error(`${trailer.length} bytes after the brotli stream, not its check`);
  }
  if (trailer.readUInt32BE(BR_CHECK_MAGIC.length) !== zlib.crc32(decoded.buffer)) throw new Error('CRC-32 mismatch: the chunk is damaged');
  return decoded.buffer;
}

/**
 * Decodes stored chunk bytes (gzip's CRC, or the CRC-32 after a brotli stream, catches
 * damaged data). `rawBytes`, the decoded length recorded with the chunk, sizes the output
 * buffer; it is not trusted beyond that.
 */
export async function decodeChunk(data: Buffer, codec: ChunkCodec, rawBytes?: number): Promise<Buffer> {
  const chunkSize = outputBuffer(rawBytes ?? data.length * 4);
  switch (codec) {
    case 'identity':
      return data;
    case 'gzip':
      return data.length < SYNC_CODEC_MAX_BYTES / 4 ? zlib.gunzipSync(data) : gunzip(data, { chunkSize });
    case 'br':
      return checkedBrotli(data, await brotliDecode(data, chunkSize));
  }
}
