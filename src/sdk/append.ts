// SessionStore.append: a batch of SDK transcript entries onto the stored session, in one
// transaction, committed at once (the worker hydrates committed lines only).
import { sql } from 'drizzle-orm';
import type { StoreDb } from '../store/db.js';
import { commitSessionLines, lockOrCreateSessionHead } from '../store/sessions.js';
import { putSidecar } from '../store/sidecars.js';
import { appendLines, LineBatch, prepareLines, SDK_CHUNK_BYTES } from './appendLines.js';
import { serializeEntries } from './entries.js';
import { SdkSessionBusyError } from './errors.js';
import { assertNoLiveLease, ensureSdkKey } from './keyMap.js';
import { parseSdkKey } from './keys.js';
import { appendAtKnownHead } from './fastAppend.js';
import type { KnownHead, KnownHeads } from './knownHeads.js';
import { catchUpUuidIndex, insertUuids, knownUuids, setScanned } from './uuidIndex.js';

/** The `attempt` tag of chunks the adapter writes (the worker tags its own with the attempt number). */
export const SDK_ATTEMPT = 'sdk';

export interface AppendScope {
  tenantId: string;
  maxLineBytes: number;
  /** Where this adapter left the sessions it appended to (./knownHeads.ts). */
  heads?: KnownHeads;
}

export interface AppendResult {
  /** Entries stored; the rest of the batch repeated uuids already stored. */
  appended: number;
  skipped: number;
}

/**
 * Appends entries in the order given, skipping each entry whose `uuid` the transcript
 * already holds (or that appeared earlier in the batch); entries without a uuid are always
 * appended. An empty batch stores nothing (the key stays unknown if it was). Bad input
 * (StoreInputError naming the field, SessionLineTooLongError) stores nothing.
 *
 * A subagent transcript's `agent_metadata` entries are the SDK's form of the CLI's
 * `agent-<id>.meta.json` (it writes the last one as that file, without `type`): the last
 * one is stored as the transcript's sidecar, as a worker stores that file, and not as a
 * line. A worker then writes it next to the transcript for the CLI, and `load` gives it
 * back as the last entry.
 *
 * Concurrent appends to one transcript queue on its session head's row lock; each then
 * sees the uuids the previous one stored. Refused with SdkSessionBusyError while a worker
 * runs a turn of the conversation, or an interrupted attempt's checkpoints wait for their
 * retry: the lines would interleave with the turn's.
 */
export async function appendSdkEntries(db: StoreDb, scope: AppendScope, key: unknown, entries: unknown): Promise<AppendResult> {
  const k = parseSdkKey(key);
  const isMetadata = (i: number) => k.subpath !== undefined && (entries as { type: string }[])[i]!.type === 'agent_metadata';
  // Compressed on the thread pool while the rest is serialized; redone for the fresh
  // entries only when the store already holds some of the batch (a retried append).
  const lines = new LineBatch(SDK_CHUNK_BYTES, scope.maxLineBytes);
  const serialized = serializeEntries(entries, k.fileId, scope.maxLineBytes, (line, i) => (isMetadata(i) ? undefined : lines.add(line)));
  const batch = serialized.filter((_, i) => !isMetadata(i));
  const lastMetadata = serialized.findLastIndex((_, i) => isMetadata(i));
  const sidecar = lastMetadata === -1 ? undefined : sidecarContent((entries as Record<string, unknown>[])[lastMetadata]!);
  const metadataCount = serialized.length - batch.length;
  if (serialized.length === 0) return { appended: 0, skipped: 0 };
  const prepared = batch.length > 0 ? lines.finish() : undefined;
  const heads = scope.heads;
  const known = heads?.get(scope.tenantId, k.projectKey, k.fileId);
  const uuids = batch.flatMap((e) => (e.uuid === undefined ? [] : [e.uuid]));
  if (known && prepared && new Set(uuids).size === uuids.length) {
    const fast = await appendAtKnownHead(db, { tenantId: scope.tenantId, key: k, head: known, lines: prepared, uuids, sidecar });
    if (fast.appended) {
      heads!.set(scope.tenantId, k.projectKey, k.fileId, fast.head);
      return { appended: serialized.length, skipped: 0 };
    }
  }
  let ended: Omit<KnownHead, 'tailSha256'> | undefined;
  const result = await db.transaction(async (tx) => {
    const mapping = await ensureSdkKey(tx, scope.tenantId, k.projectKey, k.sessionId);
    const conversationId = mapping.conversationId;
    const head = await lockOrCreateSessionHead(tx, conversationId, k.fileId, null);
    const conv = await assertNoLiveLease(tx, conversationId);
    if (head.lineCount !== head.committedLineCount) {
      throw new SdkSessionBusyError(conv.external_id, `an interrupted turn left ${head.lineCount - head.committedLineCount} uncommitted lines in session ${k.fileId}`);
    }
    await catchUpUuidIndex(tx, conversationId, k.fileId, head.lineCount);
    const stored = await knownUuids(tx, conversationId, k.fileId, uuids);
    const fresh = batch.filter((e) => {
      if (e.uuid === undefined) return true;
      if (stored.has(e.uuid)) return false;
      stored.add(e.uuid);
      return true;
    });
    if (fresh.length > 0) {
      const knownTail = known?.conversationId === conversationId ? known.tail : undefined;
      // Some were stored already (a retried batch): the fresh ones are serialized again, and checked again.
      const freshLines = () => prepareLines(serializeEntries(fresh.map((e) => (entries as unknown[])[e.index]), k.fileId, scope.maxLineBytes));
      const after = await appendLines(tx, head, fresh.length === batch.length ? prepared! : freshLines(), SDK_ATTEMPT, knownTail);
      ended = { conversationId, lineCount: after.lineCount, byteCount: after.byteCount, tail: after.tail };
      await commitSessionLines(tx, { conversationId, sessionId: k.fileId, attempt: SDK_ATTEMPT, pointConversation: false });
      await insertUuids(tx, conversationId, k.fileId, fresh.flatMap((e) => (e.uuid === undefined ? [] : [e.uuid])));
      await setScanned(tx, conversationId, k.fileId, after.lineCount);
    }
    if (sidecar !== undefined) await putSidecar(tx, conversationId, k.fileId, sidecar);
    if (k.subpath === undefined) {
      // A conversation with no session yet resumes this one in its next turn. One that
      // already has a session keeps it: the SDK may be continuing an older one.
      await tx.execute(sql`
        update conversations set session_id = ${k.sessionId}, updated_at = now()
         where id = ${conversationId}::uuid and session_id is null`);
    }
    return { appended: fresh.length + metadataCount, skipped: batch.length - fresh.length };
  });
  if (ended) heads?.set(scope.tenantId, k.projectKey, k.fileId, ended);
  return result;
}

/** An `agent_metadata` entry as the `.meta.json` the CLI reads: the entry without its `type`. */
function sidecarContent(entry: Record<string, unknown>): string {
  const { type: _type, ...meta } = entry;
  return JSON.stringify(meta);
}
