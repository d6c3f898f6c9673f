// SDK sessions <-> agentq conversations.
//
// attachSdkSession: an SDK session (stored through the adapter) becomes a conversation's
// current session, so the next enqueueTurn resumes it. Its rows move into that
// conversation (one copy of the data, never two), its keys follow it, and the
// conversation the adapter had created to hold it is removed.
//
// sdkResumeTarget: the other way: a conversation's current session, opened from an SDK
// app. It registers the app's project key for that session, so the adapter's load finds
// the conversation's lines (the worker's turns included) and its appends continue them.
import { realpathSync } from 'node:fs';
import { sql } from 'drizzle-orm';
import { encodeCwd } from '../claude/sessionPath.js';
import { StoreInputError } from '../errors.js';
import { ensureConversation, findConversation } from '../store/conversations.js';
import type { Executor, StoreDb } from '../store/db.js';
import { parseConversationId, parseSessionId, parseTenantId } from '../store/ids.js';
import { sdkSessions } from '../store/schema.js';
import { SdkAttachConflictError, SdkSessionNotFoundError } from './errors.js';
import { assertNoLiveLease, dropEmptyHolder, findSdkKey, type SdkKeyRow } from './keyMap.js';
import { parseProjectKey, subpathPrefix } from './keys.js';

export interface AttachSdkSessionInput {
  /** The producer's conversation id (created if missing), e.g. `ticket-4812`. */
  conversationId: string;
  /** The SDK session id (the `session_id` of its messages). */
  sessionId: string;
  /** Default `default`. */
  tenantId?: string;
  /** Only needed when the session id is stored under more than one project key. */
  projectKey?: string;
}

export interface AttachSdkSessionResult {
  conversationId: string;
  tenantId: string;
  sessionId: string;
  /** The project keys the SDK knows the session by. */
  projectKeys: string[];
  /** Lines of the main transcript now in the conversation. */
  lines: number;
  /** False when the session already belonged to the conversation. */
  moved: boolean;
}

/** Index: sdk_sessions_tenant_session_idx. */
async function keysOfSession(tx: Executor, tenantId: string, sessionId: string): Promise<SdkKeyRow[]> {
  const r = await tx.execute<Record<string, unknown>>(sql`
    select tenant_id, project_key, session_id, conversation_id, created_conversation, created_at
      from sdk_sessions where tenant_id = ${tenantId} and session_id = ${sessionId}
     order by project_key for update`);
  return r.rows.map((row) => ({
    tenantId: row.tenant_id as string,
    projectKey: row.project_key as string,
    sessionId: row.session_id as string,
    conversationId: row.conversation_id as string,
    createdConversation: row.created_conversation as boolean,
    createdAt: new Date(row.created_at as string),
  }));
}

/**
 * Makes the SDK session `sessionId` the current session of `conversationId`. Refused with
 * SdkSessionBusyError while either conversation runs a turn, SdkAttachConflictError when
 * the session belongs to another conversation that has turns of its own (or the id is
 * ambiguous without `projectKey`), SdkSessionNotFoundError when the adapter never stored it.
 */
