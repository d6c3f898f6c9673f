// `agentq doctor`: checks that each thing a worker needs answers, and says what to do
// when one does not.
import { execa } from 'execa';
import { Redis } from 'ioredis';
import pg from 'pg';
import type { Config } from '../config.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const TIMEOUT_MS = 10_000;

async function checkCli(config: Config): Promise<Check> {
  const r = await execa(config.claudePath, ['--version'], {
    reject: false,
    timeout: TIMEOUT_MS,
    stdin: 'ignore',
    env: { ...config.cli.env },
    extendEnv: false,
  });
  if (r.exitCode === 0) return { name: 'claude CLI', ok: true, detail: `${r.stdout.trim()} at ${config.claudePath}` };
  return {
    name: 'claude CLI',
    ok: false,
    detail: `${config.claudePath} did not run (${r.shortMessage}); set AGENTQ_CLAUDE_PATH or reinstall @anthropic-ai/claude-code`,
  };
}

async function checkPostgres(config: Config): Promise<Check> {
  const client = new pg.Client({ connectionString: config.databaseUrl, connectionTimeoutMillis: TIMEOUT_MS });
  try {
    await client.connect();
    const r = await client.query<{ v: string }>('select version() as v');
    return { name: 'postgres', ok: true, detail: r.rows[0]?.v.split(' on ')[0] ?? 'connected' };
  } catch (err) {
    return { name: 'postgres', ok: false, detail: `cannot reach DATABASE_URL: ${(err as Error).message}` };
  } finally {
    await client.end().catch(() => undefined);
  }
}

async function checkRedis(config: Config): Promise<Check> {
  const redis = new Redis(config.redisUrl, {
    lazyConnect: true,
    connectTimeout: TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  try {
    await redis.connect();
    const info = await redis.info('server');
    const version = /redis_version:(\S+)/.exec(info)?.[1] ?? '?';
    return { name: 'redis', ok: true, detail: `redis ${version}` };
  } catch (err) {
    return { name: 'redis', ok: false, detail: `cannot reach REDIS_URL: ${(err as Error).message}` };
  } finally {
    redis.disconnect();
  }
}

export async function runDoctor(config: Config): Promise<Check[]> {
  return Promise.all([checkCli(config), checkPostgres(config), checkRedis(config)]);
}
