// The Postgres schema, the system of record (docs/design.md). drizzle-kit reads
// this file to generate the SQL in migrations/; the SQL files are what runs. Every query
// in src/store names the index it relies on in a comment.
import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  check,
  customType,
  foreignKey,
  index,
  integer,
  jsonb,
  numeric,
  pgTable,
  primaryKey,
  text,
  timestamp,
  unique,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core';

/** bytea as a Node Buffer (drizzle-orm has no built-in bytea column). */
const bytea = customType<{ data: Buffer; driverData: Buffer }>({
  dataType: () => 'bytea',
});

const createdAt = () => timestamp('created_at', { withTimezone: true }).notNull().defaultNow();
const updatedAt = () => timestamp('updated_at', { withTimezone: true }).notNull().defaultNow();

export const turnStatuses = ['queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled'] as const;
/** Statuses of a turn that is not finished: it holds back the turns after it. */
export const unfinishedTurnStatuses = ['queued', 'running', 'awaiting_approval'] as const;
export const turnSources = ['api', 'cli', 'schedule'] as const;
export type TurnSource = (typeof turnSources)[number];
/** How a session chunk's bytes are encoded in `data`; readers accept every one of them. */
export const chunkCodecs = ['identity', 'gzip', 'br'] as const;
export type ChunkCodec = (typeof chunkCodecs)[number];

export const conversations = pgTable(
  'conversations',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id').notNull().default('default'),
    /** The producer's conversation id (e.g. `ticket-4812`), validated by parseConversationId. */
    externalId: text('external_id').notNull(),
    /** The CLI session the next turn resumes; null until the first turn commits. */
    sessionId: text('session_id'),
    /** The seq the next enqueued turn gets. */
    nextSeq: integer('next_seq').notNull().default(1),
    leaseOwner: text('lease_owner'),
    leaseExpiresAt: timestamp('lease_expires_at', { withTimezone: true }),
    /** Incremented on every lease grant; each write of an attempt checks it. */
    fencingToken: bigint('fencing_token', { mode: 'number' }).notNull().default(0),
    /** True while the lease is held between turns by a worker that keeps the conversation's CLI running (warm). */
    leaseWarm: boolean('lease_warm').notNull().default(false),
    defaultOptions: jsonb('default_options').notNull().default({}),
    turnsTotal: integer('turns_total').notNull().default(0),
    costUsd: numeric('cost_usd', { precision: 14, scale: 6 }).notNull().default('0'),
    inputTokens: bigint('input_tokens', { mode: 'number' }).notNull().default(0),
    outputTokens: bigint('output_tokens', { mode: 'number' }).notNull().default(0),
    /** When true, a failed turn blocks the turns after it. */
    haltOnFailure: boolean('halt_on_failure').notNull().default(false),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [unique('conversations_tenant_external_uq').on(t.tenantId, t.externalId)],
);

