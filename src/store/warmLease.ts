// The warm lease: between two turns of a warm conversation its worker keeps the lease
// (marked `lease_warm`) together with the CLI process. Renewing it proves the worker is
// alive; releasing it (idle, shutdown, a crashed CLI, eviction) hands the conversation back
// to every worker. Both only act while the fencing token and owner are still ours: a
// worker that stole the lease (the owner did not answer in time) has moved the token on.
import { and, eq, sql } from 'drizzle-orm';
import type { Executor } from './db.js';
import { conversations } from './schema.js';
import type { Fence } from './turns.js';

function ours(fence: Fence) {
  return and(
    eq(conversations.id, fence.conversationId),
    eq(conversations.fencingToken, fence.fencingToken),
    eq(conversations.leaseOwner, fence.workerId),
    eq(conversations.leaseWarm, true),
  );
}

/** Extends a warm lease; false when it is no longer ours (stolen, or expired and claimed). Index: conversations_pkey. */
export async function renewWarmLease(db: Executor, fence: Fence, leaseMs: number): Promise<boolean> {
  const rows = await db
    .update(conversations)
    .set({ leaseExpiresAt: sql`now() + make_interval(secs => ${leaseMs / 1000})` })
    .where(ours(fence))
    .returning({ id: conversations.id });
  return rows.length > 0;
}

/** Releases a warm lease if it is still ours; false when it was not. Index: conversations_pkey. */
export async function releaseWarmLease(db: Executor, fence: Fence): Promise<boolean> {
  const rows = await db
    .update(conversations)
    .set({ leaseOwner: null, leaseExpiresAt: null, leaseWarm: false, updatedAt: sql`now()` })
    .where(ours(fence))
    .returning({ id: conversations.id });
  return rows.length > 0;
}
