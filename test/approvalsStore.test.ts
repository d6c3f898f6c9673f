// The approvals store (issue 21, the store only so far): a pending approval per deferred
// tool call, decided once, scoped to its tenant, expired past its time.
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decideApproval, expireApprovals, getApproval, listApprovals, requestApproval, type ApprovalRequest } from '../src/store/approvals.js';
import { insertTurn } from '../src/store/turns.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

let n = 0;
/** A turn of a new conversation of `tenantId`, and a request for one of its tool calls. */
async function pending(tenantId: string, extra: Partial<ApprovalRequest> = {}) {
  const { turn } = await insertTurn(t.db, { externalId: `ticket-${++n}`, tenantId, prompt: 'refund order 42', options: {}, priority: 0, delayMs: 0, source: 'api' });
  const request: ApprovalRequest = { tenantId, conversationId: turn.conversationId, turnId: turn.id, toolUseId: `toolu_${n}`, toolName: 'Bash', input: { command: 'refund 42' }, ...extra };
  return { turn, request, approval: await requestApproval(t.db, request) };
}

describe('approvals store', () => {
  it('records one pending approval per deferred call; asking again returns the same row', async () => {
    const { request, approval } = await pending('acme');
    expect(approval).toMatchObject({ status: 'pending', toolName: 'Bash', input: { command: 'refund 42' }, expiresAt: null, decidedAt: null });
    const again = await requestApproval(t.db, request);
    expect(again.id).toBe(approval.id);
    expect((await listApprovals(t.db, { tenantId: 'acme', status: 'pending' })).map((a) => a.id)).toContain(approval.id);
  });

  it('an allow is stored with its updated input and who decided; a second decision is refused with the row as it is', async () => {
    const { approval } = await pending('acme');
    const allowed = await decideApproval(t.db, { tenantId: 'acme', id: approval.id, decision: 'allow', updatedInput: { command: 'refund 42 --partial' }, decidedBy: 'acme' });
    expect(allowed).toMatchObject({ kind: 'decided', approval: { status: 'allowed', updatedInput: { command: 'refund 42 --partial' }, decidedBy: 'acme' } });
    const denied = await decideApproval(t.db, { tenantId: 'acme', id: approval.id, decision: 'deny', message: 'no', decidedBy: 'acme' });
    expect(denied).toMatchObject({ kind: 'already_decided', approval: { status: 'allowed' } });
  });

  it('another tenant neither sees nor decides it', async () => {
    const { approval } = await pending('acme');
    expect(await getApproval(t.db, 'globex', approval.id)).toBeUndefined();
    expect((await listApprovals(t.db, { tenantId: 'globex' })).map((a) => a.id)).not.toContain(approval.id);
    expect(await decideApproval(t.db, { tenantId: 'globex', id: approval.id, decision: 'allow', decidedBy: 'globex' })).toEqual({ kind: 'not_found' });
    expect((await getApproval(t.db, 'acme', approval.id))?.status).toBe('pending');
  });

  it('of racing decisions exactly one wins', async () => {
    const { approval } = await pending('acme');
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        decideApproval(t.db, { tenantId: 'acme', id: approval.id, decision: i % 2 === 0 ? 'allow' : 'deny', message: `decision ${i}`, decidedBy: `user-${i}` }),
      ),
    );
    const won = results.filter((r) => r.kind === 'decided');
    expect(won).toHaveLength(1);
    const stored = (await getApproval(t.db, 'acme', approval.id))!;
    expect(results.filter((r) => r.kind === 'already_decided').every((r) => r.kind === 'already_decided' && r.approval.status === stored.status)).toBe(true);
    expect(won[0]!.kind === 'decided' && won[0]!.approval.decidedBy).toBe(stored.decidedBy);
  });

  it('past its timeout a pending approval expires, and a late decision is refused', async () => {
    const { approval } = await pending('acme', { timeoutMs: 1 });
    expect(approval.expiresAt).not.toBeNull();
    // On the database's clock: 10 ms later the 1 ms timeout has passed.
    await t.db.execute(sql`select pg_sleep(0.01)`);
    const late = await decideApproval(t.db, { tenantId: 'acme', id: approval.id, decision: 'allow', decidedBy: 'acme' });
    expect(late).toMatchObject({ kind: 'already_decided', approval: { status: 'expired', decidedBy: 'expiry', message: 'no decision came in time' } });
    expect(await expireApprovals(t.db)).toEqual([]);
  });
});
