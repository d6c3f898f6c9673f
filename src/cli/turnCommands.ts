// `agentq enqueue`, `show` and `cancel`: the producer side of the turn protocol.
import { readFile } from 'node:fs/promises';
import type { Config } from '../config.js';
import { TurnInputError } from '../errors.js';
import { createClient } from '../queue/client.js';
import { denialsNote, type PermissionDenials } from '../queue/denials.js';
import type { CliIo } from './main.js';

export interface EnqueueFlags {
  wait?: boolean;
  json?: boolean;
  timeoutMs?: string;
  tenant?: string;
  idempotencyKey?: string;
  priority?: string;
  delayMs?: string;
  options?: string;
  promptFile?: string;
}

/** Reads all of process.stdin as UTF-8, up to `maxBytes`. */
async function readProcessStdin(maxBytes: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > maxBytes) throw new TurnInputError(`prompt: standard input is over ${maxBytes} bytes`, ['prompt']);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size).toString('utf8');
}

/**
 * The prompt: the argument, `-` for standard input, or `--prompt-file` (a prompt too long
 * for an argument, ~128 KiB on Linux). Exactly one of them. Read up to the prompt cap (in
 * UTF-8 bytes, four per character at most); enqueueing then checks the cap itself.
 */
async function promptFrom(config: Config, io: CliIo, arg: string | undefined, file: string | undefined): Promise<string> {
  if (arg !== undefined && file !== undefined) {
    throw new TurnInputError('prompt: give it as an argument, `-` (standard input) or --prompt-file, not both', ['prompt']);
  }
  if (file !== undefined) {
    try {
      return await readFile(file, 'utf8');
    } catch (err) {
      throw new TurnInputError(`--prompt-file: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, ['prompt']);
    }
  }
  if (arg === '-') return (io.readStdin ?? readProcessStdin)(config.worker.maxPromptChars * 4 + 1);
  if (arg === undefined) throw new TurnInputError('prompt: missing; give it as an argument, `-` to read standard input, or --prompt-file <file>', ['prompt']);
  return arg;
}

function intFlag(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value)) throw new Error(`--${name} must be a whole number (got ${JSON.stringify(value)})`);
  return Number(value);
}

function jsonFlag(name: string, value: string | undefined): unknown {
  if (value === undefined) return undefined;
  try {
    return JSON.parse(value) as unknown;
  } catch {
    throw new Error(`--${name} must be JSON (got ${JSON.stringify(value)})`);
  }
}

/** A turn's status as printed: a success whose every tool call was refused says so. */
function statusText(status: string, denials: PermissionDenials | null): string {
  return denials?.everyToolCall ? `${status}, but every tool call was refused` : status;
}

/** Exit codes of `agentq enqueue --wait`. */
export const ENQUEUE_EXIT = {
  succeeded: 0,
  /** Failed, cancelled, or the wait timed out. */
  notSucceeded: 1,
  /** The turn stopped at a gated tool call and waits for a decision (docs/approvals.md). */
  awaitingApproval: 3,
} as const;

export async function enqueueCommand(config: Config, io: CliIo, conversationId: string, promptArg: string | undefined, flags: EnqueueFlags): Promise<number> {
  const prompt = await promptFrom(config, io, promptArg, flags.promptFile);
  const client = createClient(config);
  try {
    const turn = await client.enqueueTurn({
      conversationId,
      prompt,
      source: 'cli',
      ...(flags.tenant !== undefined ? { tenantId: flags.tenant } : {}),
      ...(flags.idempotencyKey !== undefined ? { idempotencyKey: flags.idempotencyKey } : {}),
      ...(flags.priority !== undefined ? { priority: intFlag('priority', flags.priority) } : {}),
      ...(flags.delayMs !== undefined ? { delayMs: intFlag('delay-ms', flags.delayMs) } : {}),
      ...(flags.options !== undefined ? { options: jsonFlag('options', flags.options) as Record<string, unknown> } : {}),
    });
    if (!flags.wait) {
      io.out(flags.json ? JSON.stringify({ turnId: turn.turnId, conversationId, seq: turn.seq, created: turn.created }) : turn.turnId);
      return 0;
    }
    const done = await client.waitForTurn(turn.turnId, intFlag('timeout-ms', flags.timeoutMs) ?? 10 * 60 * 1000, { untilApproval: true });
    if (done.status === 'awaiting_approval') {
      // Stopped at a gated tool call: a person decides (agentq approve / deny), then the turn runs on.
      if (flags.json) io.out(JSON.stringify({ turnId: turn.turnId, conversationId, status: done.status, approvalId: done.approvalId }));
      else io.out(`${turn.turnId} awaiting_approval (approval ${done.approvalId}: agentq approve ${done.approvalId}, or agentq deny ${done.approvalId})`);
      return ENQUEUE_EXIT.awaitingApproval;
    }
    const report = {
      turnId: turn.turnId,
      conversationId,
      status: done.status,
      sessionId: done.sessionIdAfter,
      result: done.result,
      costUsd: done.costUsd,
      error: done.error ?? null,
      permissionDenials: done.permissionDenials,
    };
    if (flags.json) io.out(JSON.stringify(report));
    else {
      io.out(`${report.turnId} ${statusText(report.status, report.permissionDenials)}${report.sessionId ? ` (session ${report.sessionId})` : ''}`);
      if (report.result) io.out(report.result);
      if (report.permissionDenials) io.err(`warning: ${denialsNote(report.permissionDenials)}`);
      if (report.error) io.err(JSON.stringify(report.error));
    }
    return done.status === 'succeeded' ? ENQUEUE_EXIT.succeeded : ENQUEUE_EXIT.notSucceeded;
  } finally {
    await client.close();
  }
}

export async function showCommand(config: Config, io: CliIo, conversationId: string, flags: { json?: boolean; tenant?: string }): Promise<number> {
  const client = createClient(config);
  try {
    const view = await client.getConversation(conversationId, flags.tenant);
    if (!view) {
      io.err(`no conversation ${JSON.stringify(conversationId)}${flags.tenant ? ` for tenant ${flags.tenant}` : ''}`);
      return 1;
    }
    const out = {
      conversationId: view.conversationId,
      tenantId: view.tenantId,
      sessionId: view.sessionId,
      turns: view.turns.map((t) => ({
        turnId: t.turnId,
        seq: t.seq,
        status: t.status,
        attempts: t.attempts,
        sessionIdBefore: t.sessionIdBefore,
        sessionIdAfter: t.sessionIdAfter,
        startedAt: t.startedAt,
        finishedAt: t.finishedAt,
        costUsd: t.costUsd,
        error: t.error ?? null,
        toolCalls: t.toolCalls,
        permissionDenials: t.permissionDenials,
        cliVersions: t.cliVersions,
      })),
    };
    if (flags.json) io.out(JSON.stringify(out));
    else {
      io.out(`${out.tenantId}/${out.conversationId} session ${out.sessionId ?? '(none yet)'}`);
      for (const t of out.turns) {
        io.out(`  #${t.seq} ${t.turnId} ${statusText(t.status, t.permissionDenials)} attempts=${t.attempts}${t.costUsd !== null ? ` $${t.costUsd}` : ''}${t.error ? ` ${JSON.stringify(t.error)}` : ''}`);
        if (t.permissionDenials) io.out(`     ${denialsNote(t.permissionDenials)}`);
        if (t.cliVersions) io.out(`     CLI ${cliVersionsText(t.cliVersions)}`);
      }
    }
    return 0;
  } finally {
    await client.close();
  }
}

export async function cancelCommand(config: Config, io: CliIo, turnId: string): Promise<number> {
  const client = createClient(config);
  try {
    if (!/^[0-9a-f-]{36}$/i.test(turnId)) {
      io.err(`turn must be a turn id (a UUID), got ${JSON.stringify(turnId)}`);
      return 2;
    }
    const r = await client.cancelTurn(turnId);
    io.out(r);
    return r === 'not_found' ? 1 : 0;
  } finally {
    await client.close();
  }
}

/** `2.1.332` when every attempt ran one version, else `2.1.197 (attempt 1), 2.1.332 (attempt 2)`. */
export function cliVersionsText(versions: Record<string, string>): string {
  const entries = Object.entries(versions).sort(([a], [b]) => Number(a) - Number(b));
  const distinct = new Set(entries.map(([, v]) => v));
  if (distinct.size === 1) return [...distinct][0]!;
  return entries.map(([attempt, v]) => `${v} (attempt ${attempt})`).join(', ');
}
