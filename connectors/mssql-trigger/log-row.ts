import type { RowChange, RowValues, TableId } from '../../src/core/change.js';
import { formatTable } from '../../src/core/change.js';
import { normalizeValue, type TypeMapping } from './types.js';

/** A row of READ_SQL as the driver returns it (bigint as a string, binary(8) as a Buffer). */
export interface LogRow {
  readonly id: string;
  readonly rv: Buffer;
  readonly schema_name: string;
  readonly table_name: string;
  readonly op: 'i' | 'u' | 'd';
  /** The JSON object the trigger wrote: column → SQL Server's text, or null. */
  readonly before: string | null;
  readonly after: string | null;
  readonly logged_at: Date;
}

/** A captured table as the reader knows it: each column's mapping, null for one the table no longer has. */
export interface LoggedTable {
  readonly id: TableId;
  readonly types: ReadonlyMap<string, TypeMapping | null>;
}

type Logged = Record<string, string | null>;

function parse(json: string | null): Logged | null {
  return json === null ? null : (JSON.parse(json) as Logged);
}

/** The columns a log row names (what the reader must know the types of). */
export function loggedColumns(r: LogRow): string[] {
  return Object.keys(parse(r.after) ?? parse(r.before) ?? {});
}

/**
 * A log row as a change, its values in PostgreSQL's text form (types.ts);
 * a column the table no longer has is delivered as SQL Server wrote it.
 */
export function logRowChange(r: LogRow, t: LoggedTable): RowChange {
  const values = (json: string | null): RowValues => {
    const out: Record<string, string | null> = {};
    for (const [c, v] of Object.entries(parse(json) ?? {})) {
      const m = t.types.get(c);
      out[c] = m ? normalizeValue(m, formatTable(t.id), c, v) : v;
    }
    return out;
  };
  switch (r.op) {
    case 'i':
      return { op: 'insert', table: t.id, after: values(r.after) };
    case 'u':
      return { op: 'update', table: t.id, before: values(r.before), after: values(r.after) };
    case 'd':
      return { op: 'delete', table: t.id, before: values(r.before) };
  }
}
