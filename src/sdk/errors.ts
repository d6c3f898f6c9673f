// Errors of the Agent SDK adapter. Each has a stable `name` (checked across process
// boundaries) and a message that says what to do next.

/** No SDK session (or no conversation session) answers to what was named. */
export class SdkSessionNotFoundError extends Error {
  override readonly name = 'SdkSessionNotFoundError';
}

/**
 * A write would interleave with an agentq turn: the conversation holding the session has
 * a turn running (a live lease) or checkpointed lines of an interrupted attempt.
 */
export class SdkSessionBusyError extends Error {
  override readonly name = 'SdkSessionBusyError';
  constructor(
    readonly conversationId: string,
    reason: string,
  ) {
    super(`conversation ${conversationId} is busy: ${reason}; retry once its turn has ended`);
  }
}

/** An attach or resume mapping that would take a session from another conversation, or is ambiguous. */
export class SdkAttachConflictError extends Error {
  override readonly name = 'SdkAttachConflictError';
}
