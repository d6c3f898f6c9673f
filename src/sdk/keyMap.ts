// sdk_sessions: which conversation holds an SDK session key, per tenant.
import { and, eq, sql } from 'drizzle-orm';
import { ensureConversation } from '../store/conversations.js';
import type { Executor } from '../store/db.js';
import { sdkSessions } from '../store/schema.js';
import { SdkSessionBusyError } from './errors.js';
import { holderConversationId } from './keys.js';

export type SdkKeyRow = typeof sdkSessions.$inferSelect;

/**
 * The key's row. `lock` takes a row lock for the rest of the transaction: appends take
 * `share`, attach and delete `update`, so an append never writes into the conversation a
 * concurrent attach is moving the session out of (it waits, then reads the moved row).
 * Index: sdk_sessions_pk.
 */
export async function findSdkKey(
  db: Executor,
  tenantId: string,
  projectKey: string,
  sessionId: string,
  lock?: 'share' | 'update',
): Promise<SdkKeyRow | undefined> {
  const query = db
    .select()
    .from(sdkSessions)
    .where(and(eq(sdkSessions.tenantId, tenantId), eq(sdkSessions.projectKey, projectKey), eq(sdkSessions.sessionId, sessionId)));
  const rows = lock === undefined ? await query : await query.for(lock);
  return rows[0];
}

/**
 * The key's row, share-locked, created with a conversation of its own
 * (`holderConversationId`) when the SDK writes a session agentq has not seen. Two first
 * appends race safely: both create the same conversation by name, and the key's primary
 * key keeps one row.
 */
export async function ensureSdkKey(tx: Executor, tenantId: string, projectKey: string, sessionId: string): Promise<SdkKeyRow> {
  const found = await findSdkKey(tx, tenantId, projectKey, sessionId, 'share');
  if (found) return found;
  const conv = await ensureConversation(tx, { externalId: holderConversationId(projectKey, sessionId), tenantId });
  await tx
    .insert(sdkSessions)
    .values({ tenantId, projectKey, sessionId, conversationId: conv.id, createdConversation: true })
    .onConflictDoNothing();
  const row = await findSdkKey(tx, tenantId, projectKey, sessionId, 'share');
  if (!row) throw new Error(`SDK session key ${projectKey}/${sessionId} vanished while it was being created`);
  return row;
}

interface ConversationState extends Record<string, unknown> {
  external_id: string;
  busy: boolean;
  warm: boolean;
  next_seq: number;
}

/**
 * Refuses (SdkSessionBusyError) while a worker holds the conversation's lease: a write
 * now would interleave with the turn's own lines. The row stays share-locked until the
 * caller commits: a worker's claim (an UPDATE of this row) waits for the SDK write and
 * then hydrates with it; a claim that came first is seen here. Callers lock the session
 * head before this row, the order the worker's commit takes them. Index: conversations_pkey.
 */
export async function assertNoLiveLease(tx: Executor, conversationId: string): Promise<ConversationState> {
  const r = await tx.execute<ConversationState>(sql`
    select external_id, next_seq, (lease_owner is not null and lease_expires_at > now()) as busy, lease_warm as warm
      from conversations where id = ${conversationId}::uuid for share`);
  const row = r.rows[0];
  if (!row) throw new Error(`conversation ${conversationId} vanished`);
  if (row.busy) {
    // A warm conversation's CLI holds the session in memory: lines added now would be lost to it.
    throw new SdkSessionBusyError(row.external_id, row.warm ? 'a worker keeps its CLI warm for the next turn (until its idle time ends)' : 'a turn is running on it');
  }
  return row;
}

/**
 * Deletes a conversation the adapter created to hold a session once nothing is left in
 * it: no key points at it, no turn was ever enqueued on it, no session is stored in it.
 */
export async function dropEmptyHolder(tx: Executor, conversationId: string): Promise<void> {
  await tx.execute(sql`
    delete from conversations c
     where c.id = ${conversationId}::uuid and c.next_seq = 1
       and not exists (select 1 from sdk_sessions k where k.conversation_id = c.id)
       and not exists (select 1 from sessions s where s.conversation_id = c.id)`);
}
