import { formatTable, type RowChange, type RowValues, type TableId } from '../core/change.js';
import { BranchlineError, type SourceLocation } from '../core/errors.js';
import type { TargetOp, TargetTable } from '../core/target-op.js';
import { assocRefs, tagAssociations, type CompiledColumn } from './compiled-table-mapping.js';
import type { AssocRef } from '../core/target-op.js';
import { RowEvalError } from './expr/runtime.js';
import { fillUnchanged, filterHolds, type CompiledFilter } from './row-filter.js';
import { mappingName, type CompiledMapping, type MappingContext } from './mapping.js';

/** One `sum(expression)` or `count()` column. */
export interface CompiledMeasure {
  readonly name: string;
  /** The summed value; null for count(), which adds 1 per row. */
  readonly value: CompiledColumn | null;
}

export interface CompiledAggregateMappingOptions {
  readonly file: string;
  readonly source: TableId;
  /** Its key is the grouping: one total row per key value. */
  readonly target: TargetTable;
  /** The key columns' expressions, in `target.key` order. */
  readonly keyColumns: readonly CompiledColumn[];
  readonly measures: readonly CompiledMeasure[];
  readonly filter: CompiledFilter | null;
  readonly keyLocation: SourceLocation;
}

type Row = Record<string, string | null>;

/**
 * An aggregate mapping: every source row counts toward the total of its key
 * at the target. An insert adds its values, a delete takes them back out,
 * an update does both (old row out, new row in), each only when the row
 * passes the filter, so a coupon cancelled after it was final takes its
 * quantities back out. Needs before-images (REPLICA IDENTITY FULL).
 *
 * The operations are additions, which commute and are summed per key by the
 * sink in the batch's transaction; the pipeline's position in that same
 * transaction keeps the totals exact through crashes and redelivery.
 */
export class CompiledAggregateMapping implements CompiledMapping {
  readonly file: string;
  readonly name: string;
  readonly associates: boolean;
  readonly source: TableId;
  readonly target: TargetTable;
  readonly columns: readonly string[];
  readonly aggregate = true;
  readonly effectiveAt = null;
  readonly labels = null;
  private readonly keyColumns: readonly CompiledColumn[];
  private readonly measures: readonly CompiledMeasure[];
  private readonly measureNames: readonly string[];
  private readonly filter: CompiledFilter | null;
  private readonly reads: readonly string[];
  private readonly keyLocation: SourceLocation;
  private readonly assoc: readonly AssocRef[] | null;

  constructor(options: CompiledAggregateMappingOptions) {
    this.file = options.file;
    this.name = mappingName(options.file);
    this.source = options.source;
    this.target = options.target;
    this.keyColumns = options.keyColumns;
    this.measures = options.measures;
    this.measureNames = options.measures.map((m) => m.name);
    this.columns = [...options.target.key, ...this.measureNames];
    this.filter = options.filter;
    this.keyLocation = options.keyLocation;
    this.assoc = assocRefs(options.keyColumns, options.target.key);
    this.associates = this.assoc !== null;
    this.reads = [
      ...new Set([
        ...options.keyColumns.flatMap((c) => c.reads),
        ...options.measures.flatMap((m) => m.value?.reads ?? []),
        ...(options.filter?.reads ?? []),
      ]),
    ];
  }

  map(change: Exclude<RowChange, { op: 'truncate' }>, ctx: MappingContext): TargetOp[] {
    const ops = this.mapRow(change, ctx);
    return this.assoc === null ? ops : tagAssociations(ops, this.assoc);
  }

  /** Additions commute: a parked one needs no later change kept behind it. */
  rowKeys(): string[][] {
    return [];
  }

  private mapRow(change: Exclude<RowChange, { op: 'truncate' }>, ctx: MappingContext): TargetOp[] {
    switch (change.op) {
      case 'insert':
        return this.passes(change.after, ctx, 'an insert') ? [this.add(change.after, ctx, false)] : [];
      case 'update': {
        const before = this.oldRow(change.before, 'an update');
        const after = fillUnchanged(change.after, before, this.reads);
        const ops: TargetOp[] = [];
        if (this.passes(before, ctx, 'an update')) ops.push(this.add(before, ctx, true));
        if (this.passes(after, ctx, 'an update')) ops.push(this.add(after, ctx, false));
        return ops;
      }
      case 'delete': {
        const before = this.oldRow(change.before, 'a delete');
        return this.passes(before, ctx, 'a delete') ? [this.add(before, ctx, true)] : [];
      }
    }
  }

