// `agentq dev`: the offline path for a first hour. Migrates the database, starts a worker
// whose CLI runs talk to the built-in mock model (AGENTQ_MODEL=mock: no key, no network,
// no cost) and the HTTP API with the viewer, then prints where to look and what to type
// next. Runs until SIGTERM/SIGINT: the first signal drains the worker and closes the API.
import { randomBytes } from 'node:crypto';
import { buildApi } from '../api/server.js';
import { pino } from 'pino';
import { loadConfig } from '../config.js';
import { createLogger } from '../logger.js';
import { migrate } from '../store/migrate.js';
import { createWorker } from '../worker/worker.js';
import type { CliIo } from './main.js';
import { stopWithNpmParent } from './parentWatch.js';

export interface DevOptions {
  port?: string;
  /** Resolves when dev should stop (tests); default: the first SIGTERM or SIGINT. */
  stop?: Promise<unknown>;
}

/** The commands printed for the next step: what a new user types in another terminal. */
export const DEV_NEXT_COMMANDS = [
  'npx agentq enqueue ticket-4812 "The customer says: my printer is on fire" --wait',
  'npx agentq show ticket-4812',
  'npx agentq transcript ticket-4812',
];

export async function devCommand(io: CliIo, opts: DevOptions = {}): Promise<number> {
  // A key for the API when none is configured: the viewer and the dashboard need one.
  const generatedKey = io.env.AGENTQ_API_KEYS ? undefined : `dev-${randomBytes(12).toString('hex')}`;
  const config = loadConfig({
    // Quiet by default: what to type matters here, not the info log.
    AGENTQ_LOG_LEVEL: 'warn',
    ...io.env,
    AGENTQ_MODEL: 'mock',
    ...(generatedKey ? { AGENTQ_API_KEYS: `${generatedKey}=default` } : {}),
  });
  const port = opts.port === undefined ? config.api.port : Number(opts.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    io.err(`--port must be a whole number from 0 to 65535 (got ${JSON.stringify(opts.port)})`);
    return 2;
  }
  const { applied } = await migrate(config.databaseUrl);
  if (applied.length) io.err(`migrated the database: ${applied.join(', ')}`);
  // Logs to stderr: stdout carries what to do next.
  const worker = createWorker(config, { log: createLogger(config, 'agentq', pino.destination(2)) });
  const api = await buildApi(config);
  let resolveStop = () => {};
  const signalled = new Promise<void>((resolve) => (resolveStop = resolve));
  const onSignal = (signal: NodeJS.Signals) => {
    io.err(`${signal}: stopping (running turns are drained)`);
    resolveStop();
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const unwatch = stopWithNpmParent(io.env);
  try {
    await worker.start();
    let address: string;
    try {
      address = await api.app.listen({ host: config.api.host, port });
    } catch (err) {
      io.err(`cannot listen on ${config.api.host}:${port}: ${(err as Error).message}; set AGENTQ_API_PORT or --port`);
      return 1;
    }
    const key = generatedKey ?? '<a token of AGENTQ_API_KEYS>';
    io.out(
      [
        'agentq dev: a worker and the HTTP API; CLI runs use the real Claude Code CLI against the built-in mock model (offline, no key, no cost)',
        `  API        ${address}   (Authorization: Bearer ${key})`,
        `  viewer     ${address}/viewer   (log in with ${key})`,
        `  dashboard  ${address}/admin/queues`,
        `  OpenAPI    ${address}/docs`,
        'Next, in another terminal:',
        ...DEV_NEXT_COMMANDS.map((c) => `  ${c}`),
        'Ctrl-C stops it.',
      ].join('\n'),
    );
    await Promise.race([signalled, opts.stop ?? new Promise(() => {})]);
    return 0;
  } finally {
    unwatch();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    await worker.stop().catch(() => undefined);
    await api.close().catch(() => undefined);
  }
}
