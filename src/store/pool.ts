// The one way agentq opens a Postgres pool. A server that ends connections (a restart, a
// failover, an admin command) makes pg emit 'error' on idle clients (the pool's event)
// and on clients checked out between queries (the client's own event, which pg-pool does
// not listen to while the client is out). Unheard, either kills the process; the failed
// query itself still rejects and is handled where it was made.
import pg from 'pg';

/** A Postgres that stops answering without closing connections must not stall a worker forever. */
const CONNECT_TIMEOUT_MS = 10_000;
const QUERY_TIMEOUT_MS = 120_000;

export function createPool(connectionString: string, max: number, onError?: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({ connectionString, max, connectionTimeoutMillis: CONNECT_TIMEOUT_MS, query_timeout: QUERY_TIMEOUT_MS });
  const report = onError ?? (() => undefined);
  pool.on('error', report);
  pool.on('connect', (client) => client.on('error', report));
  return pool;
}
