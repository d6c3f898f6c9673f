// Named error classes. Each has a stable `name` (checked across process boundaries as
// well as with instanceof) and a message that says what to do next.

/** A configuration value is invalid; start-up stops. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    message: string,
    /** The environment variables that failed validation. */
    readonly variables: readonly string[],
  ) {
    super(message);
  }
}

/** Options handed to the runner are invalid (a bad field, not a CLI failure). */
export class RunOptionsError extends Error {
  override readonly name = 'RunOptionsError';
  constructor(
    message: string,
    readonly fields: readonly string[],
  ) {
    super(message);
  }
}

/**
 * The database has migrations applied that this version of agentq does not know: it was
 * migrated by a newer agentq. Continuing could corrupt data written by the newer code.
 */
export class SchemaTooNewError extends Error {
  override readonly name = 'SchemaTooNewError';
  constructor(
    /** Applied migrations (by their created_at millis) unknown to this build. */
    readonly unknownMigrations: readonly number[],
    /** The newest migration this build knows. */
    readonly latestKnown: number | null,
  ) {
    super(
      `The database schema is newer than this agentq: ${unknownMigrations.length} applied migration(s) are unknown ` +
        `to it (newest known: ${latestKnown ?? 'none'}). Upgrade agentq to the version that migrated this database ` +
        'before continuing; do not run this version against it.',
    );
  }
}

/** The applied migration history does not match the migration files (a file edited or removed after it ran). */
export class MigrationHistoryError extends Error {
  override readonly name = 'MigrationHistoryError';
  constructor(message: string) {
    super(`${message}. Migrations are append-only: restore the original file, or add a new migration instead.`);
  }
}

/** A value supplied by a caller is invalid; `field` names it. Not retryable. */
export class StoreInputError extends Error {
  override readonly name = 'StoreInputError';
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
  }
}

/** A session line is longer than AGENTQ_SESSION_MAX_LINE_BYTES; nothing of that persist call was stored. */
export class SessionLineTooLongError extends Error {
  override readonly name = 'SessionLineTooLongError';
  constructor(
    readonly sessionId: string,
    /** 1-based line number within the session file. */
    readonly lineNumber: number,
    /** Bytes seen so far (the line may be longer still if it is not yet complete). */
    readonly lineBytes: number,
    readonly maxLineBytes: number,
  ) {
    super(
      `Session ${sessionId}: line ${lineNumber} is at least ${lineBytes} bytes, over the cap of ${maxLineBytes} ` +
        '(AGENTQ_SESSION_MAX_LINE_BYTES). Nothing of this persist call was stored; raise the cap if such lines are expected.',
    );
  }
}

/**
 * The local session file does not continue the stored session: it is shorter than what is
 * stored, or its bytes before the stored head differ. Persisting it would corrupt the
 * stored session, so nothing was stored.
 */
export class SessionDivergedError extends Error {
  override readonly name = 'SessionDivergedError';
  constructor(
    readonly sessionId: string,
    readonly filePath: string,
    detail: string,
  ) {
    super(
      `Session ${sessionId}: ${filePath} does not continue the stored session (${detail}). Nothing was stored. ` +
        'Hydrate the session again (after discardUncommitted if an abandoned attempt left checkpoints) and rerun the turn.',
    );
  }
}

/** No stored session with this id exists for the conversation. */
export class SessionNotFoundError extends Error {
  override readonly name = 'SessionNotFoundError';
  constructor(
    readonly conversationId: string,
    readonly sessionId: string,
  ) {
    super(
      `Conversation ${conversationId} has no stored session ${sessionId}. Apply the missing-session policy ` +
        '(fail the turn, or start a fresh session).',
    );
  }
}

/** Stored session chunks are inconsistent (a gap, a wrong length, a bad checksum): the stored data is damaged. */
export class SessionCorruptError extends Error {
  override readonly name = 'SessionCorruptError';
  constructor(
    readonly sessionId: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`Stored session ${sessionId} is damaged: ${detail}. Restore the database from a backup; do not resume this session.`, options);
  }
}

