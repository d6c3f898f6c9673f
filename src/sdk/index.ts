// The Agent SDK adapter's public surface (src/index.ts picks from here).
export { createSessionStore, type AgentqSessionStore, type AgentqSessionStoreOptions } from './sessionStore.js';
export {
  attachSdkSession,
  sdkProjectKey,
  sdkResumeTarget,
  type AttachSdkSessionInput,
  type AttachSdkSessionResult,
  type SdkResumeTarget,
  type SdkResumeTargetInput,
} from './attach.js';
export type { SdkSessionEntry } from './entries.js';
export type { SdkSessionKey } from './keys.js';
export type { SdkSessionListing } from './manage.js';
export { SdkAttachConflictError, SdkSessionBusyError, SdkSessionNotFoundError } from './errors.js';
