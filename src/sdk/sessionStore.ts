// agentq's store as the Agent SDK's `sessionStore` (alpha interface of
// @anthropic-ai/claude-agent-sdk): `query({ prompt, options: { sessionStore, resume } })`.
// Transcripts live in the same Postgres rows the worker hydrates, so an SDK session can
// be continued by agentq turns (attach) and a conversation opened from an SDK app.
import type { StoreDb } from '../store/db.js';
import { parseTenantId } from '../store/ids.js';
import { appendSdkEntries } from './append.js';
import { attachSdkSession, sdkResumeTarget, type AttachSdkSessionResult, type SdkResumeTarget } from './attach.js';
import type { SdkSessionEntry } from './entries.js';
import type { SdkSessionKey } from './keys.js';
import { KnownHeads } from './knownHeads.js';
import { loadSdkEntries } from './load.js';
import { deleteSdkSession, listSdkSessions, listSdkSubkeys, type SdkSessionListing } from './manage.js';

export interface AgentqSessionStoreOptions {
  /** The store's database (createStoreDb over a pg Pool). */
  db: StoreDb;
  /** Tenant the SDK's sessions are stored under. @defaultValue 'default' */
  tenantId?: string;
  /** Longest serialized entry accepted (AGENTQ_SESSION_MAX_LINE_BYTES). @defaultValue 16777216 */
  maxLineBytes?: number;
}

/** Structurally the SDK's `SessionStore`, plus two agentq calls. */
export interface AgentqSessionStore {
  append(key: SdkSessionKey, entries: SdkSessionEntry[]): Promise<void>;
  load(key: SdkSessionKey): Promise<SdkSessionEntry[] | null>;
  listSessions(projectKey: string): Promise<SdkSessionListing[]>;
  delete(key: SdkSessionKey): Promise<void>;
  listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]>;
  /** attachSdkSession in this store's tenant. */
  attach(conversationId: string, sessionId: string, options?: { projectKey?: string }): Promise<AttachSdkSessionResult>;
  /** sdkResumeTarget in this store's tenant: pass `.sessionId` as the SDK's `resume`. */
  resumeTarget(conversationId: string, where: { cwd: string } | { projectKey: string }): Promise<SdkResumeTarget>;
}

const DEFAULT_MAX_LINE_BYTES = 16 * 1024 * 1024;

/**
 * Creates the adapter; create one per tenant. Its only state besides its options is
 * where it left each session it appended to (./knownHeads.ts), checked against the store
 * before each use.
 */
export function createSessionStore(options: AgentqSessionStoreOptions): AgentqSessionStore {
  const { db } = options;
  const tenantId = parseTenantId(options.tenantId ?? 'default');
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const heads = new KnownHeads();
  return {
    async append(key, entries) {
      await appendSdkEntries(db, { tenantId, maxLineBytes, heads }, key, entries);
    },
    load: (key) => loadSdkEntries(db, tenantId, key),
    listSessions: (projectKey) => listSdkSessions(db, tenantId, projectKey),
    delete: (key) => deleteSdkSession(db, tenantId, key),
    listSubkeys: (key) => listSdkSubkeys(db, tenantId, key),
    attach: (conversationId, sessionId, opts) =>
      attachSdkSession(db, { conversationId, sessionId, tenantId, ...(opts?.projectKey === undefined ? {} : { projectKey: opts.projectKey }) }),
    resumeTarget: (conversationId, where) => sdkResumeTarget(db, { conversationId, tenantId, ...where }),
  };
}
