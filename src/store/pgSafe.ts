// Postgres refusing a value for what it is, not for where the database is: a NUL in text,
// a string too long for an index, a row over a size limit. Such a write fails the same way
// every time, so retrying it (as one does when Postgres is away) only loops.

/** SQLSTATE classes of refused data: 22 data exception, 54 program limit exceeded. */
const REFUSED_DATA = /^(22|54)/;

/** True when `err` (or an error it wraps) is Postgres refusing the data itself. */
export function isDataRefusal(err: unknown): boolean {
  for (let e = err as { code?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && e.code.length === 5 && REFUSED_DATA.test(e.code)) return true;
  }
  return false;
}

/** The SQLSTATE and detail of the Postgres error `err` is or wraps (drizzle wraps them), if any. */
export function pgErrorOf(err: unknown): { code: string; detail: string | undefined } | undefined {
  for (let e = err as { code?: unknown; detail?: unknown; cause?: unknown } | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (typeof e.code === 'string' && e.code.length === 5) return { code: e.code, detail: typeof e.detail === 'string' ? e.detail : undefined };
  }
  return undefined;
}

/**
 * `s` as Postgres text can hold it: NUL (which text refuses, and jsonb refuses as `\u0000`)
 * becomes U+FFFD. For what the CLI or the model says (a result, a message), which an agent
 * can make hold anything.
 */
export function pgText(s: string): string;
export function pgText(s: string | null | undefined): string | null | undefined;
export function pgText(s: string | null | undefined): string | null | undefined {
  return s?.includes('\0') ? s.replace(/\0/g, '\uFFFD') : s;
}

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/**
 * pgText, and a lone UTF-16 surrogate (JSON.parse makes one of `"\ud800"`) as U+FFFD: as a
 * text parameter it becomes that in UTF-8 anyway, but inside JSON sent for a jsonb
 * parameter it would be the escape `\ud800`, which jsonb refuses.
 */
export function pgJsonText(s: string): string {
  return pgText(s).replace(LONE_SURROGATE, '\uFFFD');
}

/** A JSON value for a jsonb column, with pgText applied to every string (keys too). */
export function pgJson<T>(value: T): T {
  if (typeof value === 'string') return pgText(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => pgJson(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value as Record<string, unknown>).map(([k, v]) => [pgText(k), pgJson(v)])) as T;
  }
  return value;
}