  /** A TRUNCATE empties the source: this store's totals go (they would all be zero). */
  mapTruncate(ctx: MappingContext): TargetOp[] {
    const where: Record<string, string> = {};
    for (const c of this.keyColumns) {
      if (c.reads.length > 0) continue;
      const v = c.evaluate({}, ctx);
      if (v !== null) where[c.name] = v;
    }
    if (Object.keys(where).length === 0) {
      throw new BranchlineError({
        code: 'BL-M015',
        message: `a TRUNCATE of ${formatTable(this.source)} cannot be applied to the totals in ${this.targetName()}: no key column tells this store's totals apart from the others.`,
        hint: 'Add a key column mapped from store.code (e.g. "store_code: store.code") so a truncate removes only this store\'s totals.',
        location: this.keyLocation,
      });
    }
    return [{ kind: 'delete-where', target: this.target, where }];
  }

  /** The old row, which must be whole (REPLICA IDENTITY FULL) to be taken back out. */
  private oldRow(before: RowValues | undefined, what: string): RowValues {
    if (before !== undefined) {
      let whole = true;
      for (const r of this.reads) if (before[r] === undefined) whole = false;
      if (whole) return before;
    }
    throw new BranchlineError({
      code: 'BL-M015',
      message: `${what} of ${formatTable(this.source)} does not carry the old row, so ${this.file} cannot take its old values out of the totals in ${this.targetName()}.`,
      hint: `Run \`branchline install\`, or at the store: ALTER TABLE ${formatTable(this.source)} REPLICA IDENTITY FULL.`,
      location: this.keyLocation,
    });
  }

  private passes(row: RowValues, ctx: MappingContext, what: string): boolean {
    return this.filter === null || filterHolds(this.filter, row, ctx, this.source, this.file, what);
  }

  /** The row's contribution to its total: its values, negated when it is taken out. */
  private add(row: RowValues, ctx: MappingContext, out: boolean): TargetOp {
    const values: Row = {};
    const key = new Array<string>(this.keyColumns.length);
    for (let i = 0; i < this.keyColumns.length; i++) {
      const c = this.keyColumns[i]!;
      let v: string | null;
      try {
        v = c.evaluate(row, ctx);
      } catch (e) {
        throw this.rowError(e, `the expression for "${c.name}"`, c.location);
      }
      if (v === null)
        throw new BranchlineError({
          code: 'BL-M015',
          message: `key column "${c.name}" of ${this.targetName()} is null for a row of ${formatTable(this.source)}, so it belongs to no total.`,
          hint: 'Every key column needs a value: fix the row at the store, or make the expression give one (e.g. coalesce(x, ...)), or leave such rows out with the filter.',
          location: c.location,
        });
      key[i] = v;
      values[c.name] = v;
    }
    for (const m of this.measures) {
      if (m.value === null) {
        values[m.name] = out ? '-1' : '1';
        continue;
      }
      let v: string | null;
      try {
        v = m.value.evaluate(row, ctx);
      } catch (e) {
        throw this.rowError(e, `the expression for "${m.name}"`, m.value.location);
      }
      values[m.name] = v === null || !out ? v : negate(v);
    }
    return { kind: 'add', target: this.target, key, row: values, measures: this.measureNames };
  }

  private rowError(e: unknown, what: string, location: SourceLocation): unknown {
    if (!(e instanceof RowEvalError)) return e;
    return new BranchlineError({ code: 'BL-M015', message: `${what} failed on a row of ${formatTable(this.source)}: ${e.message}.`, hint: e.hint, location }, { cause: e });
  }

  private targetName(): string {
    return `${this.target.schema}.${this.target.table}`;
  }
}

/** -x for a number in PostgreSQL's text form (numeric, integer or float). */
export function negate(v: string): string {
  if (v.startsWith('-')) return v.slice(1);
  if (v === 'NaN') return v;
  return v.startsWith('+') ? `-${v.slice(1)}` : `-${v}`;
}
