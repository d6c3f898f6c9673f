// pino logger with secrets redacted wherever they may appear in log objects.
import { pino, stdSerializers, type DestinationStream, type Logger } from 'pino';
import type { Config } from './config.js';
import { isQueryError, safeErrorMessage } from './errors.js';

export const REDACT_PATHS = [
  'apiKey',
  '*.apiKey',
  'authorization',
  '*.authorization',
  'headers.authorization',
  'headers["x-api-key"]',
  'env.ANTHROPIC_API_KEY',
  'env.ANTHROPIC_AUTH_TOKEN',
  '*.env.ANTHROPIC_API_KEY',
  '*.env.ANTHROPIC_AUTH_TOKEN',
  'AGENTQ_API_KEYS',
  '*.AGENTQ_API_KEYS',
  'databaseUrl',
  'redisUrl',
];

/**
 * pino's error serializer without what an error can carry of the data it failed on: a
 * failed query's parameters (drizzle puts them in the message and the stack; they hold
 * session bytes and whatever else an agent wrote) and Postgres' `detail` (key values).
 */
export function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return err;
  const out = stdSerializers.err(err) as unknown as Record<string, unknown>;
  for (let e: unknown = err, depth = 0; e instanceof Error && depth < 10; e = e.cause, depth++) {
    if (!isQueryError(e)) continue;
    const safe = safeErrorMessage(e);
    out.message = String(out.message).split(e.message).join(safe);
    out.stack = String(out.stack).split(e.message).join(safe);
  }
  delete out.params;
  delete out.detail;
  return out;
}

/** The logger every agentq process uses; `destination` (default stdout) for tests. */
export function createLogger(config: Pick<Config, 'logLevel'>, name = 'agentq', destination?: DestinationStream): Logger {
  const options = {
    name,
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: serializeError, error: serializeError },
  };
  return destination ? pino(options, destination) : pino(options);
}

export type { Logger };
