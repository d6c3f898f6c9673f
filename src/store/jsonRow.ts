// Rows that come back from the protocol functions (migrations/0012_protocol_functions.sql)
// as jsonb, turned into the row types drizzle gives for the same table: keys by column,
// timestamps as Date, numerics as the text the function put in (no digit lost), bigints
// as numbers, json columns as they are.
import { getTableColumns, type Table } from 'drizzle-orm';

/** `json` (a row of `table` as to_jsonb gives it) as drizzle's select type of `table`. */
export function rowFromJson<T extends Table>(table: T, json: Record<string, unknown>): T['$inferSelect'] {
  const out: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(getTableColumns(table))) {
    if (!(column.name in json)) throw new Error(`a protocol function returned a row without the column ${column.name}`);
    const value = json[column.name];
    if (value === null || value === undefined) out[key] = null;
    else if (column.columnType === 'PgTimestamp') out[key] = new Date(value as string);
    else if (column.columnType === 'PgBigInt53') out[key] = Number(value);
    else out[key] = value;
  }
  return out as T['$inferSelect'];
}