/**
 * Another attempt wrote to the session's uncommitted tail after this attempt did: the
 * fencing of attempts failed. Nothing was committed.
 */
export class SessionAttemptConflictError extends Error {
  override readonly name = 'SessionAttemptConflictError';
  constructor(
    readonly sessionId: string,
    readonly attempt: string,
    readonly otherAttempt: string,
  ) {
    super(
      `Session ${sessionId}: attempt ${otherAttempt} appended lines after attempt ${attempt}, which is committing. ` +
        'Two attempts ran at once; check that every write of an attempt checks its fencing token. Nothing was committed.',
    );
  }
}

/**
 * The workspace holds more bytes than AGENTQ_WORKSPACE_MAX_BYTES (or more entries than
 * AGENTQ_WORKSPACE_MAX_ENTRIES, or is deeper than 64 levels); nothing was archived or stored.
 */
export class WorkspaceTooLargeError extends Error {
  override readonly name = 'WorkspaceTooLargeError';
  constructor(
    readonly dir: string,
    /** Bytes of regular files found so far (the walk stops at the cap). */
    readonly sizeBytes: number,
    readonly maxBytes: number,
    /** Set when a cap other than the bytes' stopped the walk (entries, depth): what it found. */
    readonly detail?: string,
  ) {
    super(
      detail === undefined
        ? `Workspace ${dir} holds at least ${sizeBytes} bytes of files, over the cap of ${maxBytes} (AGENTQ_WORKSPACE_MAX_BYTES). ` +
            'Nothing was stored: delete large files from the workspace, add them to AGENTQ_WORKSPACE_EXCLUDE, or raise the cap.'
        : `Workspace ${dir} is over a cap: ${detail} Nothing was stored: delete files from the workspace, add them to ` +
            'AGENTQ_WORKSPACE_EXCLUDE, or raise AGENTQ_WORKSPACE_MAX_ENTRIES / AGENTQ_WORKSPACE_MAX_BYTES.',
    );
  }
}

/** Why a path the agent could have written was not read (src/agentFiles/agentTree.ts). */
export type AgentFileRefusal = 'symlink' | 'not_regular' | 'too_large' | 'too_many_entries' | 'too_deep' | 'outside_root';

/**
 * A file or tree the agent could have written was not read: it is (or passes through) a
 * symbolic link, is not a regular file, or is over a cap. Nothing of it was read or stored.
 * Raised for hostile or broken agent output, never for the worker's own faults.
 */
export class AgentFileRefusedError extends Error {
  override readonly name = 'AgentFileRefusedError';
  constructor(
    /** The path beneath its root (the agent's view, never a host path). */
    readonly relPath: string,
    readonly reason: AgentFileRefusal,
    detail: string,
    /** too_large: the bytes counted when the cap was passed. */
    readonly bytes?: number,
  ) {
    super(
      `${relPath || '.'}: not read (${reason}: ${detail}). The worker reads what an agent wrote only as regular files ` +
        'beneath its directories, never through a link, and within the caps (AGENTQ_SESSION_MAX_BYTES, AGENTQ_WORKSPACE_MAX_BYTES, AGENTQ_WORKSPACE_MAX_ENTRIES); nothing of it was stored.',
    );
  }
}

/**
 * A session append found the stored head elsewhere than where it had locked it: the
 * "no gap, no duplicate" guard refused the write. Nothing of the call was stored; a
 * retry re-reads the head.
 */
export class SessionConflictError extends Error {
  override readonly name = 'SessionConflictError';
  constructor(
    readonly sessionId: string,
    readonly expectedLine: number,
  ) {
    super(`Session ${sessionId}: the stored head is no longer at line ${expectedLine}; another writer appended. Retry the persist.`);
  }
}

/**
 * An attempt's write was refused because its lease is no longer current: another worker
 * took the conversation over (this one froze or lost its lease). Nothing was written;
 * the attempt must stop.
 */
