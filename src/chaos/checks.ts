// The properties the chaos suite checks at the end, read from the private Postgres and
// from the fake CLI's own log of what each run was given.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import type pg from 'pg';
import { decodeChunk } from '../store/chunks.js';
import type { ChunkCodec } from '../store/schema.js';

/**
 * The suite's own instrumentation, installed in its private database only: every change
 * of a turn to a terminal status is recorded, so a turn committed twice shows up even if
 * the second commit wrote the same values.
 */
export const AUDIT_SQL = `
  create table chaos_commits (turn_id uuid not null, status text not null, at timestamptz not null default clock_timestamp());
  create function chaos_audit() returns trigger language plpgsql as $$
  begin
    if new.status in ('succeeded', 'failed', 'cancelled') and old.status is distinct from new.status then
      insert into chaos_commits (turn_id, status) values (new.id, new.status);
    end if;
    return new;
  end $$;
  create trigger chaos_audit after update on turns for each row execute function chaos_audit();`;

/** Every prompt the suite enqueues names its conversation and turn number. */
export const PROMPT_TAG = /chaos c(\d+) turn (\d+)/;

export interface CliRun {
  event: string;
  pid: number;
  prompt?: string;
  history?: string[];
  startedAt?: number;
  /** `gate` records: the call asked about, the answer, how the hook process ended. */
  toolUseId?: string;
  decision?: string;
  hook?: { status: number | null; signal: string | null; error?: string };
  /** `permission` records: whether the worker allowed the CLI's ask. */
  allowed?: boolean;
}

export interface Violation {
  property: string;
  turnIds: string[];
  detail: string;
}

export interface CheckResult {
  turns: number;
  terminal: number;
  succeeded: number;
  failed: number;
  lost: number;
  doubleCommitted: number;
  outOfOrder: number;
  historyGaps: number;
  sessionGaps: number;
  duplicateLines: number;
  leasesHeld: number;
  retries: number;
  longestTurnMs: number;
  violations: Violation[];
}

export function readCliLog(file: string): CliRun[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .flatMap((l) => {
      try {
        return [JSON.parse(l) as CliRun];
      } catch {
        return [];
      }
    });
}

function tagOf(text: string | undefined): { conv: number; turn: number } | undefined {
  const m = text ? PROMPT_TAG.exec(text) : null;
  return m ? { conv: Number(m[1]), turn: Number(m[2]) } : undefined;
}

interface TurnFact {
  id: string;
  conv: number;
  seq: number;
  status: string;
  attempts: number;
  latencyMs: number | null;
}

