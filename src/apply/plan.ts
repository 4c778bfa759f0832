import type { TargetOp, TargetTable } from '../core/target-op.js';
import { textArrayLiteral } from './array-literal.js';
import type { TableStatements } from './statements.js';

export interface PlannedStatement {
  readonly sql: string;
  /** One text[] literal per column (see array-literal.ts), or scalars for delete-where. */
  readonly params: unknown[];
  /** Operations this statement carries (for counting). */
  readonly rows: number;
  readonly table: TargetTable;
  readonly kind: 'insert' | 'upsert' | 'delete' | 'delete-where';
}

/**
 * How a chunk of operations becomes statements.
 * - `grouped`: the fast plan. Operations on one target row collapse to
 *   their net effect; then deletes run children first and upserts parents
 *   first, one statement per table (per column set). Rows the source
 *   inserted in this chunk (and that no delete in it preceded) go as plain
 *   INSERTs, cheaper than ON CONFLICT. Correct for the usual ERP patterns
 *   (documents with lines, cancellations, edits).
 * - `ordered`: the exact plan. Consecutive runs of the same table and kind
 *   become one statement each, in source order, upserts only. Used to redo a
 *   batch that the grouped plan could not apply (e.g. a unique value freed by
 *   a delete and taken by an insert in the same chunk, or a row HQ already
 *   had).
 */
export type PlanMode = 'grouped' | 'ordered';

export interface PlanContext {
  statements(target: TargetTable): TableStatements;
  /** Position of a target table in parents-first order. */
  rank(target: TargetTable): number;
}

type Upsert = Extract<TargetOp, { kind: 'upsert' }>;
type Net = Upsert | Extract<TargetOp, { kind: 'delete' }>;

interface TableGroup {
  readonly target: TargetTable;
  /** Net operation per key, in first-seen order. */
  readonly rows: Map<string, Net>;
}

const SEP = '\u0001';

/** A target as the plan groups it: table and key (two mappings may write one table by different keys). */
const ids = new WeakMap<TargetTable, string>();
function tableId(t: TargetTable): string {
  let id = ids.get(t);
  if (id === undefined) {
    id = `${t.schema}.${t.table}|${t.key.join(',')}`;
    ids.set(t, id);
  }
  return id;
}

export function planChunk(ops: readonly TargetOp[], mode: PlanMode, ctx: PlanContext): PlannedStatement[] {
  const out: PlannedStatement[] = [];
  // A delete-where (TRUNCATE) is a barrier in both plans: what came before
  // runs before it, what came after runs after it.
  let start = 0;
  for (let i = 0; i <= ops.length; i++) {
    const op = ops[i];
    if (i === ops.length || op?.kind === 'delete-where') {
      const segment = start === 0 && i === ops.length ? ops : ops.slice(start, i);
      if (mode === 'grouped') planGrouped(segment, ctx, out);
      else planOrdered(segment, ctx, out);
      if (op?.kind === 'delete-where') {
        const cols = Object.keys(op.where);
        out.push({
          sql: ctx.statements(op.target).deleteWhere(cols),
          params: cols.map((c) => op.where[c]),
          rows: 1,
          table: op.target,
          kind: 'delete-where',
        });
      }
      start = i + 1;
    }
  }
  return out;
}

/** Net effect per (table, key). */
function collapse(ops: readonly TargetOp[]): TableGroup[] {
  const tables = new Map<string, TableGroup>();
  let lastTarget: TargetTable | null = null;
  let group: TableGroup | null = null;
  for (const op of ops) {
    if (op.kind === 'delete-where') continue;
    if (op.target !== lastTarget) {
      const id = tableId(op.target);
      group = tables.get(id) ?? null;
      if (!group) {
        group = { target: op.target, rows: new Map() };
        tables.set(id, group);
      }
      lastTarget = op.target;
    }
    const rows = group!.rows;
    const k = op.key.length === 1 ? op.key[0]! : op.key.join(SEP);
    if (op.kind === 'delete') {
      rows.set(k, op);
      continue;
    }
    const prev = rows.get(k);
    if (prev === undefined) {
      rows.set(k, op);
    } else if (prev.kind === 'upsert') {
      // Later values win; earlier ones fill what the later change did not
      // carry (unchanged TOAST values). Same columns: the later row is whole.
      // A row born in this chunk stays new, whatever happened to it since.
      const same = prev.columns !== undefined && prev.columns === op.columns;
      const fresh = prev.fresh === true;
      if (same && (op.fresh === true) === fresh) rows.set(k, op);
      else if (same) rows.set(k, { ...op, fresh });
      else rows.set(k, { kind: 'upsert', target: op.target, key: op.key, row: { ...prev.row, ...op.row }, fresh });
    } else {
      // After a delete that the collapse drops, the row may still be at the target: never a plain insert.
      rows.set(k, op.fresh ? { ...op, fresh: false } : op);
    }
  }
  return [...tables.values()];
}

