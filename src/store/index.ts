// `agentq/store`: the session store (sessions and workspaces in Postgres, byte for byte).
// These skip the lease checks of the turn protocol: for tools and tests, not for writing a
// conversation a worker may be running. Named, not `export *`.
export { createStoreDb, type Executor, type StoreDb, type StoreTx } from './db.js';
export { defaultMigrationsFolder, migrate, schemaStatus, type MigrateOptions, type SchemaStatus } from './migrate.js';
export {
  conversationIdSchema,
  parseConversationId,
  parseSessionId,
  parseTenantId,
  workspaceDirName,
} from './ids.js';
export { deleteConversation, ensureConversation, findConversation, type ConversationRow } from './conversations.js';
export { hydrateSession, type HydrateInput, type HydrateResult } from './hydrate.js';
export { persistSession, type PersistInput, type PersistResult } from './persist.js';
export {
  commitSessionLines,
  discardUncommitted,
  getSessionHead,
  type CommitInput,
  type CommitResult,
  type DiscardResult,
  type SessionHead,
} from './sessions.js';
export { packWorkspace, unpackWorkspace, type PackedWorkspace, type PackOptions, type RefusedEntry } from './workspaceArchive.js';
export { restoreWorkspace, storeWorkspace, type RestoreResult } from './workspaces.js';
export { pruneTurnEvents } from './retention.js';
export * as schema from './schema.js';
