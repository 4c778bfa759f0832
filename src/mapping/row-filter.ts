import { formatTable, type RowValues, type TableId } from '../core/change.js';
import { BranchlineError, type SourceLocation } from '../core/errors.js';
import { RowEvalError, truth, type Eval } from './expr/runtime.js';
import type { MappingContext } from './mapping.js';

/** The `filter` setting, compiled. */
export interface CompiledFilter {
  readonly evaluate: Eval;
  /** Source columns it reads. */
  readonly reads: readonly string[];
  readonly location: SourceLocation;
}

/**
 * Whether the filter holds for `row` (null counts as false). BL-M015 when
 * the row lacks a column the filter reads (a value PostgreSQL did not
 * resend) or the filter fails on it. `what` names the change ("an update").
 */
export function filterHolds(f: CompiledFilter, row: RowValues, ctx: MappingContext, source: TableId, file: string, what: string): boolean {
  for (const r of f.reads) {
    if (row[r] !== undefined) continue;
    const missing = f.reads.filter((x) => row[x] === undefined);
    throw new BranchlineError({
      code: 'BL-M015',
      message: `the filter of ${file} reads ${missing.join(', ')}, which ${what} of ${formatTable(source)} does not carry (a value PostgreSQL left out because it did not change).`,
      hint: `At the store, run ALTER TABLE ${formatTable(source)} REPLICA IDENTITY FULL so every change carries the whole old row.`,
      location: f.location,
    });
  }
  try {
    const v = f.evaluate(row, ctx);
    return v !== null && truth(v, 'filter');
  } catch (e) {
    if (e instanceof RowEvalError)
      throw new BranchlineError({ code: 'BL-M015', message: `the filter failed on a row of ${formatTable(source)}: ${e.message}.`, hint: e.hint, location: f.location }, { cause: e });
    throw e;
  }
}

/** `after` with the columns in `names` it lacks (unchanged TOAST values) taken from a whole `before`. */
export function fillUnchanged(after: RowValues, before: RowValues, names: readonly string[]): RowValues {
  let merged: Record<string, string | null | undefined> | null = null;
  for (const name of names) {
    if (after[name] !== undefined) continue;
    const old = before[name];
    if (old === undefined) continue;
    merged ??= { ...after };
    merged[name] = old;
  }
  return merged ?? after;
}
