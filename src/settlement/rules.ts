import { column, type TableInfo } from '../catalog/pg-catalog.js';
import { tableKey, type TableId } from '../core/change.js';
import { ProblemsError } from '../core/errors.js';
import { analyzeMappings, type MappingCatalogs } from '../mapping/analyze.js';
import type { CheckedExpr } from '../mapping/expr/check.js';
import { compileExpression } from '../mapping/expr/compile.js';
import type { Eval } from '../mapping/expr/runtime.js';
import type { LoadedMappingFile } from '../mapping/load.js';
import type { AnalyzedSettlementRead } from '../mapping/settlement-analysis.js';

/** A record's state read from one row: compiled expressions and the columns they read. */
export interface SettlementRead {
  readonly amount: Eval;
  readonly settled: Eval;
  readonly deleted: Eval | null;
  /** Row columns the expressions read, without duplicates. */
  readonly columns: readonly string[];
}

/** One kind of record settlement checks can ask about (from one mapping file's `settlement:`). */
export interface SettlementRule {
  readonly kind: string;
  /** The mapping file, for messages. */
  readonly file: string;
  /** The store table and the column a reference names there. */
  readonly source: TableId;
  readonly ref: string;
  /** Callers give HQ's key of this entity (looked up in the store's associations); null: the store's own code. */
  readonly refEntity: string | null;
  readonly atStore: SettlementRead;
  /** Reading HQ's copy (a store asking HQ); null: not declared. */
  readonly atHq: SettlementRead | null;
  /** HQ's copy: the target table, its store column and its reference column. */
  readonly target: TableId;
  readonly hqStore: string;
  readonly hqRef: string;
  /** SQL type of `hqRef` at HQ (`format_type`, safe in a cast). */
  readonly hqRefType: string;
  /** `hqRef` holds HQ's key of this entity; null: the store's code. */
  readonly hqRefEntity: string | null;
}

/** The kinds declared by a mapping folder, by kind. */
export type SettlementRules = ReadonlyMap<string, SettlementRule>;

/**
 * The settlement rules of the enabled up files that declare them, checked against HQ's
 * catalog (the stores' are not needed: their columns are read as text and
 * judged by the expressions). Throws a ProblemsError when a file has a problem.
 */
export function settlementRules(files: readonly LoadedMappingFile[], catalogs: Omit<MappingCatalogs, 'source'>): SettlementRules {
  const declaring = files.filter((f) => f.spec.direction === 'up' && f.spec.settlement);
  // Entities are checked against HQ by `validate` and at start-up; here only the files' own settings.
  const { mappings, problems } = analyzeMappings(declaring, { ...catalogs, source: null, foreignKeysChecked: false, entityChecks: false });
  if (problems.length > 0) throw new ProblemsError(`The mapping files have ${problems.length} problem${problems.length === 1 ? '' : 's'}.`, problems);
  const rules = new Map<string, SettlementRule>();
  for (const m of mappings) {
    const s = m.settlement;
    if (!s || !s.atStore || !m.target) continue;
    rules.set(s.kind, {
      kind: s.kind,
      file: m.file.file,
      source: m.file.spec.source,
      ref: s.ref,
      refEntity: s.refEntity?.name ?? null,
      atStore: compileRead(s.atStore),
      atHq: s.atHq ? compileRead(s.atHq) : null,
      target: m.file.spec.target,
      hqStore: s.hqStore,
      hqRef: s.hqRef,
      hqRefType: columnType(m.target, s.hqRef),
      hqRefEntity: s.hqRefEntity?.name ?? null,
    });
  }
  return rules;
}

function columnType(table: TableInfo, name: string): string {
  const c = column(table, name);
  if (!c) throw new Error(`internal: ${tableKey(table.id)}.${name} vanished after the analysis`);
  return c.type;
}

function compileRead(r: AnalyzedSettlementRead): SettlementRead {
  const exprs: CheckedExpr[] = [r.amount, r.settled, ...(r.deleted ? [r.deleted] : [])];
  return {
    amount: compileExpression(r.amount),
    settled: compileExpression(r.settled),
    deleted: r.deleted ? compileExpression(r.deleted) : null,
    columns: [...new Set(exprs.flatMap((e) => e.columns))],
  };
}
