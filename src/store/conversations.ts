// Conversation rows: created on first use, deleted with everything they own.
import { and, eq } from 'drizzle-orm';
import type { Executor } from './db.js';
import { parseConversationId, parseTenantId } from './ids.js';
import { conversations } from './schema.js';

export type ConversationRow = typeof conversations.$inferSelect;

/**
 * The conversation for (tenant, external id), created if missing. Validates both ids
 * (StoreInputError naming the field). Index: conversations_tenant_external_uq.
 */
export async function ensureConversation(
  db: Executor,
  input: { externalId: string; tenantId?: string },
): Promise<ConversationRow> {
  const externalId = parseConversationId(input.externalId, 'externalId');
  const tenantId = parseTenantId(input.tenantId ?? 'default');
  const inserted = await db.insert(conversations).values({ tenantId, externalId }).onConflictDoNothing().returning();
  if (inserted[0]) return inserted[0];
  const found = await findConversation(db, { externalId, tenantId });
  if (!found) throw new Error(`conversation ${tenantId}/${externalId} vanished while it was being created`);
  return found;
}

/** Index: conversations_tenant_external_uq. */
export async function findConversation(
  db: Executor,
  input: { externalId: string; tenantId?: string },
): Promise<ConversationRow | undefined> {
  const externalId = parseConversationId(input.externalId, 'externalId');
  const tenantId = parseTenantId(input.tenantId ?? 'default');
  const rows = await db
    .select()
    .from(conversations)
    .where(and(eq(conversations.tenantId, tenantId), eq(conversations.externalId, externalId)));
  return rows[0];
}

/**
 * Deletes a conversation and everything it owns (turns and their events, sessions and
 * their chunks, the workspace archive) in one statement, hence one transaction: the
 * foreign keys cascade, each through the index that leads with its column.
 * Returns whether it existed.
 */
export async function deleteConversation(db: Executor, conversationId: string): Promise<boolean> {
  const rows = await db.delete(conversations).where(eq(conversations.id, conversationId)).returning({ id: conversations.id });
  return rows.length > 0;
}
