// `agentq attach <conversation> <sessionId> [--tenant t] [--project-key k] [--json]`: an
// Agent SDK session stored through agentq's sessionStore becomes the conversation's
// current session; the next `agentq enqueue` on it continues that session.
import type { Config } from '../config.js';
import { StoreInputError } from '../errors.js';
import { attachSdkSession } from '../sdk/attach.js';
import { SdkAttachConflictError, SdkSessionBusyError, SdkSessionNotFoundError } from '../sdk/errors.js';
import { createStoreDb } from '../store/db.js';
import { createPool } from '../store/pool.js';
import type { CliIo } from './main.js';

export interface AttachFlags {
  tenant?: string;
  projectKey?: string;
  json?: boolean;
}

export async function attachCommand(config: Config, io: CliIo, conversation: string, sessionId: string, flags: AttachFlags): Promise<number> {
  const pool = createPool(config.databaseUrl, 2);
  try {
    const result = await attachSdkSession(createStoreDb(pool), {
      conversationId: conversation,
      sessionId,
      ...(flags.tenant !== undefined ? { tenantId: flags.tenant } : {}),
      ...(flags.projectKey !== undefined ? { projectKey: flags.projectKey } : {}),
    });
    if (flags.json) io.out(JSON.stringify(result));
    else {
      io.out(
        `session ${result.sessionId} (${result.lines} lines) is now the current session of ${result.conversationId}` +
          `${result.moved ? '' : ' (it already was in it)'}; the next turn enqueued on it continues it`,
      );
    }
    return 0;
  } catch (err) {
    // Bad ids: exit 2 like the other commands; a session that cannot be attached now: 1.
    if (err instanceof StoreInputError) {
      io.err(err.message);
      return 2;
    }
    if (err instanceof SdkSessionNotFoundError || err instanceof SdkAttachConflictError || err instanceof SdkSessionBusyError) {
      io.err(err.message);
      return 1;
    }
    throw err;
  } finally {
    await pool.end();
  }
}
