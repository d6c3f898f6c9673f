// SDK entries <-> session lines. An entry is stored as `JSON.stringify(entry)` plus a
// newline, in the same chunks as the CLI's own lines: text, not jsonb, so the key order
// the SDK gave is kept and a worker hydrates exactly these bytes for the CLI. Loading
// parses each line back, which is deep-equal to what was appended (the contract's only
// requirement: a JSON round trip).
import { SessionCorruptError, SessionLineTooLongError, StoreInputError } from '../errors.js';

/** The SDK's `SessionStoreEntry` (structurally identical). */
export type SdkSessionEntry = { type: string; uuid?: string; timestamp?: string; [k: string]: unknown };

export interface SerializedEntry {
  /** The entry's `uuid` when it is a non-empty string: its idempotency key. */
  uuid: string | undefined;
  /** The JSONL line without its newline; undefined when serializeEntries was given a sink (it holds the bytes). */
  line: string | undefined;
  /** Its index in the batch. */
  index: number;
  /** Its length in UTF-8 bytes, with the newline. */
  bytes: number;
}

/**
 * Takes a serialized line (without its newline) and returns its size in UTF-8 bytes with
 * the newline, when it stores it; undefined when it does not.
 */
export type LineSink = (line: string, index: number) => number | undefined;

/**
 * Validates and serializes a batch before anything is stored: every entry must be a
 * JSON object with a string `type`, serializable, and its line at most `maxLineBytes`.
 * `sink` is given every line as it is serialized, before the next; a line it takes is
 * encoded once, by it (./appendLines.ts), and its byte count comes from there. With a sink
 * the lines are not kept: a batch's ~1 MB of strings then dies young (the garbage
 * collector's scavenges copy what is still alive).
 */
export function serializeEntries(entries: unknown, fileId: string, maxLineBytes: number, sink?: LineSink): SerializedEntry[] {
  if (!Array.isArray(entries)) throw new StoreInputError('entries', 'must be an array of transcript entries');
  return entries.map((entry: unknown, i) => {
    const field = `entries[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new StoreInputError(field, 'must be an object');
    const e = entry as Record<string, unknown>;
    if (typeof e.type !== 'string') throw new StoreInputError(`${field}.type`, 'must be a string');
    let line: string | undefined;
    try {
      line = JSON.stringify(e);
    } catch (err) {
      throw new StoreInputError(field, `is not JSON-serializable: ${(err as Error).message}`);
    }
    // A toJSON() that returns undefined or a non-object leaves no entry to store.
    if (line === undefined || !line.startsWith('{')) throw new StoreInputError(field, 'must serialize to a JSON object');
    // A line over the cap may already be in the sink's buffer: the throw drops the whole batch.
    const bytes = sink?.(line, i) ?? Buffer.byteLength(line) + 1;
    if (bytes > maxLineBytes) throw new SessionLineTooLongError(fileId, i + 1, bytes, maxLineBytes);
    return { uuid: typeof e.uuid === 'string' && e.uuid.length > 0 ? e.uuid : undefined, line: sink ? undefined : line, bytes, index: i };
  });
}

/** Parses decoded chunk bytes (complete lines) into entries. */
export function parseLines(raw: Buffer, fileId: string, firstLine: number): SdkSessionEntry[] {
  const out: SdkSessionEntry[] = [];
  let start = 0;
  let n = firstLine;
  for (let nl = raw.indexOf(0x0a); nl !== -1; nl = raw.indexOf(0x0a, start)) {
    n++;
    const text = raw.toString('utf8', start, nl);
    start = nl + 1;
    try {
      out.push(JSON.parse(text) as SdkSessionEntry);
    } catch (err) {
      throw new SessionCorruptError(fileId, `line ${n} is not JSON`, { cause: err });
    }
  }
  return out;
}

/** The `uuid` of a stored line, if it is a JSON object with a string one; undefined otherwise. */
export function lineUuid(text: string): string | undefined {
  try {
    const v = JSON.parse(text) as unknown;
    if (typeof v === 'object' && v !== null && typeof (v as { uuid?: unknown }).uuid === 'string') {
      const uuid = (v as { uuid: string }).uuid;
      return uuid.length > 0 ? uuid : undefined;
    }
  } catch {
    // Not JSON: the CLI writes JSON lines only, but a line we cannot read has no uuid to dedupe on.
  }
  return undefined;
}