export const turns = pgTable(
  'turns',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    prompt: text('prompt').notNull(),
    options: jsonb('options').notNull().default({}),
    idempotencyKey: text('idempotency_key'),
    status: text('status', { enum: turnStatuses }).notNull().default('queued'),
    attempts: integer('attempts').notNull().default(0),
    sessionIdBefore: text('session_id_before'),
    sessionIdAfter: text('session_id_after'),
    /**
     * The session the current or last attempt runs in: chosen up front for a new
     * conversation, or the id the CLI reported (a fork). A retry resumes it.
     */
    runSessionId: text('run_session_id'),
    /** Set by cancelTurn on a running turn; the worker stops the run at its next heartbeat. */
    cancelRequestedAt: timestamp('cancel_requested_at', { withTimezone: true }),
    result: text('result'),
    /** `{ class, message, retryable }` of the last failure. */
    error: jsonb('error'),
    costUsd: numeric('cost_usd', { precision: 14, scale: 6 }),
    usage: jsonb('usage'),
    numTurns: integer('num_turns'),
    /** Tool calls the model made in the last attempt (each tool_use block once). */
    toolCalls: integer('tool_calls'),
    /** The tool calls the CLI refused in the last attempt: `[{tool, toolUseId}]` (its `permission_denials`). */
    permissionDenials: jsonb('permission_denials').$type<{ tool: string; toolUseId: string | null }[]>(),
    /** The Claude Code CLI version that ran each attempt, by attempt number (from its init event): `{"1": "2.1.197", "2": "2.1.332"}`. */
    cliVersions: jsonb('cli_versions').$type<Record<string, string>>(),
    source: text('source', { enum: turnSources }).notNull().default('api'),
    priority: integer('priority').notNull().default(0),
    runAt: timestamp('run_at', { withTimezone: true }).notNull().defaultNow(),
    queuedAt: timestamp('queued_at', { withTimezone: true }).notNull().defaultNow(),
    startedAt: timestamp('started_at', { withTimezone: true }),
    finishedAt: timestamp('finished_at', { withTimezone: true }),
    /** How many times the turn stopped at a gated tool call to wait for a person (docs/approvals.md); > 0: it continues its session instead of sending its prompt. */
    approvalRounds: integer('approval_rounds').notNull().default(0),
    /** `attempts` when the turn last stopped for an approval: the attempts of the round after it count from here (AGENTQ_MAX_ATTEMPTS is per round). */
    attemptsBeforeRound: integer('attempts_before_round').notNull().default(0),
  },
  (t) => [
    // Also serves the foreign key (cascade deletes by conversation_id).
    unique('turns_conversation_seq_uq').on(t.conversationId, t.seq),
    // Only turns with a key are in it (most have none): one index write less for each of
    // a turn's three writes (its insert, its claim and its end change `status`, which
    // other indexes hold, so none of them is a HOT update).
    uniqueIndex('turns_idempotency_key_uq').on(t.conversationId, t.idempotencyKey).where(sql`idempotency_key is not null`),
    // Everything that asks for a conversation's turns by status asks for its unfinished
    // ones: the head checks of enqueue and claim ("an unfinished turn before this one?"),
    // the next queued turn after a commit, the conversation's status (its head's), the
    // reconciler's NOT EXISTS. It holds only the unfinished turns, so those steps cost the
    // same on a conversation's 10,000th turn as on its first (migration 0018), and a turn
    // leaves it when it ends.
    index('turns_unfinished_conversation_seq_idx').on(t.conversationId, t.seq).where(sql`status in ('queued', 'running', 'awaiting_approval')`),
    // The reconciler, the backlog gauge and `agentq stats`: the queued and running turns by run_at.
    index('turns_due_run_at_idx').on(t.status, t.runAt).where(sql`status in ('queued', 'running')`),
    check('turns_status_ck', sql`${t.status} in ('queued', 'running', 'awaiting_approval', 'succeeded', 'failed', 'cancelled')`),
    check('turns_source_ck', sql`${t.source} in ('api', 'cli', 'schedule')`),
    check('turns_seq_ck', sql`${t.seq} >= 1`),
    check('turns_attempts_ck', sql`${t.attempts} >= 0`),
  ],
);

export const turnEvents = pgTable(
  'turn_events',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    turnId: uuid('turn_id')
      .notNull()
      .references(() => turns.id, { onDelete: 'cascade' }),
    attempt: integer('attempt').notNull(),
    seq: integer('seq').notNull(),
    type: text('type').notNull(),
    /** The raw stream-json stdout line, byte-exact (text, not jsonb: jsonb rewrites it). */
    payload: text('payload').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    // Also serves the foreign key and "events of a turn in order".
    unique('turn_events_turn_attempt_seq_uq').on(t.turnId, t.attempt, t.seq),
    // Retention: DELETE ... WHERE created_at < $1.
    index('turn_events_created_at_idx').on(t.createdAt),
  ],
);

export const approvalStatuses = ['pending', 'allowed', 'denied', 'expired'] as const;
export type ApprovalStatus = (typeof approvalStatuses)[number];

/**
 * A gated tool call waiting for, or decided by, a person (issue 21's durable approvals):
 * one row per deferred `tool_use_id` of a turn. Only the store's conditional UPDATE moves
 * it out of `pending`, once (src/store/approvals.ts).
 */
