import { formatTable, type RowChange, type RowValues, type TableId } from '../core/change.js';
import { BranchlineError, type SourceLocation } from '../core/errors.js';
import type { TargetOp, TargetTable } from '../core/target-op.js';
import { RowEvalError, type Eval } from './expr/runtime.js';
import type { CompiledMapping, MappingContext } from './mapping.js';

/** One target column of a compiled mapping. */
export interface CompiledColumn {
  /** Target column. */
  readonly name: string;
  /** The source column when the expression is just that column: copied with one property read. */
  readonly bare: string | null;
  /** Source columns the expression reads; if one is absent from the row (unchanged TOAST), so is the result. */
  readonly reads: readonly string[];
  readonly evaluate: Eval;
  /** Where the expression is written, for BL-M015. */
  readonly location: SourceLocation;
}

export interface CompiledTableMappingOptions {
  readonly file: string;
  readonly source: TableId;
  readonly target: TargetTable;
  /** In file order; every name of `target.key` is among them. */
  readonly columns: readonly CompiledColumn[];
  /** Where a truncate problem is reported (the `key` or `target` setting). */
  readonly keyLocation: SourceLocation;
}

type Row = Record<string, string | null>;

/**
 * A mapping file compiled to closures: `map` runs per row on the hot path,
 * so it does no parsing and allocates only the operations it returns (and a
 * merged row when REPLICA IDENTITY FULL fills unchanged TOAST values).
 */
export class CompiledTableMapping implements CompiledMapping {
  readonly file: string;
  readonly source: TableId;
  readonly target: TargetTable;
  readonly columns: readonly string[];
  private readonly cols: readonly CompiledColumn[];
  private readonly keyCols: readonly CompiledColumn[];
  /** Every source column any expression reads (for filling `after` from `before`). */
  private readonly reads: readonly string[];
  private readonly keyLocation: SourceLocation;
  private lastComplete = true;

  constructor(options: CompiledTableMappingOptions) {
    this.file = options.file;
    this.source = options.source;
    this.target = options.target;
    this.cols = options.columns;
    this.columns = options.columns.map((c) => c.name);
    this.keyCols = options.target.key.map((k) => {
      const c = options.columns.find((x) => x.name === k);
      if (!c) throw new Error(`internal: key column ${k} of ${options.file} is not mapped`);
      return c;
    });
    this.reads = [...new Set(options.columns.flatMap((c) => c.reads))];
    this.keyLocation = options.keyLocation;
  }

  map(change: Exclude<RowChange, { op: 'truncate' }>, ctx: MappingContext): TargetOp[] {
    switch (change.op) {
      case 'insert': {
        const row = this.evalRow(change.after, ctx);
        return [{ kind: 'upsert', target: this.target, key: this.keyOfRow(row), row, columns: this.columnsOf(row), fresh: true }];
      }
      case 'update': {
        const before = change.before;
        const after = before === undefined ? change.after : this.fill(change.after, before);
        const row = this.evalRow(after, ctx);
        const columns = this.columnsOf(row);
        const key = this.keyOfRow(row);
        if (before !== undefined) {
          const oldKey = this.keyFrom(before, ctx, 'update');
          if (!sameKey(oldKey, key)) {
            return [
              { kind: 'delete', target: this.target, key: oldKey },
              { kind: 'upsert', target: this.target, key, row, columns },
            ];
          }
        }
        return [{ kind: 'upsert', target: this.target, key, row, columns }];
      }
      case 'delete':
        return [{ kind: 'delete', target: this.target, key: this.keyFrom(change.before, ctx, 'delete') }];
    }
  }

  mapTruncate(ctx: MappingContext): TargetOp[] {
    const scoped = this.keyCols.filter((c) => c.reads.length === 0);
    if (scoped.length === 0) {
      throw new BranchlineError({
        code: 'BL-M015',
        message: `a TRUNCATE of ${formatTable(this.source)} cannot be applied to ${this.targetName()}: no key column tells this store's rows apart from the others.`,
        hint: `Add a key column mapped from store.code (e.g. "store_code: store.code" with key [store_code, ...]) so a truncate removes only this store's rows.`,
        location: this.keyLocation,
      });
    }
    const where: Record<string, string> = {};
    for (const c of scoped) {
      const v = this.evalOne(c, {}, ctx);
      if (v === null || v === undefined) throw this.keyError(c, v, 'truncate');
      where[c.name] = v;
    }
    return [{ kind: 'delete-where', target: this.target, where }];
  }

