// Retrying a commit while Postgres is unreachable. The job is not acknowledged until the
// commit succeeds (invariant 6 of docs/design.md), so the worker keeps the local session and tries
// again; a stale lease or a real error is not retried.
import type { Logger } from 'pino';
import { safeErrorMessage } from '../errors.js';

/** Connection-level failures: node socket errors and SQLSTATE classes 08 (connection) and 57 (shutdown). */
export function isTransientDbError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  if (!e) return false;
  const code = typeof e.code === 'string' ? e.code : '';
  if (['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN'].includes(code)) return true;
  if (/^(08|57)/.test(code)) return true;
  const message = typeof e.message === 'string' ? e.message : '';
  if (/Connection terminated|connect ECONNREFUSED|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error/i.test(message)) return true;
  return e.cause !== undefined && e.cause !== err && isTransientDbError(e.cause);
}

export async function withTransientRetry<T>(log: Logger, fn: () => Promise<T>, deadlineMs = 15 * 60 * 1000): Promise<T> {
  const deadline = Date.now() + deadlineMs;
  let delay = 200;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      if (!isTransientDbError(err) || Date.now() > deadline) throw err;
      log.warn({ err: safeErrorMessage(err), retryInMs: delay }, 'Postgres unreachable; retrying the write');
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5000);
    }
  }
}
