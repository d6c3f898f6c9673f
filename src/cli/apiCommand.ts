// `agentq api`: serves the HTTP API on AGENTQ_API_HOST:AGENTQ_API_PORT (`--port` wins)
// until SIGTERM/SIGINT. The first signal stops accepting connections and lets requests in
// flight finish (up to CLOSE_GRACE_MS); a second one, or the deadline, cuts the remaining
// connections (long-lived event streams among them).
import { buildApi } from '../api/server.js';
import type { Config } from '../config.js';
import type { CliIo } from './main.js';
import { stopWithNpmParent } from './parentWatch.js';

/** How long open requests and streams may take to finish after the first signal. */
const CLOSE_GRACE_MS = 10_000;

export interface ApiCommandOptions {
  /**
   * Resolves when the server should stop. Default: the first SIGTERM or SIGINT. (Tests
   * pass their own, so they need not signal the test runner's process.)
   */
  stop?: Promise<unknown>;
}

function parsePort(value: string | undefined, fallback: number): number | undefined {
  if (value === undefined) return fallback;
  if (!/^\d{1,5}$/.test(value)) return undefined;
  const port = Number(value);
  return port <= 65535 ? port : undefined;
}

export async function apiCommand(config: Config, io: CliIo, flags: { port?: string }, options: ApiCommandOptions = {}): Promise<number> {
  const port = parsePort(flags.port, config.api.port);
  if (port === undefined) {
    io.err(`--port must be a whole number from 0 to 65535 (got ${JSON.stringify(flags.port)})`);
    return 2;
  }
  if (config.api.keys.length === 0) io.err('warning: AGENTQ_API_KEYS is empty, so every /v1 request gets 401');

  const api = await buildApi(config);
  let signals = 0;
  let forceClose = () => {};
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    io.err(`${signal}: ${signals === 1 ? 'closing (requests in flight may finish)' : 'closing every connection now'}`);
    if (signals === 1) resolveStop();
    else forceClose();
  };
  let resolveStop = () => {};
  const signalled = new Promise<void>((resolve) => (resolveStop = resolve));
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  const unwatch = stopWithNpmParent(io.env);
  try {
    let address: string;
    try {
      address = await api.app.listen({ host: config.api.host, port });
    } catch (err) {
      io.err(`cannot listen on ${config.api.host}:${port}: ${(err as Error).message}`);
      await api.close();
      return 1;
    }
    io.err(`agentq api listening on ${address} (OpenAPI: ${address}/docs)`);
    await Promise.race([signalled, options.stop ?? new Promise(() => {})]);

    const server = api.app.server;
    forceClose = () => server.closeAllConnections();
    const deadline = setTimeout(forceClose, CLOSE_GRACE_MS);
    deadline.unref();
    try {
      await api.close();
    } finally {
      clearTimeout(deadline);
    }
    io.err('agentq api stopped');
    return 0;
  } finally {
    unwatch();
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
  }
}
