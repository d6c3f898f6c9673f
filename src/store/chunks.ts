// Session bytes → chunks of complete lines, and chunk codecs. Lines are bytes: they are
// cut at 0x0A and never decoded, so what is stored is exactly what the CLI wrote.
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { SessionLineTooLongError } from '../errors.js';
import type { ChunkCodec } from './schema.js';

/** A chunk holds complete lines up to this many raw bytes (a longer single line gets a chunk of its own). */
export const DEFAULT_CHUNK_BYTES = 1024 * 1024;

/**
 * The codec new chunks are written with: gzip level 1. Measured with the store benchmark
 * on a 50 MB session (2 cores): it stores ~25% of the bytes and hydrates ~1.3-1.6x faster
 * than identity (fewer bytes from Postgres, inflate on the thread pool); brotli quality 1
 * is ~8% smaller and hydrates as fast, but gzip carries a CRC-32, so a damaged chunk
 * fails to decode instead of hydrating wrong bytes. Readers accept every codec, so this
 * can change without a migration.
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
const brotliDecompress = promisify(zlib.brotliDecompress);

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

/** Encodes raw chunk bytes; the zlib work of a larger chunk runs on the libuv thread pool. */
export async function encodeChunk(raw: Buffer, codec: ChunkCodec): Promise<Buffer> {
  switch (codec) {
    case 'identity':
      return raw;
    case 'gzip':
      // Session lines deflate to about a quarter at level 1; a larger output takes more rounds.
      return raw.length < SYNC_CODEC_MAX_BYTES ? zlib.gzipSync(raw, { level: 1 }) : gzip(raw, { level: 1, chunkSize: outputBuffer(raw.length >> 1) });
    case 'br':
      return brotliCompress(raw, {
        chunkSize: outputBuffer(raw.length >> 1),
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
      });
  }
}

/**
 * Decodes stored chunk bytes (gzip's CRC catches damaged data). `rawBytes`, the decoded
 * length recorded with the chunk, sizes the output buffer; it is not trusted beyond that.
 */
export async function decodeChunk(data: Buffer, codec: ChunkCodec, rawBytes?: number): Promise<Buffer> {
  const chunkSize = outputBuffer(rawBytes ?? data.length * 4);
  switch (codec) {
    case 'identity':
      return data;
    case 'gzip':
      return data.length < SYNC_CODEC_MAX_BYTES / 4 ? zlib.gunzipSync(data) : gunzip(data, { chunkSize });
    case 'br':
      return brotliDecompress(data, { chunkSize });
  }
}
