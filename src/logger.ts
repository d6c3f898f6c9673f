// pino logger with secrets redacted wherever they may appear in log objects.
import { pino, type Logger } from 'pino';
import type { Config } from './config.js';

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

export function createLogger(config: Pick<Config, 'logLevel'>, name = 'agentq'): Logger {
  return pino({ name, level: config.logLevel, redact: { paths: REDACT_PATHS, censor: '[redacted]' } });
}

export type { Logger };