export const approvals = pgTable(
  'approvals',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id').notNull(),
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    turnId: uuid('turn_id')
      .notNull()
      .references(() => turns.id, { onDelete: 'cascade' }),
    /** The CLI's id of the deferred call (`deferred_tool_use.id`). */
    toolUseId: text('tool_use_id').notNull(),
    toolName: text('tool_name').notNull(),
    input: jsonb('input').notNull(),
    status: text('status', { enum: approvalStatuses }).notNull().default('pending'),
    requestedAt: timestamp('requested_at', { withTimezone: true }).notNull().defaultNow(),
    /** Past this, a pending approval is answered `deny` (expired); null: it waits for ever. */
    expiresAt: timestamp('expires_at', { withTimezone: true }),
    decidedAt: timestamp('decided_at', { withTimezone: true }),
    /** Who decided: the API key's tenant, a CLI user, or `expiry`. */
    decidedBy: text('decided_by'),
    /** With a deny: what the model is told; with an allow: an optional note. */
    message: text('message'),
    /** With an allow: the tool input to run instead of `input`. */
    updatedInput: jsonb('updated_input'),
    /**
     * The attempt of the turn that was first given this decision to answer the CLI with.
     * A later attempt does not allow the call again: the first may have run it before it
     * was lost (docs/approvals.md "At most once").
     */
    answeredInAttempt: integer('answered_in_attempt'),
  },
  (t) => [
    // One approval per deferred call; also serves the foreign key on turn_id.
    unique('approvals_turn_tool_use_uq').on(t.turnId, t.toolUseId),
    // "Pending approvals of a tenant", newest first.
    index('approvals_tenant_status_requested_idx').on(t.tenantId, t.status, t.requestedAt),
    // Expiry: pending rows by expires_at.
    index('approvals_pending_expiry_idx').on(t.expiresAt).where(sql`status = 'pending'`),
    index('approvals_conversation_idx').on(t.conversationId),
  ],
);

/**
 * One row per CLI session of a conversation: the head of its append-only log of chunks.
 * `line_count`/`byte_count` cover every stored line (committed and checkpointed);
 * the committed counters mark the committed prefix. Appends move the head only with a
 * conditional UPDATE that names the head they expect (see src/store/persist.ts).
 */
export const sessions = pgTable(
  'sessions',
  {
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    sessionId: text('session_id').notNull(),
    lineCount: bigint('line_count', { mode: 'number' }).notNull().default(0),
    byteCount: bigint('byte_count', { mode: 'number' }).notNull().default(0),
    committedLineCount: bigint('committed_line_count', { mode: 'number' }).notNull().default(0),
    committedByteCount: bigint('committed_byte_count', { mode: 'number' }).notNull().default(0),
    /**
     * sha256 (hex) of the last min(4096, byte_count) stored bytes; null while empty. Lets
     * persist check in O(1) that a local file continues the stored bytes.
     */
    tailSha256: text('tail_sha256'),
    /** The same digest at the committed head, restored by discardUncommitted. */
    committedTailSha256: text('committed_tail_sha256'),
    /** The session this one was forked from (a fork, or a CLI that changed id on resume). */
    forkedFrom: text('forked_from'),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ name: 'sessions_pk', columns: [t.conversationId, t.sessionId] }),
    check(
      'sessions_counts_ck',
      sql`${t.committedLineCount} >= 0 and ${t.committedByteCount} >= 0 and ${t.lineCount} >= ${t.committedLineCount} and ${t.byteCount} >= ${t.committedByteCount} and ${t.byteCount} >= ${t.lineCount}`,
    ),
  ],
);

/**
 * The stored bytes of a session: consecutive complete lines, up to ~1 MiB raw per chunk,
 * encoded on the client (`codec`). Chunk k starts where chunk k-1 ends: first_line and
 * byte_offset equal the sum of the line counts and lengths before it. The primary key
 * forbids two chunks at one line; the append statement inserts only when first_line and
 * byte_offset equal the session head it advances in the same statement.
 */
