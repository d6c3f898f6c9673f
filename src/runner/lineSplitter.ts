// Splits a byte stream into lines without ever holding more than `maxLineBytes` of an
// unfinished line: a longer line is an error, not unbounded memory.

export class LineTooLongError extends Error {
  override readonly name = 'LineTooLongError';
  constructor(readonly maxLineBytes: number) {
    super(`a stdout line exceeded ${maxLineBytes} bytes (AGENTQ_CLI_MAX_LINE_BYTES)`);
  }
}

export class LineSplitter {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly maxLineBytes: number) {}

  /** Feeds a chunk; returns the complete lines it finished (newline stripped, UTF-8). */
  push(chunk: Buffer): string[] {
    const lines: string[] = [];
    let start = 0;
    for (let nl = chunk.indexOf(10, start); nl !== -1; nl = chunk.indexOf(10, start)) {
      const piece = chunk.subarray(start, nl);
      this.check(piece.length);
      this.pending.push(piece);
      lines.push(this.take());
      start = nl + 1;
    }
    if (start < chunk.length) {
      const rest = chunk.subarray(start);
      this.check(rest.length);
      this.pending.push(rest);
      this.pendingBytes += rest.length;
    }
    return lines;
  }

  /** The unterminated last line at end of stream, if any. */
  flush(): string | undefined {
    return this.pendingBytes > 0 ? this.take() : undefined;
  }

  private check(extra: number): void {
    if (this.pendingBytes + extra > this.maxLineBytes) throw new LineTooLongError(this.maxLineBytes);
  }

  private take(): string {
    const text = Buffer.concat(this.pending).toString('utf8');
    this.pending = [];
    this.pendingBytes = 0;
    // Tolerate CRLF from odd wrappers.
    return text.endsWith('\r') ? text.slice(0, -1) : text;
  }
}

/** Keeps the last `maxBytes` bytes written to it (the stderr tail). */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  push(chunk: Buffer): void {
    if (this.maxBytes === 0) return;
    this.chunks.push(chunk);
    this.bytes += chunk.length;
    while (this.chunks.length > 1 && this.bytes - this.chunks[0]!.length >= this.maxBytes) {
      this.bytes -= this.chunks.shift()!.length;
    }
  }

  toString(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.maxBytes)).toString('utf8');
  }
}
