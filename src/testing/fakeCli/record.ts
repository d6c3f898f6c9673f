// The FAKE_CLAUDE_LOG recording: one JSON line per event, each appended with a single
// write so that lines from concurrent fake processes never interleave. Tests read it to
// prove which invocations ran, in what order, with which history and process ids.
import { appendFileSync, readFileSync } from 'node:fs';

/** The process group id from /proc (Node has no getpgid); undefined off Linux. */
export function readPgid(): number | undefined {
  try {
    const stat = readFileSync('/proc/self/stat', 'utf8');
    // Fields after the parenthesised command name: state ppid pgrp ...
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const pgid = Number(fields[2]);
    return Number.isInteger(pgid) && pgid > 0 ? pgid : undefined;
  } catch {
    return undefined;
  }
}

export class Recorder {
  constructor(private readonly file: string | undefined) {}

  write(record: Record<string, unknown>): void {
    if (!this.file) return;
    appendFileSync(this.file, `${JSON.stringify(record)}\n`);
  }
}