export async function checkRun(client: pg.Client, cliLog: CliRun[]): Promise<CheckResult> {
  const violations: Violation[] = [];
  const turnRows = await client.query<{ id: string; external_id: string; seq: number; status: string; attempts: number; latency_ms: number | null }>(
    `select t.id, c.external_id, t.seq, t.status, t.attempts,
            extract(epoch from (t.finished_at - t.queued_at)) * 1000 as latency_ms
       from turns t join conversations c on c.id = t.conversation_id`,
  );
  const turns: TurnFact[] = turnRows.rows.map((r) => ({
    id: r.id,
    conv: Number(/^chaos-(\d+)$/.exec(r.external_id)?.[1] ?? -1),
    seq: r.seq,
    status: r.status,
    attempts: r.attempts,
    latencyMs: r.latency_ms === null ? null : Number(r.latency_ms),
  }));
  const byKey = new Map(turns.map((t) => [`${t.conv}:${t.seq}`, t]));
  const terminal = turns.filter((t) => ['succeeded', 'failed', 'cancelled'].includes(t.status));
  const lost = turns.filter((t) => !terminal.includes(t));
  if (lost.length) violations.push({ property: 'lost', turnIds: lost.map((t) => t.id), detail: 'accepted but not terminal at the end' });

  const commits = await client.query<{ turn_id: string; n: string }>(
    'select turn_id, count(*) as n from chaos_commits group by turn_id having count(*) > 1',
  );
  if (commits.rows.length) {
    violations.push({ property: 'doubleCommitted', turnIds: commits.rows.map((r) => r.turn_id), detail: 'a terminal status was written more than once' });
  }

  // Order and history, from what each CLI run was given.
  const starts = cliLog.filter((r) => r.event === 'start').sort((a, b) => (a.startedAt ?? 0) - (b.startedAt ?? 0));
  const lastTurnSeen = new Map<number, number>();
  const outOfOrder = new Set<string>();
  const historyGaps = new Set<string>();
  for (const run of starts) {
    const tag = tagOf(run.prompt);
    if (!tag) continue;
    const id = byKey.get(`${tag.conv}:${tag.turn}`)?.id ?? `c${tag.conv}#${tag.turn}`;
    const last = lastTurnSeen.get(tag.conv) ?? 0;
    if (tag.turn < last) outOfOrder.add(id);
    lastTurnSeen.set(tag.conv, Math.max(last, tag.turn));
    const seen = new Set((run.history ?? []).map(tagOf).filter((t) => t && t.conv === tag.conv).map((t) => t!.turn));
    for (let earlier = 1; earlier < tag.turn; earlier++) {
      const t = byKey.get(`${tag.conv}:${earlier}`);
      if (t?.status === 'succeeded' && !seen.has(earlier)) historyGaps.add(id);
    }
    for (const s of seen) if (s > tag.turn) outOfOrder.add(id);
  }
  if (outOfOrder.size) violations.push({ property: 'outOfOrder', turnIds: [...outOfOrder], detail: 'a turn ran before an earlier one, or saw a later one' });
  if (historyGaps.size) violations.push({ property: 'historyGaps', turnIds: [...historyGaps], detail: 'a CLI run did not receive every earlier committed turn' });

  // Stored session lines: contiguous chunks, no line stored twice.
  const chunks = await client.query<{ conversation_id: string; session_id: string; first_line: string; line_count: number; byte_offset: string; byte_len: number }>(
    'select conversation_id, session_id, first_line, line_count, byte_offset, byte_len from session_chunks order by conversation_id, session_id, first_line',
  );
  let sessionGaps = 0;
  let key = '';
  let line = 0;
  let offset = 0;
  for (const c of chunks.rows) {
    const k = `${c.conversation_id}/${c.session_id}`;
    if (k !== key) {
      key = k;
      line = 0;
      offset = 0;
    }
    if (Number(c.first_line) !== line || Number(c.byte_offset) !== offset) sessionGaps++;
    line = Number(c.first_line) + c.line_count;
    offset = Number(c.byte_offset) + c.byte_len;
  }
  if (sessionGaps) violations.push({ property: 'sessionGaps', turnIds: [], detail: `${sessionGaps} chunks do not follow the previous one` });

  const leases = await client.query<{ external_id: string }>('select external_id from conversations where lease_owner is not null');
  if (leases.rows.length) {
    violations.push({ property: 'leasesHeld', turnIds: [], detail: `conversations still leased: ${leases.rows.map((r) => r.external_id).join(', ')}` });
  }

  return {
    turns: turns.length,
    terminal: terminal.length,
    succeeded: turns.filter((t) => t.status === 'succeeded').length,
    failed: turns.filter((t) => t.status === 'failed').length,
    lost: lost.length,
    doubleCommitted: commits.rows.length,
    outOfOrder: outOfOrder.size,
    historyGaps: historyGaps.size,
    sessionGaps,
    duplicateLines: 0,
    leasesHeld: leases.rows.length,
    retries: turns.reduce((n, t) => n + Math.max(0, t.attempts - 1), 0),
    longestTurnMs: Math.round(Math.max(0, ...turns.map((t) => t.latencyMs ?? 0))),
    violations,
  };
}

/** Session files hydrated for the check: no JSONL entry (by uuid) may appear twice. */
export function duplicateUuids(jsonl: string): number {
  const seen = new Set<string>();
  let dups = 0;
  for (const l of jsonl.split('\n')) {
    if (!l) continue;
    try {
      const uuid = (JSON.parse(l) as { uuid?: unknown }).uuid;
      if (typeof uuid !== 'string') continue;
      if (seen.has(uuid)) dups++;
      seen.add(uuid);
    } catch {
      // not JSON: the fake CLI never writes such lines
    }
  }
  return dups;
}

/**
 * Session files hydrated for the check: how often a user prompt names an earlier turn of
 * the conversation than a prompt before it. A retry may repeat its turn's prompt (the
 * continuation), but only a run of a stale attempt writes an earlier turn after a later one.
 */
export function promptsOutOfOrder(jsonl: string): number {
  let last = 0;
  let n = 0;
  for (const l of jsonl.split('\n')) {
    if (!l.includes('"user"')) continue;
    let entry: { type?: unknown; message?: { content?: unknown } };
    try {
      entry = JSON.parse(l) as typeof entry;
    } catch {
      continue;
    }
    if (entry.type !== 'user') continue;
    const m = PROMPT_TAG.exec(JSON.stringify(entry.message?.content ?? ''));
    if (!m) continue;
    const turn = Number(m[2]);
    if (turn < last) n++;
    last = Math.max(last, turn);
  }
  return n;
}

/** Live processes whose environment carries `marker` (the run's fake-CLI log path). */
export function processesWithMarker(marker: string): number[] {
  const found: number[] = [];
  const needle = Buffer.from(marker);
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      if (readFileSync(`/proc/${name}/environ`).indexOf(needle) !== -1) found.push(Number(name));
    } catch {
      // gone
    }
  }
  return found;
}