function planGrouped(ops: readonly TargetOp[], ctx: PlanContext, out: PlannedStatement[], plainInserts = true): void {
  if (ops.length === 0) return;
  const tables = collapse(ops).sort((a, b) => ctx.rank(a.target) - ctx.rank(b.target));
  // Deletes, children first.
  for (let i = tables.length - 1; i >= 0; i--) {
    const t = tables[i]!;
    const keys: (readonly string[])[] = [];
    for (const net of t.rows.values()) if (net.kind === 'delete') keys.push(net.key);
    if (keys.length) out.push(deleteStatement(t.target, keys, ctx));
  }
  // Inserts and upserts, parents first, one statement per kind and column set.
  for (const t of tables) {
    type Group = { insert: boolean; columns: readonly string[]; rows: Readonly<Record<string, string | null>>[] };
    const inserts = new Map<readonly string[] | string, Group>();
    const upserts = new Map<readonly string[] | string, Group>();
    for (const net of t.rows.values()) {
      if (net.kind !== 'upsert') continue;
      const insert = plainInserts && net.fresh === true;
      const groups = insert ? inserts : upserts;
      // Rows of one mapping share their column array: group by identity, no string building.
      let sig: readonly string[] | string;
      let columns: readonly string[];
      if (net.columns) {
        sig = net.columns;
        columns = net.columns;
      } else {
        columns = Object.keys(net.row);
        sig = columns.join(SEP);
      }
      let g = groups.get(sig);
      if (!g) {
        g = { insert, columns, rows: [] };
        groups.set(sig, g);
      }
      g.rows.push(net.row);
    }
    // Equal column sets reached through different arrays are still one statement.
    for (const groups of [inserts, upserts]) {
      const merged = new Map<string, Group>();
      for (const g of groups.values()) {
        const k = g.columns.join(SEP);
        const m = merged.get(k);
        if (m) m.rows.push(...g.rows);
        else merged.set(k, g);
      }
      for (const g of merged.values()) out.push(rowsStatement(t.target, g.insert, g.columns, g.rows, ctx));
    }
  }
}

function planOrdered(ops: readonly TargetOp[], ctx: PlanContext, out: PlannedStatement[]): void {
  let i = 0;
  while (i < ops.length) {
    const first = ops[i]!;
    let j = i + 1;
    while (j < ops.length && ops[j]!.kind === first.kind && tableId(ops[j]!.target) === tableId(first.target)) j++;
    // Within a run of one table and one kind, collapsing cannot reorder anything that matters.
    planGrouped(ops.slice(i, j), ctx, out, false);
    i = j;
  }
}

function deleteStatement(target: TargetTable, keys: readonly (readonly string[])[], ctx: PlanContext): PlannedStatement {
  const params = target.key.map((_, c) => textArrayLiteral(keys.map((k) => k[c])));
  return { sql: ctx.statements(target).delete(), params, rows: keys.length, table: target, kind: 'delete' };
}

function rowsStatement(
  target: TargetTable,
  insert: boolean,
  columns: readonly string[],
  rows: readonly Readonly<Record<string, string | null>>[],
  ctx: PlanContext,
): PlannedStatement {
  const params = new Array<string>(columns.length);
  const values = new Array<string | null>(rows.length);
  for (let c = 0; c < columns.length; c++) {
    const name = columns[c]!;
    for (let r = 0; r < rows.length; r++) values[r] = rows[r]![name] ?? null;
    params[c] = textArrayLiteral(values);
  }
  const statements = ctx.statements(target);
  return insert
    ? { sql: statements.insert(columns), params, rows: rows.length, table: target, kind: 'insert' }
    : { sql: statements.upsert(columns), params, rows: rows.length, table: target, kind: 'upsert' };
}
