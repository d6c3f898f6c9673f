// Identifiers from outside: the producer's conversation id (`external_id`, e.g.
// `ticket-4812`), tenant ids, and the CLI's session ids (they become file names).
// Validated on the way in; directory names are derived from them, never taken raw.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { StoreInputError } from '../errors.js';

export const MAX_CONVERSATION_ID_LENGTH = 128;
export const MAX_TENANT_ID_LENGTH = 64;

function hasControlCharacter(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    if (code < 0x20 || code === 0x7f) return true;
  }
  return false;
}

/** Checks in order, so the message names the first problem a person would fix. */
function identifier(max: number) {
  return z
    .string({ error: 'must be a string' })
    .min(1, { error: 'must not be empty' })
    .max(max, { error: `must be at most ${max} characters` })
    .refine((s) => !s.includes('\0'), { error: 'must not contain NUL' })
    .refine((s) => !hasControlCharacter(s), { error: 'must not contain control characters' })
    .refine((s) => !s.includes('/') && !s.includes('\\'), { error: 'must not contain / or \\' })
    .refine((s) => !s.includes('..'), { error: 'must not contain ..' })
    .refine((s) => !s.startsWith('.'), { error: 'must not start with .' })
    .refine((s) => /^[A-Za-z0-9._:@-]+$/.test(s), { error: 'may only contain A-Z a-z 0-9 . _ : @ -' });
}

export const conversationIdSchema = identifier(MAX_CONVERSATION_ID_LENGTH);
export const tenantIdSchema = identifier(MAX_TENANT_ID_LENGTH);

function parseWith(schema: z.ZodType<string>, value: unknown, field: string): string {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new StoreInputError(field, `${parsed.error.issues[0]?.message ?? 'is invalid'} (got ${JSON.stringify(value)})`);
}

/** Validates a producer's conversation id; throws StoreInputError naming `field`. */
export function parseConversationId(value: unknown, field = 'conversationId'): string {
  return parseWith(conversationIdSchema, value, field);
}

/** Validates a tenant id (same rules, shorter); throws StoreInputError naming `field`. */
export function parseTenantId(value: unknown, field = 'tenantId'): string {
  return parseWith(tenantIdSchema, value, field);
}

/** CLI session ids are UUIDs; accept any safe file-name stem so other CLI versions still work. */
export const sessionIdSchema = z
  .string({ error: 'must be a string' })
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/, { error: 'must be 1-128 characters of A-Z a-z 0-9 . _ -, not starting with .' });

/** Validates a CLI session id before it names a file; throws StoreInputError naming `field`. */
export function parseSessionId(value: unknown, field = 'sessionId'): string {
  return parseWith(sessionIdSchema, value, field);
}

/**
 * A stored session's id: a CLI session id, or a subagent transcript of one,
 * `<sessionId>/<subpath>` (src/claude/subagentPath.ts), whose subpath segments follow the
 * session id's rules.
 */
export const sessionFileIdSchema = z
  .string({ error: 'must be a string' })
  .max(1024, { error: 'must be at most 1024 characters' })
  .regex(/^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}(\/[A-Za-z0-9_-][A-Za-z0-9._-]{0,127})*$/, {
    error: 'must be a session id, optionally followed by /-separated segments of A-Z a-z 0-9 . _ -, none starting with .',
  });

/** Validates a stored session's id before it names a file; throws StoreInputError naming `field`. */
export function parseSessionFileId(value: unknown, field = 'sessionId'): string {
  return parseWith(sessionFileIdSchema, value, field);
}

/**
 * A stable, safe directory name for a conversation's workspace: a readable slug of the
 * id (letters, digits, `.`, `_`, `-`; at most 48 characters) plus 12 hex characters of
 * sha256(tenant, id), so two tenants, or two ids with the same slug, never share a
 * directory. Same input, same name, on every worker.
 */
export function workspaceDirName(externalId: string, tenantId = 'default'): string {
  const id = parseConversationId(externalId, 'externalId');
  const tenant = parseTenantId(tenantId);
  const slug = id.replace(/[^A-Za-z0-9._-]/g, '-').slice(0, 48);
  const digest = createHash('sha256').update(`${tenant}\0${id}`).digest('hex').slice(0, 12);
  return `${slug}-${digest}`;
}