export const sessionChunks = pgTable(
  'session_chunks',
  {
    conversationId: uuid('conversation_id').notNull(),
    sessionId: text('session_id').notNull(),
    /** 0-based number of the chunk's first line within the session file. */
    firstLine: bigint('first_line', { mode: 'number' }).notNull(),
    lineCount: integer('line_count').notNull(),
    /** Offset of the chunk's first byte within the session file. */
    byteOffset: bigint('byte_offset', { mode: 'number' }).notNull(),
    /** Raw (decoded) length in bytes. */
    byteLen: integer('byte_len').notNull(),
    /** The attempt that wrote the chunk, as the worker names it (opaque). */
    attempt: text('attempt').notNull(),
    committed: boolean('committed').notNull().default(false),
    codec: text('codec', { enum: chunkCodecs }).notNull(),
    /** The encoded bytes of complete lines (STORAGE EXTERNAL: already compressed). */
    data: bytea('data').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    // Reads ("chunks of a session from line n, in order") and the cascade use this key.
    primaryKey({ name: 'session_chunks_pk', columns: [t.conversationId, t.sessionId, t.firstLine] }),
    foreignKey({
      name: 'session_chunks_session_fk',
      columns: [t.conversationId, t.sessionId],
      foreignColumns: [sessions.conversationId, sessions.sessionId],
    }).onDelete('cascade'),
    check(
      'session_chunks_shape_ck',
      sql`${t.firstLine} >= 0 and ${t.byteOffset} >= ${t.firstLine} and ${t.lineCount} > 0 and ${t.byteLen} >= ${t.lineCount}`,
    ),
    check('session_chunks_codec_ck', sql`${t.codec} in ('identity', 'gzip', 'br')`),
  ],
);

export const workspaces = pgTable('workspaces', {
  conversationId: uuid('conversation_id')
    .primaryKey()
    .references(() => conversations.id, { onDelete: 'cascade' }),
  /** gzip-compressed tar of the working directory (STORAGE EXTERNAL: already compressed). */
  archive: bytea('archive').notNull(),
  /** sha256 (hex) of `archive`; a store with the same digest writes nothing. */
  sha256: text('sha256').notNull(),
  sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
  fileCount: integer('file_count').notNull(),
  updatedAt: updatedAt(),
});

export const scheduleOverlapPolicies = ['skip', 'queue'] as const;
export type ScheduleOverlapPolicy = (typeof scheduleOverlapPolicies)[number];

/**
 * Scheduled agents: a cron expression that enqueues a turn on a conversation. Postgres is
 * the record; BullMQ job schedulers (one per enabled row, its id the row's id) only drive
 * the ticks and are re-synced from here by every worker.
 */
export const schedules = pgTable(
  'schedules',
  {
    id: uuid('id').primaryKey().defaultRandom(),
    tenantId: text('tenant_id').notNull().default('default'),
    /** The producer's name for the schedule, validated like a conversation id, unique per tenant. */
    name: text('name').notNull(),
    /** The producer's conversation id (`conversations.external_id`) each tick enqueues on; it need not exist yet. */
    conversationExternalId: text('conversation_external_id').notNull(),
    prompt: text('prompt').notNull(),
    /** Turn options (validated as for an enqueued turn). */
    options: jsonb('options').notNull().default({}),
    /** Cron expression: 5 fields, or 6 with seconds first. */
    cron: text('cron').notNull(),
    /** IANA time zone the cron expression is read in. */
    timezone: text('timezone').notNull().default('UTC'),
    /** `skip`: a tick does nothing while the conversation has a queued or running turn; `queue`: it enqueues anyway. */
    overlap: text('overlap', { enum: scheduleOverlapPolicies }).notNull().default('skip'),
    enabled: boolean('enabled').notNull().default(true),
    /** The tick time of the last tick that enqueued a turn. */
    lastFiredAt: timestamp('last_fired_at', { withTimezone: true }),
    lastTurnId: uuid('last_turn_id'),
    /** The tick time of the last tick skipped by the overlap policy. */
    lastSkippedAt: timestamp('last_skipped_at', { withTimezone: true }),
    createdAt: createdAt(),
    updatedAt: updatedAt(),
  },
  (t) => [
    unique('schedules_tenant_name_uq').on(t.tenantId, t.name),
    check('schedules_overlap_ck', sql`${t.overlap} in ('skip', 'queue')`),
  ],
);

/**
 * Agent SDK interop (src/sdk/): which conversation holds an SDK session key. The SDK names
 * a transcript by (projectKey, sessionId); agentq keeps its lines in `sessions` and
 * `session_chunks` of this conversation (one copy, the same rows the worker hydrates).
 * Subagent transcripts are stored there too, as session `<sessionId>/<subpath>`.
 */