  private targetName(): string {
    return `${this.target.schema}.${this.target.table}`;
  }

  /** `after` with unchanged (undefined) values taken from a full `before` image. */
  private fill(after: RowValues, before: RowValues): RowValues {
    let merged: Record<string, string | null | undefined> | null = null;
    for (const name of this.reads) {
      if (after[name] !== undefined) continue;
      const old = before[name];
      if (old === undefined) continue;
      merged ??= { ...after };
      merged[name] = old;
    }
    return merged ?? after;
  }

  /** The mapped row; `this.lastComplete` says whether every column is in it. */
  private evalRow(row: RowValues, ctx: MappingContext): Row {
    const out: Row = {};
    const cols = this.cols;
    let complete = true;
    let current: CompiledColumn | undefined;
    try {
      for (let i = 0; i < cols.length; i++) {
        const c = cols[i]!;
        if (c.bare !== null) {
          const v = row[c.bare];
          if (v !== undefined) out[c.name] = v;
          else complete = false;
          continue;
        }
        if (!present(row, c.reads)) {
          complete = false;
          continue;
        }
        current = c;
        out[c.name] = c.evaluate(row, ctx);
      }
    } catch (e) {
      if (e instanceof RowEvalError && current) throw this.rowError(current, e);
      throw e;
    }
    this.lastComplete = complete;
    return out;
  }

  /** The column list of a row just built by evalRow: the shared array when complete. */
  private columnsOf(row: Row): readonly string[] {
    return this.lastComplete ? this.columns : Object.keys(row);
  }

  /** One column's value; undefined when the row lacks a column it reads. */
  private evalOne(c: CompiledColumn, row: RowValues, ctx: MappingContext): string | null | undefined {
    if (c.bare !== null) return row[c.bare];
    if (!present(row, c.reads)) return undefined;
    try {
      return c.evaluate(row, ctx);
    } catch (e) {
      if (e instanceof RowEvalError) throw this.rowError(c, e);
      throw e;
    }
  }

  private keyOfRow(row: Row): string[] {
    const cols = this.keyCols;
    const key = new Array<string>(cols.length);
    for (let i = 0; i < cols.length; i++) {
      const c = cols[i]!;
      const v = row[c.name];
      if (v === null || v === undefined) throw this.keyError(c, v, 'row');
      key[i] = v;
    }
    return key;
  }

  /** The target key of the old row (a delete's identity, or the whole old row). */
  private keyFrom(before: RowValues, ctx: MappingContext, op: 'delete' | 'update'): string[] {
    const cols = this.keyCols;
    const key = new Array<string>(cols.length);
    for (let i = 0; i < cols.length; i++) {
      const c = cols[i]!;
      const v = this.evalOne(c, before, ctx);
      if (v === null || v === undefined) throw this.keyError(c, v, op);
      key[i] = v;
    }
    return key;
  }

  private keyError(c: CompiledColumn, v: null | undefined, op: 'row' | 'delete' | 'update' | 'truncate'): BranchlineError {
    const source = formatTable(this.source);
    const what = op === 'row' ? `a row of ${source}` : op === 'truncate' ? `a truncate of ${source}` : `the old row of ${op === 'delete' ? 'a delete' : 'an update'} of ${source}`;
    if (v === null) {
      return new BranchlineError({
        code: 'BL-M015',
        message: `target key column "${c.name}" of ${this.targetName()} is null for ${what}.`,
        hint: 'Every key column needs a value: fix the row at the store, or make the expression give a value (e.g. coalesce(x, ...)).',
        location: c.location,
      });
    }
    const missing = c.bare ?? c.reads.join(', ');
    return new BranchlineError({
      code: 'BL-M015',
      message: `target key column "${c.name}" of ${this.targetName()} cannot be computed for ${what}: the change does not carry ${missing}.`,
      hint: `Key columns may read only the identity columns of ${source} (what a delete carries), store.code and constants.`,
      location: c.location,
    });
  }

  private rowError(c: CompiledColumn, e: RowEvalError): BranchlineError {
    return new BranchlineError(
      {
        code: 'BL-M015',
        message: `the expression for "${c.name}" failed on a row of ${formatTable(this.source)}: ${e.message}.`,
        hint: e.hint,
        location: c.location,
      },
      { cause: e },
    );
  }
}

function present(row: RowValues, reads: readonly string[]): boolean {
  for (let i = 0; i < reads.length; i++) if (row[reads[i]!] === undefined) return false;
  return true;
}

function sameKey(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
