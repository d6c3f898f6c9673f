// The producer's handle: enqueue turns, cancel them, read a conversation, wait for a turn.
// Postgres records first; BullMQ dispatch follows and is repaired by the reconciler if
// this process dies in between.
import type { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import type { Config } from '../config.js';
import { createStoreDb, type StoreDb } from '../store/db.js';
import { createPool } from '../store/pool.js';
import { findConversation } from '../store/conversations.js';
import { parseConversationId, parseTenantId } from '../store/ids.js';
import { cancelTurnRecord, getTurn, listTurns, type TurnRow } from '../store/turns.js';
import { cancelChannel, createTurnQueue, dispatchTurn, turnJobId } from './dispatch.js';
import { approvalsOfTurn, decideApproval, getApproval, listApprovals } from '../store/approvals.js';
import type { ApprovalStatus } from '../store/schema.js';
import { approvalView, decisionInput, isUuid, parseApprovalDecision, publishDecision, type ApprovalDecisionInput, type ApprovalDecisionResult, type ApprovalView } from './approvalViews.js';
import { enqueueTurn, type EnqueuedTurnInfo } from './enqueue.js';
import type { TurnJobData } from './jobs.js';
import type { EnqueueTurnInput } from './turnInput.js';
import { permissionDenials, type PermissionDenials } from './denials.js';

export type { EnqueuedTurnInfo } from './enqueue.js';
export type { ApprovalDecisionInput, ApprovalDecisionResult, ApprovalView } from './approvalViews.js';

export interface TurnSummary {
  turnId: string;
  seq: number;
  status: string;
  attempts: number;
  sessionIdBefore: string | null;
  sessionIdAfter: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  costUsd: number | null;
  result: string | null;
  error: unknown;
  /** Tool calls the model made in the last attempt; null until the turn has run. */
  toolCalls: number | null;
  /** The tool calls the CLI refused (count, tools); null when none were. */
  permissionDenials: PermissionDenials | null;
  /** The Claude Code CLI version that ran each attempt, by attempt number (`{"1": "2.1.332"}`); null before any ran. */
  cliVersions: Record<string, string> | null;
}

export interface ConversationView {
  conversationId: string;
  tenantId: string;
  sessionId: string | null;
  turns: TurnSummary[];
}

export type CancelOutcome = 'cancelled' | 'cancel_requested' | 'already_finished' | 'not_found';

export interface WaitOptions {
  /** Also return when the turn stops to wait for a person (`status: "awaiting_approval"`, with `approvalId`). */
  untilApproval?: boolean;
}

export const TERMINAL_STATUSES = ['succeeded', 'failed', 'cancelled'] as const;

export interface AgentqClient {
  enqueueTurn(input: EnqueueTurnInput): Promise<EnqueuedTurnInfo>;
  cancelTurn(turnId: string): Promise<CancelOutcome>;
  getConversation(conversationId: string, tenantId?: string): Promise<ConversationView | undefined>;
  getTurn(turnId: string): Promise<TurnSummary & { conversationId: string; sessionId: string | null } | undefined>;
  /** Polls Postgres until the turn is terminal (or, with `untilApproval`, awaits an approval); rejects after `timeoutMs`. */
  waitForTurn(turnId: string, timeoutMs: number, options?: WaitOptions): Promise<TurnSummary & { approvalId?: string }>;
  /** A tenant's approvals, newest first (docs/approvals.md). */
  listApprovals(query?: { tenantId?: string; status?: ApprovalStatus; limit?: number }): Promise<ApprovalView[]>;
  getApproval(id: string, tenantId?: string): Promise<ApprovalView | undefined>;
  /** Decides a pending approval once; the turn then runs on (docs/approvals.md "Deciding"). */
  decideApproval(input: ApprovalDecisionInput): Promise<ApprovalDecisionResult>;
  readonly db: StoreDb;
  readonly queue: Queue<TurnJobData>;
  /** The client's Redis connection (commands only; subscribers need their own). */
  readonly redis: Redis;
  close(): Promise<void>;
}

export function summarizeTurn(t: TurnRow): TurnSummary {
  return {
    turnId: t.id,
    seq: t.seq,
    status: t.status,
    attempts: t.attempts,
    sessionIdBefore: t.sessionIdBefore,
    sessionIdAfter: t.sessionIdAfter,
    startedAt: t.startedAt?.toISOString() ?? null,
    finishedAt: t.finishedAt?.toISOString() ?? null,
    costUsd: t.costUsd === null ? null : Number(t.costUsd),
    result: t.result,
    error: t.error,
    toolCalls: t.toolCalls,
    permissionDenials: permissionDenials(t.toolCalls, t.permissionDenials),
    cliVersions: t.cliVersions,
  };
}

/** A client over its own pg pool and Redis connection; `close()` ends both. */
export function createClient(config: Config): AgentqClient {
  const pool = createPool(config.databaseUrl, 4);
  const db = createStoreDb(pool);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: 3, lazyConnect: false });
  const queue = createTurnQueue(config.queueName, redis, config.queuePrefix);

  return {
    db,
    queue,
    redis,
    enqueueTurn(raw) {
      return enqueueTurn(db, queue, raw, { maxPromptChars: config.worker.maxPromptChars, defaultSource: 'api' });
    },
    async cancelTurn(turnId) {
      const r = await cancelTurnRecord(db, turnId);
      switch (r.kind) {
        case 'not_found':
          return 'not_found';
        case 'already_finished':
          return 'already_finished';
        case 'cancelled': {
          const job = await queue.getJob(turnJobId({ id: turnId, approvalRounds: r.turn.approvalRounds }));
          await job?.remove().catch(() => undefined);
          if (r.next) await dispatchTurn(queue, r.next);
          return 'cancelled';
        }
        case 'requested':
          await redis.publish(cancelChannel(config.queueName, config.queuePrefix), turnId);
          return 'cancel_requested';
      }
    },
    async getConversation(conversationId, tenantId) {
      const conv = await findConversation(db, {
        externalId: parseConversationId(conversationId),
        tenantId: parseTenantId(tenantId ?? 'default'),
      });
      if (!conv) return undefined;
      const turns = await listTurns(db, conv.id);
      return { conversationId: conv.externalId, tenantId: conv.tenantId, sessionId: conv.sessionId, turns: turns.map(summarizeTurn) };
    },
    async getTurn(turnId) {
      const t = await getTurn(db, turnId);
      if (!t) return undefined;
      const r = await pool.query<{ external_id: string; session_id: string | null }>(
        'select external_id, session_id from conversations where id = $1',
        [t.conversationId],
      );
      return { ...summarizeTurn(t), conversationId: r.rows[0]?.external_id ?? '', sessionId: t.sessionIdAfter };
    },
    async listApprovals(query = {}) {
      const rows = await listApprovals(db, { tenantId: parseTenantId(query.tenantId ?? 'default'), status: query.status, limit: query.limit });
      return rows.map(approvalView);
    },
    async getApproval(id, tenantId) {
      if (!isUuid(id)) return undefined;
      const row = await getApproval(db, parseTenantId(tenantId ?? 'default'), id);
      return row ? approvalView(row) : undefined;
    },
    async decideApproval(raw) {
      const input = parseApprovalDecision(raw);
      if (!isUuid(input.id)) return { outcome: 'not_found' };
      const tenantId = parseTenantId(input.tenantId ?? 'default');
      const current = await getApproval(db, tenantId, input.id);
      if (!current) return { outcome: 'not_found' };
      const updatedInput = decisionInput(input, current);
      const r = await decideApproval(db, { tenantId, id: input.id, decision: input.decision, message: input.message, updatedInput, decidedBy: input.decidedBy ?? tenantId });
      if (r.kind === 'not_found') return { outcome: 'not_found' };
      // The live feed of the turn, then its job (a lost add is repaired by the reconciler).
      if (r.event) await publishDecision(redis, { queueName: config.queueName, queuePrefix: config.queuePrefix }, r.event).catch(() => undefined);
      if (r.dispatch) await dispatchTurn(queue, r.dispatch).catch(() => undefined);
      return { outcome: r.kind, approval: approvalView(r.approval) };
    },
    async waitForTurn(turnId, timeoutMs, options = {}) {
      const deadline = Date.now() + timeoutMs;
      // Short polls first (a turn may end within milliseconds), then back off.
      let pollMs = 5;
      for (;;) {
        const t = await getTurn(db, turnId);
        if (!t) throw new Error(`turn ${turnId} does not exist`);
        if ((TERMINAL_STATUSES as readonly string[]).includes(t.status)) return summarizeTurn(t);
        if (options.untilApproval === true && t.status === 'awaiting_approval') {
          const pending = (await approvalsOfTurn(db, t.id)).filter((a) => a.status === 'pending');
          if (pending.length > 0) return { ...summarizeTurn(t), approvalId: pending[pending.length - 1]!.id };
        }
        if (Date.now() > deadline) throw new Error(`turn ${turnId} did not finish within ${timeoutMs} ms (status ${t.status})`);
        await new Promise((r) => setTimeout(r, pollMs));
        pollMs = Math.min(200, pollMs * 2);
      }
    },
    async close() {
      await queue.close();
      redis.disconnect();
      await pool.end();
    },
  };
}
