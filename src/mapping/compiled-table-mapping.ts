import { formatTable, type RowChange, type RowValues, type TableId } from '../core/change.js';
import { BranchlineError, type SourceLocation } from '../core/errors.js';
import { TupleUpsert, type AssocRef, type TargetOp, type TargetTable, type TuplePlan } from '../core/target-op.js';
import type { TupleRow } from '../core/tuple-row.js';
import { escaped } from '../apply/copy-rows.js';
import { RowEvalError, type Eval } from './expr/runtime.js';
import { mappingName, type CompiledMapping, type MappingContext, type PlainColumn } from './mapping.js';
import type { EffectiveAt } from './analyze.js';
import type { LabelsSpec } from './load.js';
import { fillUnchanged, filterHolds, type CompiledFilter } from './row-filter.js';

/** One target column of a compiled mapping. */
export interface CompiledColumn {
  /** Target column. */
  readonly name: string;
  /** `associate(entity, code)`: `evaluate` gives the store's code; the sink writes the HQ key. */
  readonly associate?: { readonly entity: string; readonly allocate: boolean } | null;
  /** The source column when the expression is just that column: copied with one property read. */
  readonly bare: string | null;
  /** Source columns the expression reads; if one is absent from the row (unchanged TOAST), so is the result. */
  readonly reads: readonly string[];
  /** The expression reads the transaction (commit_time()): not a constant even when it reads no column. */
  readonly contextual?: boolean;
  readonly evaluate: Eval;
  /** Where the expression is written, for BL-M015. */
  readonly location: SourceLocation;
}

/** What a delete at the store (or a row leaving the filter) does at the target. */
export type CompiledRemoval =
  | { readonly kind: 'delete' }
  | { readonly kind: 'ignore' }
  | { readonly kind: 'soft'; readonly columns: readonly CompiledColumn[] };

export interface CompiledTableMappingOptions {
  readonly file: string;
  readonly source: TableId;
  readonly target: TargetTable;
  /** In file order; every name of `target.key` is among them. */
  readonly columns: readonly CompiledColumn[];
  /** Where a truncate problem is reported (the `key` or `target` setting). */
  readonly keyLocation: SourceLocation;
  readonly filter?: CompiledFilter | null;
  /** Default `upsert`. */
  readonly onConflict?: 'upsert' | 'insert_only';
  /** Default: delete (ignore under insert_only). */
  readonly removal?: CompiledRemoval;
  readonly effectiveAt?: EffectiveAt | null;
  readonly labels?: LabelsSpec | null;
  /**
   * A source TRUNCATE when no key column holds a constant (such as the store
   * code) that tells which target rows came from this source: \`error\`
   * (BL-M015; up mappings, whose HQ table holds every store's rows), \`all\`
   * (every row of the target: a store table only HQ writes) or \`keep\` (a
   * store table the store writes too: its rows stay, the truncate is counted
   * as ignored). Default \`error\`.
   */
  readonly unscopedTruncate?: 'error' | 'all' | 'keep';
}

const NONE: TargetOp[] = [];

type Row = Record<string, string | null>;

/**
 * A mapping file compiled to closures: `map` runs per row on the hot path,
 * so it does no parsing and allocates only the operations it returns (and a
 * merged row when REPLICA IDENTITY FULL fills unchanged TOAST values).
 */
