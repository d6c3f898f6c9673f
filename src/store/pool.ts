// The one way agentq opens a Postgres pool. A server that ends connections (a restart, a
// failover, an admin command) makes pg emit 'error' on idle clients (the pool's event)
// and on clients checked out between queries (the client's own event, which pg-pool does
// not listen to while the client is out). Unheard, either kills the process; the failed
// query itself still rejects and is handled where it was made.
import pg from 'pg';

export function createPool(connectionString: string, max: number, onError?: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({ connectionString, max });
  const report = onError ?? (() => undefined);
  pool.on('error', report);
  pool.on('connect', (client) => client.on('error', report));
  return pool;
}