export const sdkSessions = pgTable(
  'sdk_sessions',
  {
    tenantId: text('tenant_id').notNull(),
    /** The SDK's project key (by default its encoding of the app's cwd). */
    projectKey: text('project_key').notNull(),
    sessionId: text('session_id').notNull(),
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    /** True while the conversation is the one the adapter created to hold this session. */
    createdConversation: boolean('created_conversation').notNull().default(false),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ name: 'sdk_sessions_pk', columns: [t.tenantId, t.projectKey, t.sessionId] }),
    // `agentq attach <conversation> <sessionId>`: the keys of a session id in a tenant.
    index('sdk_sessions_tenant_session_idx').on(t.tenantId, t.sessionId),
    // The cascade from conversations, and "the keys pointing at a conversation".
    index('sdk_sessions_conversation_idx').on(t.conversationId),
  ],
);

/**
 * The entry uuids a stored session file holds, so an SDK append that repeats an entry
 * (a retried batch, an import replayed) stores it once. Filled from SDK appends and, on
 * the next append, from lines stored by others (the worker) up to `session_uuid_scans`.
 */
export const sessionEntryUuids = pgTable(
  'session_entry_uuids',
  {
    conversationId: uuid('conversation_id').notNull(),
    sessionId: text('session_id').notNull(),
    uuid: text('uuid').notNull(),
  },
  // No foreign key to `sessions`: its check, a row lock on the session per inserted uuid,
  // was a third of an SDK append's statement (500 uuids: ~2.5 of 7.7 ms). Every writer
  // holds the session head's row lock already, and a trigger (migrations/0017) deletes a
  // session's uuids with it, as the cascade did.
  (t) => [primaryKey({ name: 'session_entry_uuids_pk', columns: [t.conversationId, t.sessionId, t.uuid] })],
);

/** How many lines of a session file `session_entry_uuids` covers. */
export const sessionUuidScans = pgTable(
  'session_uuid_scans',
  {
    conversationId: uuid('conversation_id').notNull(),
    sessionId: text('session_id').notNull(),
    scannedLineCount: bigint('scanned_line_count', { mode: 'number' }).notNull().default(0),
  },
  (t) => [
    primaryKey({ name: 'session_uuid_scans_pk', columns: [t.conversationId, t.sessionId] }),
    foreignKey({
      name: 'session_uuid_scans_session_fk',
      columns: [t.conversationId, t.sessionId],
      foreignColumns: [sessions.conversationId, sessions.sessionId],
    }).onDelete('cascade'),
  ],
);

/**
 * The small JSON file the CLI keeps next to a subagent transcript
 * (`agent-<id>.meta.json`: the agent's type and the tool call that started it), for the
 * stored transcript `session_id` (`<sessionId>/subagents/agent-<id>`). Written by the worker
 * with the transcript, written back next to it on hydration; the Agent SDK adapter's
 * `load` gives it as the `agent_metadata` entry the SDK turns into that file.
 */
export const sessionSidecars = pgTable(
  'session_sidecars',
  {
    conversationId: uuid('conversation_id').notNull(),
    sessionId: text('session_id').notNull(),
    content: text('content').notNull(),
    updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ name: 'session_sidecars_pk', columns: [t.conversationId, t.sessionId] }),
    foreignKey({
      name: 'session_sidecars_session_fk',
      columns: [t.conversationId, t.sessionId],
      foreignColumns: [sessions.conversationId, sessions.sessionId],
    }).onDelete('cascade'),
  ],
);

/**
 * The rest of a session's folder (`<project>/<sessionId>/` next to the session file, its
 * `subagents/` left out: those are stored as transcripts): files the CLI saves there and
 * names by absolute path in the transcript, such as the full text of a tool output too
 * large for it (`tool-results/<id>.txt`). A gzip tar like a workspace archive, replaced
 * when its digest changes.
 */
export const sessionFolders = pgTable(
  'session_folders',
  {
    conversationId: uuid('conversation_id').notNull(),
    sessionId: text('session_id').notNull(),
    /** gzip-compressed tar (STORAGE EXTERNAL: already compressed). */
    archive: bytea('archive').notNull(),
    sha256: text('sha256').notNull(),
    sizeBytes: bigint('size_bytes', { mode: 'number' }).notNull(),
    fileCount: integer('file_count').notNull(),
    updatedAt: updatedAt(),
  },
  (t) => [
    primaryKey({ name: 'session_folders_pk', columns: [t.conversationId, t.sessionId] }),
    foreignKey({
      name: 'session_folders_session_fk',
      columns: [t.conversationId, t.sessionId],
      foreignColumns: [sessions.conversationId, sessions.sessionId],
    }).onDelete('cascade'),
  ],
);
