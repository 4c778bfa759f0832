import { column, type TableInfo } from '../catalog/pg-catalog.js';
import { formatTable } from '../core/change.js';
import type { ErrorCode, SourceLocation } from '../core/errors.js';
import type { YamlDoc } from '../config/yaml-doc.js';
import type { AnalyzedColumn } from './analyze.js';
import type { Entity, EntitySet } from './entities.js';
import { walk } from './expr/ast.js';
import { checkExpression, type CheckedExpr, type ColumnScope } from './expr/check.js';
import { ExprSyntaxError } from './expr/lexer.js';
import { parseExpression } from './expr/parser.js';
import { describeType, isNumberType, isOpen, T } from './expr/types.js';
import type { MappingSpec, SettlementReadSpec } from './load.js';
import { didYouMean } from './suggest.js';

/** A record's state read from one row: checked expressions. */
export interface AnalyzedSettlementRead {
  readonly amount: CheckedExpr;
  readonly settled: CheckedExpr;
  readonly deleted: CheckedExpr | null;
}

/** The `settlement` setting, checked (complete only when no problem was found). */
export interface AnalyzedSettlement {
  readonly kind: string;
  /** The store column a reference names. */
  readonly ref: string;
  /** Callers give HQ's key of this entity; null: the store's own code. */
  readonly refEntity: Entity | null;
  readonly atStore: AnalyzedSettlementRead | null;
  readonly atHq: AnalyzedSettlementRead | null;
  /** HQ's copy of the record: the target column holding the store code. */
  readonly hqStore: string;
  /** ... and the one the reference is written to. */
  readonly hqRef: string;
  /** `hqRef` holds HQ's key of this entity (associate(entity, ref)); null: the store's code as is. */
  readonly hqRefEntity: Entity | null;
  readonly location: SourceLocation;
}

/** What the file analysis lends this one. */
export interface SettlementAnalysisContext {
  readonly spec: MappingSpec;
  readonly doc: YamlDoc;
  readonly source: TableInfo | null;
  readonly target: TableInfo | null;
  readonly key: readonly string[] | null;
  readonly columns: readonly AnalyzedColumn[];
  readonly aggregate: boolean;
  readonly entities: EntitySet | undefined;
  report(code: ErrorCode, location: SourceLocation, message: string, hint: string): void;
  inExpression(path: readonly string[], index: number): SourceLocation;
  scope(table: TableInfo | null): ColumnScope | null;
}

const PATH = ['settlement'] as const;

/** A target column written from exactly this source column, bare or through associate(entity, column). */
function writtenFrom(columns: readonly AnalyzedColumn[], source: string): AnalyzedColumn | undefined {
  return columns.find((c) => {
    const e = c.checked?.expr;
    return e?.kind === 'column' && e.name === source && !c.measure;
  });
}

function bareColumn(c: AnalyzedColumn): string | null {
  const e = c.checked?.expr;
  return e?.kind === 'column' && !c.measure ? e.name : null;
}

/**
 * BL-M025: the `settlement` section of an up mapping. The reference is a
 * store column (default: the one the target key is written from); HQ's copy
 * is found by the target columns written from `store.code` and from it.
 */
