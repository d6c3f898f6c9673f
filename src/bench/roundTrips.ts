// Counts the Postgres round trips (node-postgres `Client#query` calls: every statement,
// BEGIN and COMMIT is one) and the Redis commands (ioredis `sendCommand`) this process
// makes while a counter is on, for pg_round_trips_per_turn and redis_commands_per_turn.
// Everything in the process counts: the worker, the producer, and the benchmark's own
// reads (its QueueEvents XREAD), which the floor pays the same way.
import pg from 'pg';
import { Redis } from 'ioredis';

export interface Counts {
  pg: number;
  redis: number;
}

let active: Counts | undefined;
let installed = false;

function install(): void {
  if (installed) return;
  installed = true;
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
    if (active) active.pg++;
    return query.apply(this, args);
  } as typeof pg.Client.prototype.query;
  const send = Redis.prototype.sendCommand as (...args: unknown[]) => unknown;
  Redis.prototype.sendCommand = function (this: Redis, ...args: unknown[]) {
    if (active) active.redis++;
    return send.apply(this, args);
  } as typeof Redis.prototype.sendCommand;
}

/** Runs `fn` while counting; one counter at a time. */
export async function counted<T>(fn: () => Promise<T>): Promise<{ value: T; counts: Counts }> {
  install();
  if (active) throw new Error('round trips are already being counted');
  const counts: Counts = { pg: 0, redis: 0 };
  active = counts;
  try {
    return { value: await fn(), counts };
  } finally {
    active = undefined;
  }
}
