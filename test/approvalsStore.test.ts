// The approvals store (docs/approvals.md): a pending approval per deferred tool call,
// decided once, scoped to its tenant, expired past its time; a decided turn queued again;
// the decisions a gate is given (an allow once per attempt); the metrics read from it.
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Registry } from 'prom-client';
import { registerApprovalMetrics } from '../src/metrics/approvals.js';
import { ALLOWED_BEFORE, decideApproval, expireAndQueue, expireApprovals, gateDecisions, getApproval, listApprovals, requestApproval, type ApprovalRequest } from '../src/store/approvals.js';
import { insertTurn } from '../src/store/turns.js';
import { gateInputDigest } from '../src/runner/approvalGate.js';
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
    // A NUL in the model's input (jsonb refuses it) is stored replaced, not refused.
    const nul = await requestApproval(t.db, { ...request, toolUseId: 'toolu_nul', input: { command: 'a\u0000b' } });
    expect(nul.input).toEqual({ command: 'a\uFFFDb' });
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

  it('the last decision of a waiting turn queues it again (to dispatch); one still pending keeps it waiting', async () => {
    const { turn, request, approval } = await pending('acme');
    const second = await requestApproval(t.db, { ...request, toolUseId: 'toolu_second' });
    await t.db.execute(sql`update turns set status = 'awaiting_approval', approval_rounds = 1 where id = ${turn.id}::uuid`);
    const first = await decideApproval(t.db, { tenantId: 'acme', id: approval.id, decision: 'allow', decidedBy: 'acme' });
    expect(first).toMatchObject({ kind: 'decided', dispatch: undefined });
    const last = await decideApproval(t.db, { tenantId: 'acme', id: second.id, decision: 'deny', decidedBy: 'acme' });
    expect(last).toMatchObject({ kind: 'decided', dispatch: { id: turn.id, approvalRounds: 1 }, event: { turnId: turn.id } });
    const [row] = (await t.db.execute<{ status: string }>(sql`select status from turns where id = ${turn.id}::uuid`)).rows;
    expect(row!.status).toBe('queued');
  });

  it('an expired approval queues its waiting turn; the gate is told deny', async () => {
    const { turn, approval } = await pending('acme', { timeoutMs: 1 });
    await t.db.execute(sql`update turns set status = 'awaiting_approval', approval_rounds = 1 where id = ${turn.id}::uuid`);
    await t.db.execute(sql`select pg_sleep(0.01)`);
    const { expired, dispatch } = await expireAndQueue(t.db);
    expect(expired.map((a) => a.id)).toContain(approval.id);
    expect(dispatch.map((d) => d.id)).toContain(turn.id);
    const read = await gateDecisions(t.db, { turnId: turn.id, conversationId: turn.conversationId, attempt: 2 });
    expect(read.byToolUseId[approval.toolUseId]).toMatchObject({ decision: 'deny', tool: 'Bash' });
    // The call a prompt-less resume of the turn continues.
    expect(read.awaitedToolUseId).toBe(approval.toolUseId);
  });

  it('an allow is given to one attempt: the attempt after it is told deny (the call may have run)', async () => {
    const { turn, approval } = await pending('acme');
    await decideApproval(t.db, { tenantId: 'acme', id: approval.id, decision: 'allow', updatedInput: { command: 'refund 42 --dry-run' }, decidedBy: 'acme' });
    const q = { turnId: turn.id, conversationId: turn.conversationId };
    // With the input the person gave, which the call runs with whatever the session holds.
    const updatedInput = { command: 'refund 42 --dry-run' };
    expect((await gateDecisions(t.db, { ...q, attempt: 2 })).byToolUseId[approval.toolUseId]).toEqual({ decision: 'allow', tool: 'Bash', updatedInput });
    // The same attempt asking again (its CLI re-run in the same attempt) still gets the allow.
    expect((await gateDecisions(t.db, { ...q, attempt: 2 })).byToolUseId[approval.toolUseId]?.decision).toBe('allow');
    expect((await gateDecisions(t.db, { ...q, attempt: 3 })).byToolUseId[approval.toolUseId]).toEqual({ decision: 'deny', tool: 'Bash', message: ALLOWED_BEFORE });
  });

  it("an allow without a changed input carries the digest of the call's own input, whatever order jsonb keeps its keys in", async () => {
    const { turn, approval } = await pending('digest', { input: { timeout: 5000, command: 'refund 42', description: 'refund the order' } });
    await decideApproval(t.db, { tenantId: 'digest', id: approval.id, decision: 'allow', decidedBy: 'digest' });
    const d = (await gateDecisions(t.db, { turnId: turn.id, conversationId: turn.conversationId, attempt: 1 })).byToolUseId[approval.toolUseId];
    // As the CLI hands the input to the gate: the model's order.
    expect(d?.inputSha256).toBe(gateInputDigest({ command: 'refund 42', description: 'refund the order', timeout: 5000 }));
    expect(d?.inputSha256).not.toBe(gateInputDigest({ command: 'refund 43', description: 'refund the order', timeout: 5000 }));
  });

  it('metrics: the pending count and the wait histogram by outcome', async () => {
    const registry = new Registry();
    registerApprovalMetrics(registry, t.pool);
    const before = await registry.metrics();
    const pendingNow = Number(/^agentq_approvals_pending (\d+)$/m.exec(before)![1]);
    const allowedBefore = Number(/^agentq_approval_wait_seconds_count\{outcome="allowed"\} (\d+)$/m.exec(before)![1]);
    const { approval } = await pending('metrics');
    expect(Number(/^agentq_approvals_pending (\d+)$/m.exec(await registry.metrics())![1])).toBe(pendingNow + 1);
    await decideApproval(t.db, { tenantId: 'metrics', id: approval.id, decision: 'allow', decidedBy: 'metrics' });
    const after = await registry.metrics();
    expect(Number(/^agentq_approvals_pending (\d+)$/m.exec(after)![1])).toBe(pendingNow);
    expect(Number(/^agentq_approval_wait_seconds_count\{outcome="allowed"\} (\d+)$/m.exec(after)![1])).toBe(allowedBefore + 1);
    expect(after).toMatch(/^agentq_approval_wait_seconds_bucket\{outcome="allowed",le="60"\} \d+$/m);
    expect(after).toContain('# TYPE agentq_approval_wait_seconds histogram');
  });
});
