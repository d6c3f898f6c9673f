// Reading and appending the session JSONL the way the real CLI does: every entry is one
// complete line appended with its own write, message entries chain through parentUuid,
// and non-message lines (queue-operation, last-prompt) sit in between. Tests of the
// session store rely on those properties, so they are kept even in the fake.
import { randomUUID } from 'node:crypto';
import { appendFileSync, existsSync, readFileSync, statSync } from 'node:fs';

/** What a resume needs from an existing file. */
export interface SessionHistory {
  /** User prompts (not tool results), in file order. */
  prompts: string[];
  /** uuid of the last entry that has one: the parent of the next message. */
  lastUuid: string | null;
}

/** Session version written into every entry (the real CLI writes its own version). */
export const FAKE_SESSION_VERSION = 'fake';

/** True when the file exists and holds at least one non-blank character. */
export function hasContent(file: string): boolean {
  if (!existsSync(file) || statSync(file).size === 0) return false;
  return readFileSync(file, 'utf8').trim() !== '';
}

/** The prompt text of a user message content, or undefined for tool results. */
export function promptText(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  const texts = content
    .filter((b): b is { type: 'text'; text: string } => isRecord(b) && b.type === 'text' && typeof b.text === 'string')
    .map((b) => b.text);
  return texts.length > 0 ? texts.join('\n') : undefined;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function parseLine(line: string): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(line);
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined; // the real CLI skips garbage lines too
  }
}

/** Reads the prompts and the leaf uuid; undefined when the file is missing or empty. */
export function readHistory(file: string): SessionHistory | undefined {
  if (!hasContent(file)) return undefined;
  const history: SessionHistory = { prompts: [], lastUuid: null };
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    const entry = parseLine(line);
    if (!entry) continue;
    if (typeof entry.uuid === 'string') history.lastUuid = entry.uuid;
    if (entry.type === 'user' && isRecord(entry.message)) {
      const text = promptText(entry.message.content);
      if (text !== undefined) history.prompts.push(text);
    }
  }
  return history;
}

/**
 * Serialises an entry, padded with a `fakePadding` field so the line is about
 * `targetBytes` long (used to build big sessions cheaply).
 */
export function serialize(entry: Record<string, unknown>, targetBytes: number | undefined): string {
  const plain = JSON.stringify(entry);
  if (!targetBytes) return plain;
  const overhead = Buffer.byteLength(',"fakePadding":""');
  const missing = targetBytes - Buffer.byteLength(plain) - overhead;
  if (missing <= 0) return plain;
  return JSON.stringify({ ...entry, fakePadding: 'x'.repeat(missing) });
}

interface TurnContext {
  sessionId: string;
  cwd: string;
  permissionMode: string;
  model: string;
}

/** Appends entries to one session file, keeping the parentUuid chain. */
export class SessionWriter {
  private lastUuid: string | null;

  constructor(
    readonly file: string,
    readonly sessionId: string,
    history: SessionHistory | undefined,
    /** Pad every line to about this many bytes (scripted per turn); undefined: no padding. */
    public lineBytes: number | undefined = undefined,
  ) {
    this.lastUuid = history?.lastUuid ?? null;
  }

  /**
   * With stream-json input the real CLI (2.1.197) writes session lines through a buffer:
   * a turn's lines reach the file after its `result` is printed (measured: within tens to
   * hundreds of ms), and at exit. `bufferMs` > 0 mimics that: lines are written that long
   * after the first unwritten one; `flush()` writes them now.
   */
  bufferMs = 0;
  private buffered: string[] = [];
  private flushTimer: NodeJS.Timeout | undefined;

  /** One complete line per write, so a crash never leaves half a line. */
  append(entry: Record<string, unknown>): void {
    const line = `${serialize(entry, this.lineBytes)}\n`;
    if (typeof entry.uuid === 'string') this.lastUuid = entry.uuid;
    if (this.bufferMs <= 0) {
      appendFileSync(this.file, line);
      return;
    }
    this.buffered.push(line);
    this.flushTimer ??= setTimeout(() => this.flush(), this.bufferMs);
  }

  flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.buffered.length === 0) return;
    appendFileSync(this.file, this.buffered.join(''));
    this.buffered = [];
  }

  get leafUuid(): string | null {
    return this.lastUuid;
  }

  /** Common fields of message and attachment entries. */
  private chained(ctx: TurnContext): Record<string, unknown> {
    return {
      parentUuid: this.lastUuid,
      isSidechain: false,
      uuid: randomUUID(),
      timestamp: new Date().toISOString(),
      userType: 'external',
      entrypoint: 'sdk-cli',
      cwd: ctx.cwd,
      sessionId: this.sessionId,
      version: FAKE_SESSION_VERSION,
      gitBranch: 'HEAD',
    };
  }

  queueOperation(operation: 'enqueue' | 'dequeue', content?: unknown): void {
    const base = { type: 'queue-operation', operation, timestamp: new Date().toISOString(), sessionId: this.sessionId };
    this.append(content === undefined ? base : { ...base, content });
  }

  user(ctx: TurnContext, content: unknown): void {
    this.append({
      ...this.chained(ctx),
      type: 'user',
      promptId: randomUUID(),
      message: { role: 'user', content },
      permissionMode: ctx.permissionMode,
      promptSource: 'sdk',
    });
  }

  /** Filler entries that grow the session (the real CLI writes attachments here). */
  attachment(ctx: TurnContext, index: number): void {
    this.append({ ...this.chained(ctx), type: 'attachment', attachment: { type: 'fake_filler', index } });
  }

  assistant(ctx: TurnContext, message: Record<string, unknown>, extra: Record<string, unknown> = {}): void {
    this.append({
      ...this.chained(ctx),
      type: 'assistant',
      message,
      requestId: `req_${String(message.id)}`,
      ...extra,
    });
  }

  lastPrompt(prompt: string): void {
    this.append({ type: 'last-prompt', lastPrompt: prompt, leafUuid: this.lastUuid, sessionId: this.sessionId });
  }
}
