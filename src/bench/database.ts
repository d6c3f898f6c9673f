// Throwaway databases of the benchmarks: the URL of another database on the same server,
// and one short-lived client for admin statements (create / drop database).
import pg from 'pg';

/** `base` with its database name replaced by `name`. */
export function databaseUrl(base: string, name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}

/** Runs `fn` on a client of its own, closed afterwards. */
export async function withDb<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** One statement on a client of its own. */
export async function adminQuery(url: string, text: string): Promise<void> {
  await withDb(url, (c) => c.query(text));
}
