// SessionStore.listSessions, delete and listSubkeys.
import { and, eq, sql } from 'drizzle-orm';
import { StoreInputError } from '../errors.js';
import type { StoreDb } from '../store/db.js';
import { sdkSessions } from '../store/schema.js';
import { assertNoLiveLease, dropEmptyHolder, findSdkKey } from './keyMap.js';
import { parseProjectKey, parseSdkKey, subpathPrefix } from './keys.js';
import { parseSessionId } from '../store/ids.js';

export interface SdkSessionListing {
  sessionId: string;
  /** When the main transcript was last written (by the SDK or a worker), Unix epoch ms. */
  mtime: number;
}

/**
 * The sessions of a project key that have a main transcript, with the time their
 * session head last moved. Index: sdk_sessions_pk prefix, sessions_pk.
 */
export async function listSdkSessions(db: StoreDb, tenantId: string, projectKey: unknown): Promise<SdkSessionListing[]> {
  const p = parseProjectKey(projectKey, 'projectKey');
  const r = await db.execute<{ session_id: string; mtime: string }>(sql`
    select k.session_id, floor(extract(epoch from s.updated_at) * 1000)::bigint as mtime
      from sdk_sessions k
      join sessions s on s.conversation_id = k.conversation_id and s.session_id = k.session_id
     where k.tenant_id = ${tenantId} and k.project_key = ${p} and s.committed_line_count > 0`);
  return r.rows.map((row) => ({ sessionId: row.session_id, mtime: Number(row.mtime) }));
}

/**
 * The subpaths stored under a session (its subagent transcripts), unordered.
 * Index: sdk_sessions_pk, sessions_pk prefix (the conversation's sessions).
 */
export async function listSdkSubkeys(db: StoreDb, tenantId: string, key: unknown): Promise<string[]> {
  if (typeof key !== 'object' || key === null) throw new StoreInputError('key', 'must be an object { projectKey, sessionId }');
  const k = key as Record<string, unknown>;
  const projectKey = parseProjectKey(k.projectKey);
  const sessionId = parseSessionId(k.sessionId, 'key.sessionId');
  const mapping = await findSdkKey(db, tenantId, projectKey, sessionId);
  if (!mapping) return [];
  const prefix = subpathPrefix(sessionId);
  const r = await db.execute<{ session_id: string }>(sql`
    select session_id from sessions
     where conversation_id = ${mapping.conversationId}::uuid
       and left(session_id, ${prefix.length}::int) = ${prefix} and committed_line_count > 0`);
  return r.rows.map((row) => row.session_id.slice(prefix.length));
}

/**
 * Deletes a transcript. The main key deletes the session, its subagent transcripts and the
 * key; a subpath deletes that transcript only. Deleting what does not exist is a no-op.
 * A conversation the adapter created for the session goes too once it is empty; a
 * conversation the session was attached to keeps its turns (its next turn then meets
 * AGENTQ_MISSING_SESSION_POLICY if this was its current session).
 */
export async function deleteSdkSession(db: StoreDb, tenantId: string, key: unknown): Promise<void> {
  const k = parseSdkKey(key);
  await db.transaction(async (tx) => {
    const mapping = await findSdkKey(tx, tenantId, k.projectKey, k.sessionId, 'update');
    if (!mapping) return;
    const conversationId = mapping.conversationId;
    await assertNoLiveLease(tx, conversationId);
    if (k.subpath !== undefined) {
      await tx.execute(sql`delete from sessions where conversation_id = ${conversationId}::uuid and session_id = ${k.fileId}`);
      return;
    }
    const prefix = subpathPrefix(k.sessionId);
    // Chunks and uuid index rows cascade from their session rows.
    await tx.execute(sql`
      delete from sessions where conversation_id = ${conversationId}::uuid
         and (session_id = ${k.sessionId} or left(session_id, ${prefix.length}::int) = ${prefix})`);
    await tx
      .delete(sdkSessions)
      .where(and(eq(sdkSessions.tenantId, tenantId), eq(sdkSessions.projectKey, k.projectKey), eq(sdkSessions.sessionId, k.sessionId)));
    if (mapping.createdConversation) await dropEmptyHolder(tx, conversationId);
  });
}