export class CompiledTableMapping implements CompiledMapping {
  readonly file: string;
  readonly name: string;
  readonly associates: boolean;
  readonly source: TableId;
  readonly target: TargetTable;
  readonly columns: readonly string[];
  readonly aggregate = false;
  readonly effectiveAt: EffectiveAt | null;
  readonly labels: LabelsSpec | null;
  private readonly cols: readonly CompiledColumn[];
  private readonly keyCols: readonly CompiledColumn[];
  /** Every source column any expression reads (for filling `after` from `before`). */
  private readonly reads: readonly string[];
  private readonly keyLocation: SourceLocation;
  private readonly filter: CompiledFilter | null;
  private readonly insertOnly: boolean;
  private readonly removal: CompiledRemoval;
  /** Key columns then soft-delete columns: the column list of a soft delete's update. */
  private readonly softColumns: readonly string[];
  private readonly ignoreOp: TargetOp;
  private readonly unscopedTruncate: 'error' | 'all' | 'keep';
  /** Associated columns, shared by every operation this mapping returns; null when none. */
  private readonly assoc: readonly AssocRef[] | null;
  private lastComplete = true;
  /** Every column a bare source column or a constant, no filter, policy, association or schedule: inserts that arrive as TupleRows go to the target as bytes. */
  private readonly copyable: boolean;
  /** The TuplePlan per source relation version (its column array) and store code. */
  private readonly tuplePlans = new WeakMap<readonly string[], { storeCode: string; plan: TuplePlan | null }>();
  private readonly keyIndexes: Int32Array;

  constructor(options: CompiledTableMappingOptions) {
    this.file = options.file;
    this.name = mappingName(options.file);
    this.source = options.source;
    this.target = options.target;
    this.cols = options.columns;
    this.effectiveAt = options.effectiveAt ?? null;
    this.labels = options.labels ?? null;
    this.columns = options.columns.map((c) => c.name);
    this.keyCols = options.target.key.map((k) => {
      const c = options.columns.find((x) => x.name === k);
      if (!c) throw new Error(`internal: key column ${k} of ${options.file} is not mapped`);
      return c;
    });
    this.filter = options.filter ?? null;
    this.insertOnly = options.onConflict === 'insert_only';
    this.removal = this.insertOnly ? { kind: 'ignore' } : (options.removal ?? { kind: 'delete' });
    this.softColumns = this.removal.kind === 'soft' ? [...options.target.key, ...this.removal.columns.map((c) => c.name)] : [];
    this.ignoreOp = { kind: 'ignore', target: options.target };
    this.unscopedTruncate = options.unscopedTruncate ?? 'error';
    // Every source column any expression or the filter reads (for filling `after` from `before`).
    this.reads = [...new Set([...options.columns.flatMap((c) => c.reads), ...(this.filter?.reads ?? [])])];
    this.keyLocation = options.keyLocation;
    this.assoc = assocRefs([...options.columns, ...(this.removal.kind === 'soft' ? this.removal.columns : [])], options.target.key);
    this.associates = this.assoc !== null;
    this.copyable =
      this.filter === null && this.assoc === null && !this.insertOnly && this.effectiveAt === null && options.columns.every((c) => c.bare !== null || (c.reads.length === 0 && c.contextual !== true));
    this.keyIndexes = Int32Array.from(options.target.key.map((k) => options.columns.findIndex((c) => c.name === k)));
  }

  map(change: Exclude<RowChange, { op: 'truncate' }>, ctx: MappingContext): TargetOp[] {
    if (change.op === 'insert' && change.tuple !== undefined && this.copyable) {
      const op = this.tupleWrite(change.tuple, ctx);
      if (op !== null) return [op];
    }
    const ops = this.mapRow(change, ctx);
    return this.assoc === null ? ops : tagAssociations(ops, this.assoc);
  }

  /**
   * An insert that arrived as a TupleRow, as a TupleUpsert; null when its
   * relation lacks a column the mapping reads or a key value is NULL (the
   * usual path then maps it, and reports what is wrong).
   */
  private tupleWrite(tuple: TupleRow, ctx: MappingContext): TupleUpsert | null {
    let cached = this.tuplePlans.get(tuple.columns);
    if (cached === undefined || cached.storeCode !== ctx.storeCode) {
      cached = { storeCode: ctx.storeCode, plan: this.tuplePlan(tuple.columns, ctx) };
      this.tuplePlans.set(tuple.columns, cached);
    }
    const plan = cached.plan;
    if (plan === null) return null;
    const idx = this.keyIndexes;
    const key = new Array<string>(idx.length);
    for (let i = 0; i < idx.length; i++) {
      const s = plan.sources[idx[i]!]!;
      const v = s < 0 ? plan.constants[idx[i]!]! : tuple.value(s);
      if (v === null) return null;
      key[i] = v;
    }
    return new TupleUpsert(this.target, key, this.columns, tuple, plan);
  }

