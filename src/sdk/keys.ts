// The SDK's session keys, validated, and how they name agentq's rows.
//
// The SDK addresses a transcript as { projectKey, sessionId, subpath? }. agentq keeps a
// main transcript as the session `sessionId` of a conversation, and a subagent transcript
// (subpath set, e.g. `subagents/agent-1`) as the session `<sessionId>/<subpath>` of the
// same conversation: a CLI session id never contains `/`, so the two cannot collide.
import { createHash } from 'node:crypto';
import { StoreInputError } from '../errors.js';
import { parseSessionId } from '../store/ids.js';

/** The SDK's `SessionKey` (structurally identical; agentq does not import the SDK). */
export interface SdkSessionKey {
  projectKey: string;
  sessionId: string;
  subpath?: string | undefined;
}

export interface ParsedSdkKey {
  projectKey: string;
  sessionId: string;
  subpath: string | undefined;
  /** `sessions.session_id` of the transcript: the session id, or `<sessionId>/<subpath>`. */
  fileId: string;
}

/** Longest project key or subpath accepted. */
export const MAX_SDK_KEY_PART_LENGTH = 1024;

function keyPart(value: unknown, field: string): string {
  if (typeof value !== 'string') throw new StoreInputError(field, `must be a string (got ${JSON.stringify(value) ?? typeof value})`);
  if (value.length === 0) throw new StoreInputError(field, 'must not be empty');
  if (value.length > MAX_SDK_KEY_PART_LENGTH) throw new StoreInputError(field, `must be at most ${MAX_SDK_KEY_PART_LENGTH} characters`);
  if (value.includes('\0')) throw new StoreInputError(field, 'must not contain NUL');
  return value;
}

/** Validates a project key; throws StoreInputError naming `field`. */
export function parseProjectKey(value: unknown, field = 'key.projectKey'): string {
  return keyPart(value, field);
}

/** Validates a SessionKey; throws StoreInputError naming the bad field. */
export function parseSdkKey(key: unknown): ParsedSdkKey {
  if (typeof key !== 'object' || key === null) throw new StoreInputError('key', 'must be an object { projectKey, sessionId, subpath? }');
  const k = key as Record<string, unknown>;
  const projectKey = parseProjectKey(k.projectKey);
  const sessionId = parseSessionId(k.sessionId, 'key.sessionId');
  // The SDK documents an empty subpath as invalid: the main transcript omits the field.
  const subpath = k.subpath === undefined ? undefined : keyPart(k.subpath, 'key.subpath');
  return { projectKey, sessionId, subpath, fileId: subpath === undefined ? sessionId : `${sessionId}/${subpath}` };
}

/** The prefix of the `sessions.session_id` of every subagent transcript of a session. */
export const subpathPrefix = (sessionId: string): string => `${sessionId}/`;

/**
 * The external id of the conversation the adapter creates to hold a new SDK session:
 * `sdk:<sessionId>:<8 hex of the project key>` (another project key with the same
 * session id gets another conversation).
 */
export function holderConversationId(projectKey: string, sessionId: string): string {
  const hash = (s: string) => createHash('sha256').update(s).digest('hex');
  const id = `sdk:${sessionId}:${hash(projectKey).slice(0, 8)}`;
  // Conversation ids are at most 128 characters; session ids may be 128 themselves.
  return id.length <= 128 ? id : `sdk:${hash(`${projectKey}\0${sessionId}`).slice(0, 40)}`;
}
