// An append at the head this adapter last left (./knownHeads.ts) as one call to
// agentq_sdk_append (migrations/0015): key, head, lease and uuid checks, the chunks, the
// commit of the lines, the uuid index and the sidecar in one statement. Anything not as
// expected writes nothing and sends the append down its full path (./append.ts).
import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Executor } from '../store/db.js';
import { rollTail } from '../store/persist.js';
import { SDK_CODEC, type PreparedLines } from './appendLines.js';
import type { KnownHead } from './knownHeads.js';
import type { ParsedSdkKey } from './keys.js';

/** Why the call wrote nothing (see migrations/0015_sdk_append_function.sql). */
export type FastAppendRefusal = 'stale' | 'busy' | 'known';

export interface FastAppendInput {
  tenantId: string;
  key: ParsedSdkKey;
  head: KnownHead;
  lines: PreparedLines;
  /** The batch's uuids, none repeated. */
  uuids: readonly string[];
  sidecar: string | undefined;
}

/** Where the session ends once appended: `head` moved past the lines. */
export type FastAppendResult = { appended: true; head: Omit<KnownHead, 'tailSha256'> } | { appended: false; why: FastAppendRefusal };

export async function appendAtKnownHead(db: Executor, input: FastAppendInput): Promise<FastAppendResult> {
  const { head, key, lines } = input;
  let tail = head.tail;
  let lineCount = head.lineCount;
  let byteCount = head.byteCount;
  for (const c of lines.chunks) {
    tail = rollTail(tail, c.raw);
    lineCount += c.lineCount;
    byteCount += c.raw.length;
  }
  const data = await Promise.all(lines.chunks.map((c) => c.data));
  const intArray = (xs: number[]) => `{${xs.join(',')}}`;
  const r = await db.execute<{ outcome: string }>(sql`
    select agentq_sdk_append(
      ${input.tenantId}, ${key.projectKey}, ${key.sessionId}, ${head.conversationId}::uuid, ${key.fileId},
      ${head.lineCount}::bigint, ${head.byteCount}::bigint, ${head.tailSha256}, ${createHash('sha256').update(tail).digest('hex')},
      ${SDK_CODEC}, ${intArray(lines.chunks.map((c) => c.lineCount))}::int[], ${intArray(lines.chunks.map((c) => c.raw.length))}::int[],
      ${intArray(data.map((d) => d.length))}::int[], ${Buffer.concat(data)}::bytea,
      ${sql.param([...input.uuids])}::text[],
      ${input.sidecar ?? null}::text, ${key.subpath === undefined}::boolean) as outcome`);
  const outcome = r.rows[0]?.outcome;
  if (outcome === 'appended') return { appended: true, head: { conversationId: head.conversationId, lineCount, byteCount, tail } };
  if (outcome === 'stale' || outcome === 'busy' || outcome === 'known') return { appended: false, why: outcome };
  throw new Error(`agentq_sdk_append returned ${String(outcome)}`);
}
