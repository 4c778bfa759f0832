import type { TargetOp, TargetTable } from '../core/target-op.js';
import type { TableStatements } from './statements.js';

export interface PlannedStatement {
  readonly sql: string;
  readonly params: unknown[];
  /** Operations this statement carries (for counting). */
  readonly rows: number;
  readonly table: TargetTable;
  readonly kind: 'upsert' | 'delete' | 'delete-where';
}

/**
 * How a chunk of operations becomes statements.
 * - `grouped`: the fast plan. Operations on one target row collapse to
 *   their net effect; then deletes run children first and upserts parents
 *   first, one statement per table (per column set). Correct for the usual
 *   ERP patterns (documents with lines, cancellations, edits).
 * - `ordered`: the exact plan. Consecutive runs of the same table and kind
 *   become one statement each, in source order. Used to redo a batch that the
 *   grouped plan could not apply (e.g. a unique value freed by a delete and
 *   taken by an insert in the same chunk).
 */
export type PlanMode = 'grouped' | 'ordered';

export interface PlanContext {
  statements(target: TargetTable): TableStatements;
  /** Position of a target table in parents-first order. */
  rank(target: TargetTable): number;
}

type NetOp = { kind: 'upsert'; key: readonly string[]; row: Record<string, string | null> } | { kind: 'delete'; key: readonly string[] };

const SEP = '\u0001';

/** A target as the plan groups it: table and key (two mappings may write one table by different keys). */
function tableId(t: TargetTable): string {
  return `${t.schema}.${t.table}|${t.key.join(',')}`;
}

export function planChunk(ops: readonly TargetOp[], mode: PlanMode, ctx: PlanContext): PlannedStatement[] {
  const out: PlannedStatement[] = [];
  // A delete-where (TRUNCATE) is a barrier in both plans: what came before
  // runs before it, what came after runs after it.
  let start = 0;
  for (let i = 0; i <= ops.length; i++) {
    const op = ops[i];
    if (i === ops.length || op?.kind === 'delete-where') {
      const segment = ops.slice(start, i);
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

/** Net effect per (table, key), in first-seen order per table. */
function collapse(ops: readonly TargetOp[]): Map<string, { target: TargetTable; rows: Map<string, NetOp> }> {
  const tables = new Map<string, { target: TargetTable; rows: Map<string, NetOp> }>();
  for (const op of ops) {
    if (op.kind === 'delete-where') continue;
    const id = tableId(op.target);
    let t = tables.get(id);
    if (!t) {
      t = { target: op.target, rows: new Map() };
      tables.set(id, t);
    }
    const k = op.key.length === 1 ? op.key[0]! : op.key.join(SEP);
    const prev = t.rows.get(k);
    if (op.kind === 'delete') {
      t.rows.set(k, { kind: 'delete', key: op.key });
    } else if (prev && prev.kind === 'upsert') {
      // Later values win; earlier ones fill what the later change did not
      // carry (unchanged TOAST values).
      t.rows.set(k, { kind: 'upsert', key: op.key, row: { ...prev.row, ...op.row } });
    } else {
      t.rows.set(k, { kind: 'upsert', key: op.key, row: op.row as Record<string, string | null> });
    }
  }
  return tables;
}

function planGrouped(ops: readonly TargetOp[], ctx: PlanContext, out: PlannedStatement[]): void {
  if (ops.length === 0) return;
  const tables = [...collapse(ops).values()].sort((a, b) => ctx.rank(a.target) - ctx.rank(b.target));
  // Deletes, children first.
  for (let i = tables.length - 1; i >= 0; i--) {
    const t = tables[i]!;
    const keys: (readonly string[])[] = [];
    for (const net of t.rows.values()) if (net.kind === 'delete') keys.push(net.key);
    if (keys.length) out.push(deleteStatement(t.target, keys, ctx));
  }
  // Upserts, parents first, one statement per column set.
  for (const t of tables) {
    const bySignature = new Map<string, { columns: string[]; rows: Record<string, string | null>[] }>();
    for (const net of t.rows.values()) {
      if (net.kind !== 'upsert') continue;
      const columns = Object.keys(net.row);
      const sig = columns.join(SEP);
      let g = bySignature.get(sig);
      if (!g) {
        g = { columns, rows: [] };
        bySignature.set(sig, g);
      }
      g.rows.push(net.row);
    }
    for (const g of bySignature.values()) out.push(upsertStatement(t.target, g.columns, g.rows, ctx));
  }
}

function planOrdered(ops: readonly TargetOp[], ctx: PlanContext, out: PlannedStatement[]): void {
  let i = 0;
  while (i < ops.length) {
    const first = ops[i]!;
    let j = i + 1;
    while (j < ops.length && ops[j]!.kind === first.kind && tableId(ops[j]!.target) === tableId(first.target)) j++;
    // Within a run of one table and one kind, collapsing cannot reorder anything that matters.
    const run = ops.slice(i, j);
    planGrouped(run, ctx, out);
    i = j;
  }
}

function deleteStatement(target: TargetTable, keys: readonly (readonly string[])[], ctx: PlanContext): PlannedStatement {
  const params = target.key.map((_, c) => keys.map((k) => k[c]));
  return { sql: ctx.statements(target).delete(), params, rows: keys.length, table: target, kind: 'delete' };
}

function upsertStatement(
  target: TargetTable,
  columns: readonly string[],
  rows: readonly Record<string, string | null>[],
  ctx: PlanContext,
): PlannedStatement {
  const params = columns.map((c) => rows.map((r) => r[c] ?? null));
  return { sql: ctx.statements(target).upsert(columns), params, rows: rows.length, table: target, kind: 'upsert' };
}