export class StaleLeaseError extends Error {
  override readonly name = 'StaleLeaseError';
  constructor(
    readonly conversationId: string,
    readonly heldToken: number,
    readonly currentToken: number,
  ) {
    super(
      `the lease on conversation ${conversationId} moved on (token ${heldToken} is stale, current ${currentToken}); this attempt must stop without writing`,
    );
  }
}

/** An enqueued turn is invalid; `fields` names each bad field. Nothing was stored. */
export class TurnInputError extends Error {
  override readonly name = 'TurnInputError';
  constructor(
    message: string,
    readonly fields: readonly string[],
  ) {
    super(message);
  }
}

/** A decision on an approval that is not valid (docs/approvals.md "Deciding"); `fields` names what is wrong. */
export class ApprovalInputError extends Error {
  override readonly name = 'ApprovalInputError';
  constructor(
    message: string,
    readonly fields: readonly string[],
  ) {
    super(message);
  }
}

/**
 * Postgres has no table or column a query needed: the database was never migrated, or
 * is behind this agentq. `cause` is the database error.
 */
export class SchemaNotMigratedError extends Error {
  override readonly name = 'SchemaNotMigratedError';
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`The database schema is not current (${detail}): run \`agentq migrate\` (\`agentq migrate --status\` lists what is pending).`, options);
  }
}

/** Postgres error codes of a missing table, column or function. */
const MISSING_SCHEMA_CODES = new Set(['42P01', '42703', '42883']);

/**
 * The SchemaNotMigratedError for an error a query threw (drizzle wraps pg's error in
 * `cause`), or undefined when it is something else.
 */
export function asSchemaNotMigrated(err: unknown): SchemaNotMigratedError | undefined {
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && MISSING_SCHEMA_CODES.has(code)) return new SchemaNotMigratedError(e.message, { cause: err });
  }
  return undefined;
}

/** AGENTQ_SANDBOX=bwrap and bubblewrap cannot isolate runs on this machine: the worker does not start. */
export class SandboxUnavailableError extends Error {
  override readonly name = 'SandboxUnavailableError';
  constructor(readonly reason: string) {
    super(
      `AGENTQ_SANDBOX=bwrap but the sandbox does not work here: ${reason}. Install bubblewrap and socat, allow user namespaces in the container (see docs/sandbox.md; \`agentq doctor\` checks it), or set AGENTQ_SANDBOX=auto.`,
    );
  }
}

/** AGENTQ_RUN_* limits are set but this machine's cgroups cannot enforce them: the worker does not start. */
export class CgroupsUnavailableError extends Error {
  override readonly name = 'CgroupsUnavailableError';
  constructor(
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(
      `AGENTQ_RUN_MEMORY_MAX_MB / AGENTQ_RUN_PIDS_MAX / AGENTQ_RUN_CPU_MAX are set but cannot be enforced here: ${reason}. Run the worker where it may create cgroups (root with a writable /sys/fs/cgroup, or a delegated cgroup v2 subtree; see docs/sandbox.md), or unset them.`,
      options,
    );
  }
}

/** Longest error text stored on a turn or logged as a string. */
const SAFE_MESSAGE_MAX = 2000;

/**
 * An error's message fit to log or store on a turn. drizzle's DrizzleQueryError puts the
 * failed query's parameters in its message (session bytes, file contents, whatever an
 * agent wrote); only the query's start and Postgres' own reason are kept of it.
 */
export function safeErrorMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err).slice(0, SAFE_MESSAGE_MAX);
  let text = err.message;
  if (isQueryError(err)) {
    const cause = err.cause instanceof Error ? `: ${err.cause.message}` : '';
    text = `Failed query: ${String(err.query).replace(/\s+/g, ' ').slice(0, 120)}${cause}`;
  }
  return text.length > SAFE_MESSAGE_MAX ? `${text.slice(0, SAFE_MESSAGE_MAX)}…` : text;
}

/** drizzle's DrizzleQueryError (matched by shape: the store never imports drizzle's errors here). */
export function isQueryError(err: unknown): err is Error & { query: unknown; params: unknown } {
  return err instanceof Error && 'query' in err && 'params' in err;
}