export async function attachSdkSession(db: StoreDb, input: AttachSdkSessionInput): Promise<AttachSdkSessionResult> {
  const externalId = parseConversationId(input.conversationId);
  const tenantId = parseTenantId(input.tenantId ?? 'default');
  const sessionId = parseSessionId(input.sessionId);
  const projectKey = input.projectKey === undefined ? undefined : parseProjectKey(input.projectKey, 'projectKey');
  return db.transaction(async (tx) => {
    const all = await keysOfSession(tx, tenantId, sessionId);
    const keys = projectKey === undefined ? all : all.filter((k) => k.projectKey === projectKey);
    if (keys.length === 0) {
      throw new SdkSessionNotFoundError(
        `no SDK session ${sessionId}${projectKey === undefined ? '' : ` under project key ${JSON.stringify(projectKey)}`} for tenant ${JSON.stringify(tenantId)}: run an SDK query with agentq's sessionStore first`,
      );
    }
    const sources = [...new Set(keys.map((k) => k.conversationId))];
    if (sources.length > 1) {
      throw new SdkAttachConflictError(
        `session ${sessionId} is stored under several project keys (${keys.map((k) => JSON.stringify(k.projectKey)).join(', ')}); name one with projectKey (--project-key)`,
      );
    }
    const source = sources[0]!;
    const target = await ensureConversation(tx, { externalId, tenantId });
    // Lock the target's row: a worker's claim of it waits until the attach commits.
    await tx.execute(sql`select 1 from conversations where id = ${target.id}::uuid for update`);
    await assertNoLiveLease(tx, target.id);
    const prefix = subpathPrefix(sessionId);
    const projectKeys = all.filter((k) => k.conversationId === source).map((k) => k.projectKey);

    if (source === target.id) {
      await tx.execute(sql`update conversations set session_id = ${sessionId}, updated_at = now() where id = ${target.id}::uuid`);
      const head = await tx.execute<{ n: string }>(sql`
        select committed_line_count as n from sessions where conversation_id = ${target.id}::uuid and session_id = ${sessionId}`);
      return { conversationId: externalId, tenantId, sessionId, projectKeys, lines: Number(head.rows[0]?.n ?? 0), moved: false };
    }

    const from = await assertNoLiveLease(tx, source);
    if (from.next_seq > 1) {
      throw new SdkAttachConflictError(
        `session ${sessionId} belongs to conversation ${JSON.stringify(from.external_id)}, which has turns of its own; enqueue on that conversation, or open it from the SDK with sdkResumeTarget`,
      );
    }
    const files = await tx.execute<{ session_id: string; line_count: string; committed_line_count: string }>(sql`
      select session_id, line_count, committed_line_count from sessions
       where conversation_id = ${source}::uuid and (session_id = ${sessionId} or left(session_id, ${prefix.length}::int) = ${prefix})
       for update`);
    const main = files.rows.find((f) => f.session_id === sessionId);
    if (!main) throw new SdkSessionNotFoundError(`SDK session ${sessionId} has no main transcript stored yet; attach it after its first query`);
    const clash = await tx.execute(sql`
      select 1 from sessions where conversation_id = ${target.id}::uuid
         and (session_id = ${sessionId} or left(session_id, ${prefix.length}::int) = ${prefix}) limit 1`);
    if (clash.rows.length > 0) throw new SdkAttachConflictError(`conversation ${JSON.stringify(externalId)} already stores a session ${sessionId}`);

    // Move, do not copy: new head rows, then the rows that reference them, then the old heads.
    const ids = sql.param(files.rows.map((f) => f.session_id));
    await tx.execute(sql`
      insert into sessions (conversation_id, session_id, line_count, byte_count, committed_line_count, committed_byte_count,
                            tail_sha256, committed_tail_sha256, forked_from, created_at, updated_at)
      select ${target.id}::uuid, session_id, line_count, byte_count, committed_line_count, committed_byte_count,
             tail_sha256, committed_tail_sha256, forked_from, created_at, now()
        from sessions where conversation_id = ${source}::uuid and session_id = any(${ids}::text[])`);
    for (const table of ['session_chunks', 'session_entry_uuids', 'session_uuid_scans', 'session_sidecars', 'session_folders'] as const) {
      await tx.execute(sql`
        update ${sql.identifier(table)} set conversation_id = ${target.id}::uuid
         where conversation_id = ${source}::uuid and session_id = any(${ids}::text[])`);
    }
    await tx.execute(sql`delete from sessions where conversation_id = ${source}::uuid and session_id = any(${ids}::text[])`);
    await tx.execute(sql`
      update sdk_sessions set conversation_id = ${target.id}::uuid, created_conversation = false
       where tenant_id = ${tenantId} and session_id = ${sessionId} and conversation_id = ${source}::uuid`);
    await tx.execute(sql`update conversations set session_id = ${sessionId}, updated_at = now() where id = ${target.id}::uuid`);
    if (keys.some((k) => k.createdConversation)) await dropEmptyHolder(tx, source);
    return { conversationId: externalId, tenantId, sessionId, projectKeys, lines: Number(main.committed_line_count), moved: true };
  });
}

export interface SdkResumeTargetInput {
  conversationId: string;
  tenantId?: string;
  /** The SDK app's `cwd` option: the project key is computed from it as the SDK does. */
  cwd?: string;
  /** Or the project key itself (an app that sets its own). */
  projectKey?: string;
}

export interface SdkResumeTarget {
  /** Pass as `options.resume` to the SDK's query(), with agentq's sessionStore. */
  sessionId: string;
  projectKey: string;
}

/**
 * The SDK project key of a working directory: the real path with every character outside
 * [A-Za-z0-9] replaced by `-`, cut at 200 with a hash suffix, as the SDK computes it
 * (the CLI's own rule for its project folders, src/claude/sessionPath.ts). An app that
 * sets CLAUDE_CODE_PROJECT_DIR_NAME passes its project key instead.
 */
export function sdkProjectKey(cwd: string): string {
  return encodeCwd(realpathSync(cwd));
}

/**
 * Lets an SDK app resume a conversation's current session through the adapter: returns
 * the session id to pass as `resume`, after registering the app's project key for it.
 * SdkSessionNotFoundError when the conversation does not exist or has no session yet;
 * SdkAttachConflictError when that key already names another conversation's session.
 */
export async function sdkResumeTarget(db: StoreDb, input: SdkResumeTargetInput): Promise<SdkResumeTarget> {
  const externalId = parseConversationId(input.conversationId);
  const tenantId = parseTenantId(input.tenantId ?? 'default');
  if ((input.cwd === undefined) === (input.projectKey === undefined)) throw new StoreInputError('cwd', 'give exactly one of cwd and projectKey');
  const projectKey = input.projectKey !== undefined ? parseProjectKey(input.projectKey, 'projectKey') : sdkProjectKey(input.cwd!);
  return db.transaction(async (tx) => {
    const conv = await findConversation(tx, { externalId, tenantId });
    if (!conv) throw new SdkSessionNotFoundError(`no conversation ${JSON.stringify(externalId)} for tenant ${JSON.stringify(tenantId)}`);
    if (conv.sessionId === null) throw new SdkSessionNotFoundError(`conversation ${JSON.stringify(externalId)} has no session yet: let a turn finish first`);
    const sessionId = conv.sessionId;
    await tx.insert(sdkSessions).values({ tenantId, projectKey, sessionId, conversationId: conv.id }).onConflictDoNothing();
    const key = await findSdkKey(tx, tenantId, projectKey, sessionId);
    if (key?.conversationId !== conv.id) {
      throw new SdkAttachConflictError(`SDK session ${sessionId} under project key ${JSON.stringify(projectKey)} already belongs to another conversation`);
    }
    return { sessionId, projectKey };
  });
}
