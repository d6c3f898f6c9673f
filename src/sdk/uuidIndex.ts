// The uuids a stored session file holds (session_entry_uuids), so a repeated entry is
// stored once. Lines the SDK appends are recorded as they are stored; lines stored by
// anyone else (the worker's CLI turns) are read once, on the next SDK append, from where
// session_uuid_scans says the index ends: O(new lines), never the whole session again.
import { sql } from 'drizzle-orm';
import type { Executor } from '../store/db.js';
import { lineUuid } from './entries.js';
import { readChunks } from './storedChunks.js';

interface ScanRow extends Record<string, unknown> {
  scanned_line_count: string;
}

/** Brings the index of a locked session head up to `lineCount` lines. */
export async function catchUpUuidIndex(tx: Executor, conversationId: string, fileId: string, lineCount: number): Promise<void> {
  const r = await tx.execute<ScanRow>(sql`
    select scanned_line_count from session_uuid_scans
     where conversation_id = ${conversationId}::uuid and session_id = ${fileId}`);
  let scanned = r.rows[0] ? Number(r.rows[0].scanned_line_count) : 0;
  if (scanned === lineCount) return;
  if (scanned > lineCount) {
    // The head moved back (discarded checkpoints): rebuild from the start.
    await tx.execute(sql`delete from session_entry_uuids where conversation_id = ${conversationId}::uuid and session_id = ${fileId}`);
    scanned = 0;
  }
  for await (const chunk of readChunks(tx, conversationId, fileId, scanned, lineCount)) {
    const uuids: string[] = [];
    let start = 0;
    for (let nl = chunk.raw.indexOf(0x0a); nl !== -1; nl = chunk.raw.indexOf(0x0a, start)) {
      const uuid = lineUuid(chunk.raw.toString('utf8', start, nl));
      if (uuid !== undefined) uuids.push(uuid);
      start = nl + 1;
    }
    await insertUuids(tx, conversationId, fileId, uuids);
  }
  await setScanned(tx, conversationId, fileId, lineCount);
}

/** Of `uuids`, those the file already holds. Index: session_entry_uuids_pk. */
export async function knownUuids(tx: Executor, conversationId: string, fileId: string, uuids: string[]): Promise<Set<string>> {
  if (uuids.length === 0) return new Set();
  const r = await tx.execute<{ uuid: string }>(sql`
    select uuid from session_entry_uuids
     where conversation_id = ${conversationId}::uuid and session_id = ${fileId}
       and uuid = any(${sql.param(uuids)}::text[])`);
  return new Set(r.rows.map((row) => row.uuid));
}

export async function insertUuids(tx: Executor, conversationId: string, fileId: string, uuids: string[]): Promise<void> {
  if (uuids.length === 0) return;
  await tx.execute(sql`
    insert into session_entry_uuids (conversation_id, session_id, uuid)
    select ${conversationId}::uuid, ${fileId}, u from unnest(${sql.param(uuids)}::text[]) as u
    on conflict do nothing`);
}

export async function setScanned(tx: Executor, conversationId: string, fileId: string, lineCount: number): Promise<void> {
  await tx.execute(sql`
    insert into session_uuid_scans (conversation_id, session_id, scanned_line_count)
    values (${conversationId}::uuid, ${fileId}, ${lineCount}::bigint)
    on conflict (conversation_id, session_id) do update set scanned_line_count = excluded.scanned_line_count`);
}