export function analyzeSettlement(ctx: SettlementAnalysisContext): AnalyzedSettlement | null {
  const s = ctx.spec.settlement;
  if (!s) return null;
  const at = ctx.doc.location([...PATH]);
  const bad = (path: readonly (string)[], message: string, hint: string) => ctx.report('BL-M025', ctx.doc.location([...PATH, ...path]), message, hint);
  if (ctx.spec.direction !== 'up') {
    bad([], '"settlement" applies only to up mappings: HQ asks the store a record came from.', 'Move it to the mapping that brings the receivables (or payables) up from the stores.');
    return null;
  }
  if (ctx.aggregate) {
    bad([], '"settlement" does not apply to an aggregate mapping: its HQ rows are totals, not records.', 'Declare it in the mapping of the records themselves.');
    return null;
  }
  const hqStore = ctx.columns.find((c) => c.checked?.expr.kind === 'store-code')?.column.name;
  if (!hqStore) {
    bad([], 'a settlement check finds HQ\'s copy of a record by its store, but no column of this file writes store.code.', 'Map the store code, e.g. store_code: store.code (and make it part of the key).');
  }
  // The reference: named, or the store column the rest of the target key is written from.
  let ref = s.ref;
  let hqRefColumn: AnalyzedColumn | undefined;
  if (ref === null) {
    const keyCols = (ctx.key ?? []).filter((k) => k !== hqStore).map((k) => ctx.columns.find((c) => c.column.name === k));
    const only = keyCols.length === 1 ? keyCols[0] : undefined;
    const from = only ? (only.associate ? bareCode(only) : bareColumn(only)) : null;
    if (!only || from === null) {
      bad([], 'cannot tell which store column a reference names: the target key is not the store code and one column written from a store column.', 'Write ref: with the store column callers name, e.g. ref: id.');
    } else {
      ref = from;
      hqRefColumn = only;
    }
  } else {
    if (ctx.source && !column(ctx.source, ref)) {
      const near = didYouMean(ref, ctx.source.columns.map((c) => c.name));
      bad(['ref'], `ref "${ref}" is not a column of ${formatTable(ctx.spec.source)} at the store.`, near.length ? `Did you mean ${near.join(' or ')}?` : `Its columns are: ${ctx.source.columns.map((c) => c.name).join(', ')}.`);
    }
    hqRefColumn = writtenFrom(ctx.columns, ref) ?? ctx.columns.find((c) => c.associate && bareCode(c) === ref);
    if (!hqRefColumn)
      bad(['ref'], `no column of this file writes "${ref}" to HQ, so HQ's copy of a record cannot be found by it.`, `Map it, e.g. ${ref}: ${ref}, or name another ref.`);
  }
  let refEntity: Entity | null = null;
  if (s.refEntity !== null) {
    const entities = ctx.entities?.byName ?? new Map<string, Entity>();
    refEntity = entities.get(s.refEntity) ?? null;
    if (!refEntity) {
      const near = didYouMean(s.refEntity, [...entities.keys()]);
      bad(['ref_entity'], `entity "${s.refEntity}" is not declared.`, near.length ? `Did you mean ${near.join(' or ')}?` : 'Declare it in entities.yml, or remove ref_entity (callers then give the store\'s own code).');
    }
  }
  const atStore = readOf(ctx, s.atStore, [...PATH], ctx.source, 'the store');
  const atHq = s.atHq ? readOf(ctx, s.atHq, [...PATH, 'at_hq'], ctx.target, 'HQ') : null;
  if (!hqStore || !ref || !hqRefColumn) return null;
  return {
    kind: s.kind,
    ref,
    refEntity,
    atStore,
    atHq,
    hqStore,
    hqRef: hqRefColumn.column.name,
    hqRefEntity: hqRefColumn.associate ?? null,
    location: at,
  };
}

/** The code column of associate(entity, column), when it is a bare column. */
function bareCode(c: AnalyzedColumn): string | null {
  return c.associate && c.checked?.expr.kind === 'column' ? c.checked.expr.name : null;
}

function readOf(ctx: SettlementAnalysisContext, r: SettlementReadSpec, path: readonly string[], table: TableInfo | null, where: string): AnalyzedSettlementRead | null {
  const amount = expression(ctx, r.amount, [...path, 'amount'], table, 'number', where);
  const settled = expression(ctx, r.settled, [...path, 'settled'], table, 'boolean', where);
  const deleted = r.deleted === null ? null : expression(ctx, r.deleted, [...path, 'deleted'], table, 'boolean', where);
  if (!amount || !settled || (r.deleted !== null && !deleted)) return null;
  return { amount, settled, deleted };
}

function expression(
  ctx: SettlementAnalysisContext,
  text: string,
  path: readonly string[],
  table: TableInfo | null,
  want: 'number' | 'boolean',
  where: string,
): CheckedExpr | null {
  const name = path[path.length - 1]!;
  let checked: CheckedExpr;
  try {
    const parsed = parseExpression(text);
    let call: string | null = null;
    walk(parsed, (n) => {
      if (!call && n.kind === 'call' && ['associate', 'sum', 'count', 'commit_time'].includes(n.name.toLowerCase())) call = n.name;
    });
    if (call) {
      ctx.report('BL-M025', ctx.doc.location(path), `settlement ${name} cannot use ${call}(...): it is read from the row as ${where} holds it now.`, 'Write an expression over the row\'s columns, e.g. amount - paid.');
      return null;
    }
    checked = checkExpression(parsed, ctx.scope(table), want === 'boolean' ? T.boolean : undefined);
  } catch (e) {
    if (!(e instanceof ExprSyntaxError)) throw e;
    ctx.report('BL-M025', ctx.inExpression(path, e.index), `settlement ${name} does not parse: ${e.message}.`, e.hint);
    return null;
  }
  for (const issue of checked.issues) ctx.report(issue.code, ctx.inExpression(path, issue.index), `${issue.message}.`, issue.hint);
  if (checked.issues.length) return null;
  if (isOpen(checked.type)) return checked;
  if (want === 'boolean' && checked.type.category !== 'boolean') {
    ctx.report('BL-M025', ctx.doc.location(path), `settlement ${name} gives ${describeType(checked.type)}, not true or false.`, "Write a condition over the row, e.g. status = 'settled'.");
    return null;
  }
  if (want === 'number' && !isNumberType(checked.type)) {
    ctx.report('BL-M025', ctx.doc.location(path), `settlement amount gives ${describeType(checked.type)}, not a number.`, 'Name the column holding the amount still open, e.g. amount, or compute it, e.g. amount - paid.');
    return null;
  }
  return checked;
}