/**
 * The hostile case: what is stored for each hostile conversation (session and subagent
 * lines, sidecars, session folders, workspace) must hold nothing of another conversation
 * (no other `chaos c<n> turn` tag) and nothing of `hostFiles` (lines of root-only files).
 * Returns one violation per conversation that holds any.
 */
export async function foreignData(client: pg.Client, hostile: readonly number[], hostFiles: readonly string[]): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const conv of hostile) {
    const id = (await client.query<{ id: string }>('select id from conversations where external_id = $1', [`chaos-${conv}`])).rows[0]?.id;
    if (!id) continue;
    const texts: string[] = [];
    const chunks = await client.query<{ codec: ChunkCodec; data: Buffer }>('select codec, data from session_chunks where conversation_id = $1', [id]);
    for (const c of chunks.rows) texts.push((await decodeChunk(c.data, c.codec)).toString('latin1'));
    const sidecars = await client.query<{ content: string }>('select content from session_sidecars where conversation_id = $1', [id]);
    texts.push(...sidecars.rows.map((r) => r.content));
    for (const table of ['session_folders', 'workspaces']) {
      const archives = await client.query<{ archive: Buffer }>(`select archive from ${table} where conversation_id = $1`, [id]);
      texts.push(...archives.rows.filter((r) => r.archive.length > 0).map((r) => gunzipSync(r.archive).toString('latin1')));
    }
    const all = texts.join('\n');
    const others = [...all.matchAll(new RegExp(PROMPT_TAG.source, 'g'))].map((m) => Number(m[1])).filter((n) => n !== conv);
    const host = hostFiles.filter((line) => line !== '' && all.includes(line));
    if (others.length || host.length) {
      violations.push({
        property: 'foreignData',
        turnIds: [],
        detail: `chaos-${conv} stored data of ${[...new Set(others)].map((n) => `chaos-${n}`).concat(host.length ? ['host files'] : []).join(', ')}`,
      });
    }
  }
  return violations;
}

/** What happened to the gated calls (docs/approvals.md): the approvals by status, and the calls that ran. */
export interface GatedCallFacts {
  approvals: Record<string, number>;
  ran: number;
  violations: Violation[];
}

/**
 * Every gated call that ran (a line with its tool_use_id in `gatedLog`) ran once, and only
 * after a person allowed it; no approval is left pending at the end. A call that ran
 * without an allow is reported with what the fake CLI recorded of its gate (the answer,
 * and how the hook process ended), since CI keeps only what the suite prints.
 */
export async function checkGatedCalls(client: pg.Client, gatedLog: string, cliLog: readonly CliRun[] = []): Promise<GatedCallFacts> {
  const rows = await client.query<{ tool_use_id: string; status: string; turn_id: string }>('select tool_use_id, status, turn_id from approvals');
  const approvals: Record<string, number> = {};
  for (const r of rows.rows) approvals[r.status] = (approvals[r.status] ?? 0) + 1;
  const ran = existsSync(gatedLog) ? readFileSync(gatedLog, 'utf8').split('\n').filter(Boolean) : [];
  const violations: Violation[] = [];
  const byId = new Map(rows.rows.map((r) => [r.tool_use_id, r]));
  const counts = new Map<string, number>();
  for (const id of ran) counts.set(id, (counts.get(id) ?? 0) + 1);
  const twice = [...counts].filter(([, n]) => n > 1).map(([id]) => id);
  if (twice.length) violations.push({ property: 'gatedRanTwice', turnIds: twice.map((id) => byId.get(id)?.turn_id ?? id), detail: `gated calls that ran more than once: ${twice.join(', ')}` });
  const unallowed = [...counts.keys()].filter((id) => byId.get(id)?.status !== 'allowed');
  const gateRecords = (id: string) =>
    cliLog.filter((r) => r.event === 'gate' && r.toolUseId === id).map((r) => `${r.decision} ${JSON.stringify(r.hook ?? 'no hook')} (pid ${r.pid})`);
  const described = unallowed.map((id) => `${id} [gate: ${gateRecords(id).join('; ') || 'no record'}; approval: ${byId.get(id)?.status ?? 'none'}]`);
  if (unallowed.length) violations.push({ property: 'gatedRanUnallowed', turnIds: unallowed.map((id) => byId.get(id)?.turn_id ?? id), detail: `gated calls that ran without an allow: ${described.join(', ')}` });
  const pending = rows.rows.filter((r) => r.status === 'pending');
  if (pending.length) violations.push({ property: 'approvalsPending', turnIds: pending.map((r) => r.turn_id), detail: `${pending.length} approvals still pending at the end` });
  return { approvals, ran: ran.length, violations };
}
