// Where this adapter left each session it appended to: the conversation holding it, its
// head, and the stored bytes the head's tail digest covers. With it, the next append to
// the session is one call (agentq_sdk_append, ./fastAppend.ts) instead of a transaction of
// a dozen statements and a read of the session's last chunk (up to 1 MiB to fetch and
// inflate, to check the digest). Only a hint: that call writes only when the head is still
// exactly this one, and the full path uses the bytes only when their digest is the head's,
// so a session someone else wrote to since (a worker's turn, another process) is read
// again as before.
import { createHash } from 'node:crypto';
import { TAIL_DIGEST_BYTES } from '../store/persist.js';

/** Sessions remembered per adapter, least recently used dropped (each at most ~4 KiB). */
export const KNOWN_HEADS_MAX = 1024;

export interface KnownHead {
  conversationId: string;
  lineCount: number;
  byteCount: number;
  tailSha256: string;
  /** The last min(TAIL_DIGEST_BYTES, byteCount) stored bytes: what tailSha256 is the digest of. */
  tail: Buffer;
}

export class KnownHeads {
  private readonly heads = new Map<string, KnownHead>();

  constructor(private readonly max = KNOWN_HEADS_MAX) {}

  get(tenantId: string, projectKey: string, fileId: string): KnownHead | undefined {
    const key = keyOf(tenantId, projectKey, fileId);
    const head = this.heads.get(key);
    if (head === undefined) return undefined;
    // Most recently used last: the first key is the one to evict.
    this.heads.delete(key);
    this.heads.set(key, head);
    return head;
  }

  /** The session now ends at (lineCount, byteCount) with `tail` (its last TAIL_DIGEST_BYTES are kept). */
  set(tenantId: string, projectKey: string, fileId: string, head: Omit<KnownHead, 'tailSha256'>): void {
    const key = keyOf(tenantId, projectKey, fileId);
    const tail = Buffer.from(head.tail.subarray(Math.max(0, head.tail.length - TAIL_DIGEST_BYTES)));
    this.heads.delete(key);
    this.heads.set(key, { ...head, tail, tailSha256: createHash('sha256').update(tail).digest('hex') });
    if (this.heads.size > this.max) this.heads.delete(this.heads.keys().next().value!);
  }

  forget(tenantId: string, projectKey: string, fileId: string): void {
    this.heads.delete(keyOf(tenantId, projectKey, fileId));
  }
}

const keyOf = (tenantId: string, projectKey: string, fileId: string) => JSON.stringify([tenantId, projectKey, fileId]);
