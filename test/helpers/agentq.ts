// An isolated agentq for a test: its own database (cloned from the migrated template),
// its own BullMQ queue name, workspace and runs roots, and the fake CLI.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { loadConfig, type Config } from '../../src/config.js';
import { fakeCliPath } from '../../src/testing/fakeCliPath.js';
import { createTestDatabase, type TestDatabase } from './db.js';

export const REDIS_URL = process.env.TEST_REDIS_URL || 'redis://127.0.0.1:6379';

export interface TestAgentq {
  env: Record<string, string>;
  config: Config;
  database: TestDatabase;
  root: string;
  /** The fake CLI's invocation log. */
  logFile: string;
  cleanup(): Promise<void>;
}

export async function createTestAgentq(overrides: Record<string, string> = {}): Promise<TestAgentq> {
  const database = await createTestDatabase();
  const root = mkdtempSync(path.join(os.tmpdir(), 'agentq-it-'));
  const logFile = path.join(root, 'fake-cli.log');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    DATABASE_URL: database.url,
    REDIS_URL,
    AGENTQ_QUEUE: `t-${randomBytes(6).toString('hex')}`,
    AGENTQ_CLAUDE_PATH: fakeCliPath(),
    AGENTQ_WORKSPACE_ROOT: path.join(root, 'workspaces'),
    AGENTQ_RUNS_ROOT: path.join(root, 'runs'),
    AGENTQ_CLI_ENV_ALLOW: 'FAKE_CLAUDE_LOG,FAKE_CLAUDE_SCRIPT',
    FAKE_CLAUDE_LOG: logFile,
    AGENTQ_LEASE_MS: '3000',
    AGENTQ_JOB_LOCK_MS: '2000',
    AGENTQ_CHECKPOINT_INTERVAL_MS: '200',
    AGENTQ_RETRY_BASE_MS: '100',
    AGENTQ_RETRY_MAX_MS: '500',
    AGENTQ_RECONCILE_INTERVAL_MS: '1000',
    AGENTQ_SHUTDOWN_GRACE_MS: '2000',
    AGENTQ_LOG_LEVEL: 'warn',
    // The fake CLI records every call to FAKE_CLAUDE_LOG, a host file the sandbox rightly
    // hides; isolation itself is tested in test/sandbox.realCli.test.ts.
    AGENTQ_SANDBOX: 'off',
    ...overrides,
  };
  const config = loadConfig(env);
  return {
    env,
    config,
    database,
    root,
    logFile,
    async cleanup() {
      const conn = new Redis(REDIS_URL, { maxRetriesPerRequest: null });
      // The turn queue and the schedule ticks' queue every worker starts.
      for (const name of [config.queueName, `${config.queueName}-schedules`]) {
        const q = new Queue(name, { connection: conn });
        await q.obliterate({ force: true }).catch(() => undefined);
        await q.close();
      }
      conn.disconnect();
      await database.drop();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
