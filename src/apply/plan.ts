import { TupleUpsert, upsertWith, type TargetOp, type TargetTable } from '../core/target-op.js';
import { CopyText } from './copy-rows.js';
import { textArrayLiteral } from './array-literal.js';
import type { TableStatements } from './statements.js';

export interface PlannedStatement {
  readonly sql: string;
  /** One text[] literal per column (see array-literal.ts), or scalars for delete-where; none for a COPY. */
  readonly params: unknown[];
  /** A `COPY ... FROM STDIN` statement: its rows in COPY text format (see copy-rows.ts). */
  readonly copy?: Buffer;
  /** Operations this statement carries (for counting). */
  readonly rows: number;
  readonly table: TargetTable;
  /** `insert-missing`: the sink counts rows the target already held (rows - rowCount) as ignored. */
  readonly kind: 'insert' | 'upsert' | 'insert-missing' | 'update' | 'add' | 'delete' | 'delete-where';
}

/** A chunk as statements, plus the changes a policy left out (counted, not written). */
export interface ChunkPlan {
  readonly statements: PlannedStatement[];
  readonly ignored: number;
}

/**
 * How a chunk of operations becomes statements.
 * - `grouped`: the fast plan. Operations on one target row collapse to
 *   their net effect; then deletes run children first and writes parents
 *   first, one statement per table (per kind and column set); aggregate
 *   additions last, summed per key. Rows the source inserted in this chunk
 *   (and that no delete in it preceded) go as plain INSERTs, cheaper than
 *   ON CONFLICT. Correct for the usual ERP patterns (documents with lines,
 *   cancellations, edits). A segment whose operations on one row cannot be
 *   collapsed exactly (say an insert_only row deleted by another mapping and
 *   created again) is planned `ordered` instead.
 * A TRUNCATE (delete-where) and a key change that must keep values the
 * change did not carry (move) are barriers in both plans.
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
  /**
   * False: rows a source inserted are written as upserts too, never as plain
   * INSERTs, because the target may hold them already. Default true.
   */
  readonly plainInserts?: boolean;
  /**
   * Rows a source inserted go to the target by `COPY ... FROM STDIN` when a
   * statement holds at least this many (cheaper for the target than an
   * INSERT of arrays, and from TupleRows the values are never strings).
   * Undefined: never.
   */
  readonly copyMinRows?: number;
}

type Keyed = Extract<TargetOp, { kind: 'upsert' | 'insert-missing' | 'update' | 'delete' }>;
type Add = Extract<TargetOp, { kind: 'add' }>;
type Row = Readonly<Record<string, string | null>>;
type Written = Extract<TargetOp, { kind: 'upsert' | 'insert-missing' | 'update' }>;

