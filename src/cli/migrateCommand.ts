// `agentq migrate`: applies pending migrations, or with --status reports without changing.
import type { Config } from '../config.js';
import { migrate, schemaStatus } from '../store/migrate.js';
import type { CliIo } from './main.js';

export async function migrateCommand(config: Config, io: CliIo, opts: { status?: boolean; json?: boolean }): Promise<number> {
  if (opts.status) {
    const status = await schemaStatus(config.databaseUrl);
    if (opts.json) io.out(JSON.stringify(status));
    else if (status.current) io.out(`schema current (${status.appliedCount} migrations applied)`);
    else if (status.unknown.length > 0) io.out('the database schema is newer than this agentq: upgrade agentq');
    else io.out(`pending migrations: ${status.pending.join(', ')}`);
    return status.current ? 0 : 1;
  }
  const { applied } = await migrate(config.databaseUrl);
  if (opts.json) io.out(JSON.stringify({ applied }));
  else io.out(applied.length === 0 ? 'nothing to apply: the schema is current' : `applied: ${applied.join(', ')}`);
  return 0;
}