  private tuplePlan(sourceColumns: readonly string[], ctx: MappingContext): TuplePlan | null {
    const cols = this.cols;
    const sources = new Int32Array(cols.length);
    const constants: (string | null)[] = [];
    const bytes: (Buffer | null)[] = [];
    for (let i = 0; i < cols.length; i++) {
      const c = cols[i]!;
      if (c.bare !== null) {
        sources[i] = sourceColumns.indexOf(c.bare);
        if (sources[i]! < 0) return null;
        constants.push(null);
        bytes.push(null);
      } else {
        sources[i] = -1;
        const v = this.evalOne(c, {}, ctx);
        if (v === undefined) return null;
        constants.push(v);
        bytes.push(escaped(v));
      }
    }
    return { sources, constants, escaped: bytes };
  }

  plainColumns(ctx: MappingContext): ReadonlyMap<string, PlainColumn> | null {
    if (this.filter !== null || this.assoc !== null || this.insertOnly || this.removal.kind === 'soft' || this.effectiveAt !== null) return null;
    const out = new Map<string, PlainColumn>();
    for (const c of this.cols) {
      if (c.bare !== null) out.set(c.name, { source: c.bare });
      else if (c.reads.length === 0 && c.contextual !== true) {
        const v = this.evalOne(c, {}, ctx);
        if (v === undefined) return null;
        out.set(c.name, { value: v });
      } else return null;
    }
    return out;
  }

  rowKeys(change: Exclude<RowChange, { op: 'truncate' }>, ctx: MappingContext): string[][] {
    const rows: RowValues[] =
      change.op === 'insert'
        ? [change.after]
        : change.op === 'delete'
          ? [change.before]
          : change.before === undefined
            ? [change.after]
            : [change.before, fillUnchanged(change.after, change.before, this.reads)];
    const out: string[][] = [];
    for (const r of rows) {
      try {
        const k = this.keyFrom(r, ctx, 'update');
        if (!out.some((o) => sameKey(o, k))) out.push(k);
      } catch {
        // a key that cannot be computed identifies no row
      }
    }
    return out;
  }

  private mapRow(change: Exclude<RowChange, { op: 'truncate' }>, ctx: MappingContext): TargetOp[] {
    switch (change.op) {
      case 'insert': {
        if (this.filter !== null && !this.passes(change.after, ctx, 'an insert')) return NONE;
        const row = this.evalRow(change.after, ctx);
        return [this.write(row, true)];
      }
      case 'update': {
        const before = change.before;
        const after = before === undefined ? change.after : fillUnchanged(change.after, before, this.reads);
        if (this.filter !== null && !this.passes(after, ctx, 'an update')) {
          // Not (or no longer) a row HQ should hold. When the old row is
          // known not to have matched either, HQ never had it: nothing to do.
          if (before !== undefined && present(before, this.filter.reads) && !this.passes(before, ctx, 'an update')) return NONE;
          const oldRow = before ?? after;
          return [this.remove(this.keyFrom(oldRow, ctx, 'update'), oldRow, ctx)];
        }
        const row = this.evalRow(after, ctx);
        const key = this.keyOfRow(row);
        if (before !== undefined) {
          const oldKey = this.keyFrom(before, ctx, 'update');
          if (!sameKey(oldKey, key)) {
            // Values PostgreSQL did not resend stay at HQ only if the row moves in place.
            if (!this.lastComplete && this.removal.kind === 'delete' && !this.insertOnly)
              return [{ kind: 'move', target: this.target, from: oldKey, key, row, columns: this.columnsOf(row) }];
            return [this.remove(oldKey, before, ctx), this.write(row, false, key)];
          }
        }
        return [this.write(row, false, key)];
      }
      case 'delete':
        return [this.remove(this.keyFrom(change.before, ctx, 'delete'), change.before, ctx)];
    }
  }

