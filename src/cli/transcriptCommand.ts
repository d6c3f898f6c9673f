// `agentq transcript <conversation> [--tenant t] [--json] [--follow]`: a conversation's
// turns with their stored events, read from Postgres. `--follow` keeps polling for new
// events and new turns until the signal aborts it (SIGINT, wired in main.ts).
import type { Config } from '../config.js';
import { isTerminalStatus, storedEventsAfter } from '../live/storedEvents.js';
import { findConversation } from '../store/conversations.js';
import { createStoreDb, type StoreDb } from '../store/db.js';
import { parseConversationId, parseTenantId } from '../store/ids.js';
import { createPool } from '../store/pool.js';
import { listTurns, type TurnRow } from '../store/turns.js';
import { StoreInputError } from '../errors.js';
import type { CliIo } from './main.js';
import { attemptLine, eventJson, eventLines, turnEndJson, turnFooterLines, turnHeaderLines, turnJson } from './transcriptFormat.js';

export interface TranscriptFlags {
  tenant?: string;
  json?: boolean;
  follow?: boolean;
  /** How often --follow polls Postgres. @defaultValue 500 */
  pollMs?: number;
}

/** Events read per query; a turn with more is read in several pages. */
const PAGE = 500;

interface TurnProgress {
  headerPrinted: boolean;
  finished: boolean;
  attempt: number;
  seq: number;
}

export async function transcriptCommand(config: Config, io: CliIo, conversation: string, flags: TranscriptFlags, signal?: AbortSignal): Promise<number> {
  let externalId: string;
  let tenantId: string;
  try {
    externalId = parseConversationId(conversation, 'conversation');
    tenantId = parseTenantId(flags.tenant ?? 'default', '--tenant');
  } catch (err) {
    if (err instanceof StoreInputError) {
      io.err(err.message);
      return 2;
    }
    throw err;
  }
  const pool = createPool(config.databaseUrl, 2);
  const db = createStoreDb(pool);
  try {
    const conv = await findConversation(db, { externalId, tenantId });
    if (!conv) {
      io.err(`no conversation ${JSON.stringify(externalId)} for tenant ${JSON.stringify(tenantId)}`);
      return 1;
    }
    const printer = new TranscriptPrinter(db, io, flags.json === true);
    await printer.pass(conv.id);
    if (!flags.follow) return 0;
    const pollMs = flags.pollMs ?? 500;
    while (!signal?.aborted) {
      await sleep(pollMs, signal);
      if (signal?.aborted) break;
      await printer.pass(conv.id);
    }
    return 0;
  } finally {
    await pool.end();
  }
}

class TranscriptPrinter {
  private readonly progress = new Map<string, TurnProgress>();

  constructor(
    private readonly db: StoreDb,
    private readonly io: CliIo,
    private readonly json: boolean,
  ) {}

  /** Prints what is new since the last pass: new turns, new events, turns that finished. */
  async pass(conversationId: string): Promise<void> {
    // Turns first, then their events: a turn read as terminal was committed together with
    // its last events, so reading events afterwards finds all of them.
    const turns = await listTurns(this.db, conversationId);
    for (const turn of turns) {
      let p = this.progress.get(turn.id);
      if (!p) {
        p = { headerPrinted: false, finished: false, attempt: 0, seq: 0 };
        this.progress.set(turn.id, p);
      }
      if (p.finished) continue;
      if (!p.headerPrinted) {
        this.emit(turnJson(turn), turnHeaderLines(turn));
        p.headerPrinted = true;
      }
      await this.printEvents(turn, p);
      if (isTerminalStatus(turn.status)) {
        this.emit(turnEndJson(turn), turnFooterLines(turn));
        p.finished = true;
      }
    }
  }

  private async printEvents(turn: TurnRow, p: TurnProgress): Promise<void> {
    for (;;) {
      const events = await storedEventsAfter(this.db, turn.id, { attempt: p.attempt, seq: p.seq }, PAGE);
      for (const event of events) {
        // Mark the start of each attempt after the first (a retry or a hand-back).
        const lines = event.attempt !== p.attempt && event.attempt > 1 ? [attemptLine(event.attempt), ...eventLines(event)] : eventLines(event);
        this.emit(eventJson(turn, event), lines);
        p.attempt = event.attempt;
        p.seq = event.seq;
      }
      if (events.length < PAGE) return;
    }
  }

  private emit(json: Record<string, unknown>, lines: string[]): void {
    if (this.json) this.io.out(JSON.stringify(json));
    else for (const line of lines) this.io.out(line);
  }
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