interface TableGroup {
  readonly target: TargetTable;
  /** Net operation per key, in first-seen order. */
  readonly rows: Map<string, Keyed>;
  /** Aggregate additions, in order (they commute). */
  readonly adds: Add[];
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

export function planChunk(ops: readonly TargetOp[], mode: PlanMode, ctx: PlanContext): ChunkPlan {
  const out: PlannedStatement[] = [];
  const counts = { ignored: 0 };
  // A delete-where (TRUNCATE) is a barrier in both plans: what came before
  // runs before it, what came after runs after it.
  let start = 0;
  for (let i = 0; i <= ops.length; i++) {
    const op = ops[i];
    if (i === ops.length || op?.kind === 'delete-where' || op?.kind === 'move') {
      const segment = start === 0 && i === ops.length ? ops : ops.slice(start, i);
      if (mode === 'grouped') planGrouped(segment, ctx, out, counts, ctx.plainInserts ?? true);
      else planOrdered(segment, ctx, out, counts);
      if (op?.kind === 'move') {
        // A barrier too: move in place, then write the row (which inserts it when HQ lacked the old one).
        const cols = op.columns ?? Object.keys(op.row);
        out.push({
          sql: ctx.statements(op.target).move(cols),
          params: [...op.from, ...cols.map((c) => op.row[c] ?? null)],
          rows: 1,
          table: op.target,
          kind: 'update',
        });
        out.push(rowsStatement(op.target, 'upsert', cols, [op], ctx));
      }
      if (op?.kind === 'delete-where') {
        const cols = Object.keys(op.where);
        const set = op.set;
        const setCols = set ? Object.keys(set) : [];
        out.push({
          sql: set ? ctx.statements(op.target).updateWhere(cols, setCols) : ctx.statements(op.target).deleteWhere(cols),
          params: [...cols.map((c) => op.where[c]), ...setCols.map((c) => set![c])],
          rows: 1,
          table: op.target,
          kind: 'delete-where',
        });
      }
      start = i + 1;
    }
  }
  return { statements: out, ignored: counts.ignored };
}

/** Net effect per (table, key); null when some row's operations cannot be collapsed exactly. */
function collapse(ops: readonly TargetOp[], counts: { ignored: number }): TableGroup[] | null {
  const tables = new Map<string, TableGroup>();
  let lastTarget: TargetTable | null = null;
  let group: TableGroup | null = null;
  let ignored = 0;
  for (const op of ops) {
    if (op.kind === 'delete-where' || op.kind === 'move') continue; // barriers, planned by planChunk
    if (op.kind === 'ignore') {
      ignored++;
      continue;
    }
    if (op.target !== lastTarget) {
      const id = tableId(op.target);
      group = tables.get(id) ?? null;
      if (!group) {
        group = { target: op.target, rows: new Map(), adds: [] };
        tables.set(id, group);
      }
      lastTarget = op.target;
    }
    if (op.kind === 'add') {
      group!.adds.push(op);
      continue;
    }
    const rows = group!.rows;
    const k = op.key.length === 1 ? op.key[0]! : op.key.join(SEP);
    const prev = rows.get(k);
    if (prev === undefined || op.kind === 'delete') {
      rows.set(k, op);
      continue;
    }
    const net = combine(prev, op);
    if (net === null) return null;
    if (net === prev && op.kind === 'insert-missing') ignored++; // the row exists by then: this one is left out
    rows.set(k, net);
  }
  counts.ignored += ignored;
  return [...tables.values()];
}

/** One operation with the effect of `prev` then `op` on one row, or null when there is none. */
function combine(prev: Keyed, op: Exclude<Keyed, { kind: 'delete' }>): Keyed | null {
  switch (op.kind) {
    case 'upsert': {
      if (prev.kind === 'delete') {
        // After a delete that the collapse drops, the row may still be at the target: never a plain insert.
        return op.fresh ? upsertWith(op, false) : op;
      }
      if (prev.kind !== 'upsert') return null;
      // Later values win; earlier ones fill what the later change did not
      // carry (unchanged TOAST values). Same columns: the later row is whole.
      // A row born in this chunk stays new, whatever happened to it since.
      const same = prev.columns !== undefined && prev.columns === op.columns;
      const fresh = prev.fresh === true;
      if (same && (op.fresh === true) === fresh) return op;
      if (same) return upsertWith(op, fresh);
      return { kind: 'upsert', target: op.target, key: op.key, row: { ...prev.row, ...op.row }, fresh };
    }
    case 'insert-missing':
      // The row exists once an upsert or an earlier insert-missing ran: this one changes nothing.
      return prev.kind === 'upsert' || prev.kind === 'insert-missing' ? prev : null;
    case 'update':
      if (prev.kind === 'delete') return prev; // nothing left to update
      if (prev.kind === 'upsert') return { kind: 'upsert', target: prev.target, key: prev.key, row: { ...prev.row, ...op.row }, fresh: prev.fresh === true };
      if (prev.kind === 'update') return { kind: 'update', target: op.target, key: op.key, row: { ...prev.row, ...op.row } };
      return null;
  }
}

function planGrouped(ops: readonly TargetOp[], ctx: PlanContext, out: PlannedStatement[], counts: { ignored: number }, plainInserts = true): void {
  if (ops.length === 0) return;
  const collapsed = collapse(ops, counts);
  if (collapsed === null) {
    planOrdered(ops, ctx, out, counts);
    return;
  }
  const tables = collapsed.sort((a, b) => ctx.rank(a.target) - ctx.rank(b.target));
  // Deletes, children first.
  for (let i = tables.length - 1; i >= 0; i--) {
    const t = tables[i]!;
    const keys: (readonly string[])[] = [];
    for (const net of t.rows.values()) if (net.kind === 'delete') keys.push(net.key);
    if (keys.length) out.push(deleteStatement(t.target, keys, ctx));
  }
  // Writes, parents first, one statement per kind and column set.
  for (const t of tables) {
    type Group = { kind: 'insert' | 'upsert' | 'insert-missing' | 'update'; columns: readonly string[]; ops: Written[] };
    const groups = { insert: new Map<readonly string[] | string, Group>(), upsert: new Map(), 'insert-missing': new Map(), update: new Map() } as Record<
      Group['kind'],
      Map<readonly string[] | string, Group>
    >;
    for (const net of t.rows.values()) {
      if (net.kind === 'delete') continue;
      const kind: Group['kind'] = net.kind === 'upsert' && plainInserts && net.fresh === true ? 'insert' : net.kind;
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
      const byColumns = groups[kind];
      let g = byColumns.get(sig);
      if (!g) {
        g = { kind, columns, ops: [] };
        byColumns.set(sig, g);
      }
      g.ops.push(net);
    }
    // Equal column sets reached through different arrays are still one statement.
    for (const byColumns of Object.values(groups)) {
      const merged = new Map<string, Group>();
      for (const g of byColumns.values()) {
        const k = g.columns.join(SEP);
        const m = merged.get(k);
        if (m) for (const op of g.ops) m.ops.push(op);
        else merged.set(k, g);
      }
      for (const g of merged.values()) out.push(rowsStatement(t.target, g.kind, g.columns, g.ops, ctx));
    }
  }
  // Aggregate additions, summed per key by the statement.
  for (const t of tables) {
    if (t.adds.length === 0) continue;
    const byMeasures = new Map<readonly string[], Add[]>();
    for (const a of t.adds) {
      const list = byMeasures.get(a.measures);
      if (list) list.push(a);
      else byMeasures.set(a.measures, [a]);
    }
    for (const [measures, adds] of byMeasures) {
      const columns = [...t.target.key, ...measures];
      out.push({
        sql: ctx.statements(t.target).add(measures),
        params: columnParams(
          columns,
          adds.map((a) => a.row),
        ),
        rows: adds.length,
        table: t.target,
        kind: 'add',
      });
    }
  }
}

function planOrdered(ops: readonly TargetOp[], ctx: PlanContext, out: PlannedStatement[], counts: { ignored: number }): void {
  let i = 0;
  while (i < ops.length) {
    const first = ops[i]!;
    let j = i + 1;
    while (j < ops.length && ops[j]!.kind === first.kind && tableId(ops[j]!.target) === tableId(first.target)) j++;
    // Within a run of one table and one kind, collapsing cannot reorder anything that matters.
    planGrouped(ops.slice(i, j), ctx, out, counts, false);
    i = j;
  }
}

function deleteStatement(target: TargetTable, keys: readonly (readonly string[])[], ctx: PlanContext): PlannedStatement {
  const params = target.key.map((_, c) => textArrayLiteral(keys.map((k) => k[c])));
  return { sql: ctx.statements(target).delete(), params, rows: keys.length, table: target, kind: 'delete' };
}

function rowsStatement(
  target: TargetTable,
  kind: 'insert' | 'upsert' | 'insert-missing' | 'update',
  columns: readonly string[],
  ops: readonly { readonly row: Row }[],
  ctx: PlanContext,
): PlannedStatement {
  const statements = ctx.statements(target);
  if (kind === 'insert' && ctx.copyMinRows !== undefined && ops.length >= ctx.copyMinRows && statements.copyAllowed) {
    return { sql: statements.copy(columns), params: [], copy: copyRows(columns, ops), rows: ops.length, table: target, kind };
  }
  const rows = new Array<Row>(ops.length);
  for (let i = 0; i < ops.length; i++) rows[i] = ops[i]!.row;
  const params = columnParams(columns, rows);
  const sql =
    kind === 'insert'
      ? statements.insert(columns)
      : kind === 'upsert'
        ? statements.upsert(columns)
        : kind === 'insert-missing'
          ? statements.insertMissing(columns)
          : statements.update(columns);
  return { sql, params, rows: rows.length, table: target, kind };
}

/** The rows in COPY text format, columns in `columns` order: a TupleUpsert of these columns straight from its bytes. */
function copyRows(columns: readonly string[], ops: readonly { readonly row: Row }[]): Buffer {
  const out = new CopyText(Math.max(1 << 12, ops.length * 16 * columns.length));
  const values = new Array<string | null>(columns.length);
  for (const op of ops) {
    if (op instanceof TupleUpsert && op.columns === columns) {
      out.tupleRow(op.tuple, op.plan.sources, op.plan.escaped);
      continue;
    }
    const row = op.row;
    for (let c = 0; c < columns.length; c++) values[c] = row[columns[c]!] ?? null;
    out.row(values);
  }
  return out.bytes();
}

/** One text[] literal per column, rows in order. */
function columnParams(columns: readonly string[], rows: readonly Row[]): string[] {
  const params = new Array<string>(columns.length);
  const values = new Array<string | null>(rows.length);
  for (let c = 0; c < columns.length; c++) {
    const name = columns[c]!;
    for (let r = 0; r < rows.length; r++) values[r] = rows[r]![name] ?? null;
    params[c] = textArrayLiteral(values);
  }
  return params;
}