  /** The write of a mapped row, by the conflict policy. */
  private write(row: Row, fresh: boolean, key: string[] = this.keyOfRow(row)): TargetOp {
    const columns = this.columnsOf(row);
    if (!this.insertOnly) return fresh ? { kind: 'upsert', target: this.target, key, row, columns, fresh } : { kind: 'upsert', target: this.target, key, row, columns };
    // insert_only: create the row if HQ lacks it. An update that does not
    // carry every column (unchanged TOAST) cannot create it whole: left out.
    if (!this.lastComplete) return this.ignoreOp;
    return { kind: 'insert-missing', target: this.target, key, row, columns };
  }

  /** The removal of the row with `key` at the target, by the delete policy; `old` is what the change carries of the old row. */
  private remove(key: string[], old: RowValues, ctx: MappingContext): TargetOp {
    const removal = this.removal;
    if (removal.kind === 'delete') return { kind: 'delete', target: this.target, key };
    if (removal.kind === 'ignore') return this.ignoreOp;
    const row: Row = {};
    const keyNames = this.target.key;
    for (let i = 0; i < keyNames.length; i++) row[keyNames[i]!] = key[i]!;
    for (const c of removal.columns) {
      const v = this.evalOne(c, old, ctx);
      if (v === undefined) throw this.softError(c);
      row[c.name] = v;
    }
    return { kind: 'update', target: this.target, key, row, columns: this.softColumns };
  }

  /** Whether the filter holds for `row`. */
  private passes(row: RowValues, ctx: MappingContext, what: string): boolean {
    return filterHolds(this.filter!, row, ctx, this.source, this.file, what);
  }

  private softError(c: CompiledColumn): BranchlineError {
    return new BranchlineError({
      code: 'BL-M015',
      message: `the soft-delete value for "${c.name}" reads ${c.reads.join(', ')}, which a delete of ${formatTable(this.source)} does not carry.`,
      hint: `Soft-delete values may read only the source's identity columns, store.code, constants and commit_time(); or set REPLICA IDENTITY FULL on ${formatTable(this.source)} at the store.`,
      location: c.location,
    });
  }

  mapTruncate(ctx: MappingContext): TargetOp[] {
    if (this.removal.kind === 'ignore') return [this.ignoreOp];
    const scoped = this.keyCols.filter((c) => c.reads.length === 0);
    if (scoped.length === 0 && this.unscopedTruncate === 'keep') return [this.ignoreOp];
    if (scoped.length === 0 && this.unscopedTruncate === 'error') {
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
    if (this.removal.kind === 'soft') {
      const set: Row = {};
      for (const c of this.removal.columns) {
        const v = this.evalOne(c, {}, ctx);
        if (v === undefined) throw this.softError(c);
        set[c.name] = v;
      }
      return [{ kind: 'delete-where', target: this.target, where, set }];
    }
    return [{ kind: 'delete-where', target: this.target, where }];
  }

  private targetName(): string {
    return `${this.target.schema}.${this.target.table}`;
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

/** The associated columns of a mapping as AssocRefs (null when it has none). */
export function assocRefs(columns: readonly CompiledColumn[], key: readonly string[]): readonly AssocRef[] | null {
  const refs: AssocRef[] = [];
  const seen = new Set<string>();
  for (const c of columns) {
    if (!c.associate || seen.has(c.name)) continue;
    seen.add(c.name);
    refs.push({ entity: c.associate.entity, allocate: c.associate.allocate, column: c.name, keyIndex: key.indexOf(c.name) });
  }
  return refs.length > 0 ? refs : null;
}

/** The same operations, each carrying the mapping's associated columns for the sink to translate. */
export function tagAssociations(ops: TargetOp[], assoc: readonly AssocRef[]): TargetOp[] {
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.kind !== 'ignore' && op.kind !== 'delete-where') ops[i] = { ...op, assoc };
  }
  return ops;
}

function present(row: RowValues, reads: readonly string[]): boolean {
  for (let i = 0; i < reads.length; i++) if (row[reads[i]!] === undefined) return false;
  return true;
}

function sameKey(a: readonly string[], b: readonly string[]): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
